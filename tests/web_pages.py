"""A small web site on 127.0.0.1 for the link checker and `digest add`: pages with OpenGraph tags in
several charsets, redirects, errors, a page that never answers, one far over the size cap. Every
request is counted, so a test can tell whether a second run asked again."""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler

from loopback import LoopbackServer

PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<title>{title}</title>
{meta}
</head><body><p>Body text.</p></body></html>
"""


def og_page(page_title: str, lang: str = "en", **properties: str) -> bytes:
    meta = "\n".join(
        f'<meta property="og:{name}" content="{value}">'
        if name != "canonical"
        else f'<link rel="canonical" href="{value}">'
        for name, value in properties.items()
    )
    return PAGE.format(lang=lang, title=page_title, meta=meta).encode("utf-8")


class Site(LoopbackServer):
    """Routes: path -> (status, headers, body) or a callable special case; HEAD answers like GET minus the body."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()  # (method, path) -> count
        self.lock = threading.Lock()
        self.release = threading.Event()  # lets a held /hang request go at shutdown
        self.big_bytes_sent = 0
        self.in_flight = 0  # /slow/... requests being answered now, and the most at once
        self.most_in_flight = 0
        self.slow_arrived = threading.Condition(self.lock)
        self.pages: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.serve(self._handler())
        self._default_pages()

    def count(self, path: str) -> int:
        with self.lock:
            return sum(n for (_, p), n in self.requests.items() if p == path)

    def add(self, path: str, status: int = 200, body: bytes = b"", **headers: str) -> None:
        self.pages[path] = (status, {k.replace("_", "-"): v for k, v in headers.items()}, body)

    def _default_pages(self) -> None:
        html = "text/html; charset=utf-8"
        self.add("/ok", body=og_page("OK"), Content_Type=html)
        self.add("/ok-2", body=og_page("OK 2"), Content_Type=html)
        self.add("/gone", 404, b"not here", Content_Type="text/plain")
        self.add("/broken", 500, b"oops", Content_Type="text/plain")
        self.add("/moved", 301, Location="/ok")
        self.add("/moved-308", 308, Location=f"{self.url}/ok-2")
        self.add("/found", 302, Location="/ok")
        self.add("/see-other", 303, Location="/ok")
        self.add("/temporary", 307, Location="/ok")
        self.add("/moved-then-found", 301, Location="/found")  # the permanent part is the new address
        self.add("/moved-to-gone", 301, Location="/gone")
        self.add("/loop", 302, Location="/loop")
        self.add("/pdf", body=b"%PDF-1.4", Content_Type="application/pdf")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(head=True)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(head=False)

            def _answer(self, *, head: bool) -> None:
                path = self.path.split("?")[0]
                with site.lock:
                    site.requests[(self.command, path)] += 1
                    seen = site.requests[(self.command, path)]
                if path == "/hang":
                    site.release.wait(30)  # never answers while the test runs
                    return
                if path == "/head-refused" and head:
                    return self._send(405, {"Allow": "GET"}, b"", head)
                if path == "/head-refused":
                    return self._send(200, {"Content-Type": "text/html"}, og_page("GET only"), head)
                if path == "/busy":  # 429 the first time, with a short Retry-After; then fine
                    if seen == 1:
                        return self._send(429, {"Retry-After": "0"}, b"slow down", head)
                    return self._send(200, {"Content-Type": "text/html"}, og_page("Busy"), head)
                if path.startswith("/slow/"):
                    return self._slow(head)
                if path == "/big":
                    return self._big(head)
                status, headers, body = site.pages.get(path, (404, {"Content-Type": "text/plain"}, b"no such page"))
                self._send(status, headers, body, head)

            def _send(self, status: int, headers: dict[str, str], body: bytes, head: bool) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _slow(self, head: bool) -> None:
                """Hold each answer until a second request is in flight too (or 2 s pass): whatever the
                client allows at once then overlaps here, however slow the machine."""
                with site.slow_arrived:
                    site.in_flight += 1
                    site.most_in_flight = max(site.most_in_flight, site.in_flight)
                    site.slow_arrived.notify_all()
                    site.slow_arrived.wait_for(lambda: site.in_flight >= 2 or site.release.is_set(), timeout=2)
                time.sleep(0.05)  # a third request, if the client sent one, arrives while these are held
                with site.lock:
                    site.in_flight -= 1
                self._send(200, {"Content-Type": "text/html"}, og_page("Slow"), head)

            def _big(self, head: bool) -> None:
                """50 MB of page after a normal <head>, sent in chunks until the reader hangs up."""
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(50_000_000))
                self.end_headers()
                if head:
                    return
                start = og_page("Big page 📦", description="A very long page")[: -len("</body></html>\n")]
                chunk = b"<p>" + b"x" * 65_530 + b"</p>"
                try:
                    self.wfile.write(start)
                    sent = len(start)
                    while sent < 50_000_000 and not site.release.is_set():
                        self.wfile.write(chunk)
                        sent += len(chunk)
                        with site.lock:
                            site.big_bytes_sent = sent
                except OSError:  # the client stopped reading: what the test wants
                    time.sleep(0)

        return Handler
