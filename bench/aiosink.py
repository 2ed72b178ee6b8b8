"""A discarding aiosmtpd server, run as its own process: python bench/aiosink.py PORT.

Accepts every message and keeps nothing; prints "ready", and on SIGTERM prints the number
of messages it accepted.
"""

from __future__ import annotations

import signal
import sys
import threading

from aiosmtpd.controller import Controller


class Discard:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.count += 1
        return "250 OK"


def main(port: int) -> None:
    handler = Discard()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print("ready", flush=True)
    done.wait()
    controller.stop()
    print(handler.count, flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
