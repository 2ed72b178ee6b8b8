"""A ThreadingHTTPServer on 127.0.0.1 in a thread: what the tests' stand-in web sites and mail services share."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackServer:
    """Call `serve(handler)` at the end of `__init__`; `release` lets a held request go at `stop()`."""

    release: threading.Event

    def serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.release = getattr(self, "release", None) or threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
