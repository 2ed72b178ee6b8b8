"""The web front's guards: security headers, body size limits, CSRF for the form, rate limits."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "digest_csrf"
HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self' https: data:; form-action 'self'; "
        b"base-uri 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),  # unsubscribe and confirmation tokens live in URLs
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"interest-cohort=()"),
]


class SecurityHeaders:
    """Adds the security headers to every HTTP response."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [h for h in HEADERS if h[0] not in names]
            await send(message)

        await self.app(scope, receive, with_headers)


class CanonicalHost:
    """Every URL the app builds (Starlette's directory redirects, `request.url`) gets the scheme
    and host of `[site] base_url`: a request's Host header is the client's to choose, so a
    redirect built from it could send a visitor anywhere."""

    def __init__(self, app: ASGIApp, base_url: str):
        self.app = app
        parts = urlsplit(base_url)
        self.scheme = parts.scheme
        self.host = parts.netloc.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(name, value) for name, value in scope.get("headers", []) if name != b"host"]
            scope = {**scope, "scheme": self.scheme, "headers": [(b"host", self.host), *headers]}
        await self.app(scope, receive, send)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_FORWARDED_HOPS = 32  # a longer X-Forwarded-For is the client's padding; only the right end matters


def client_address(peer: str | None, forwarded: Sequence[str], proxies: Sequence[Network]) -> str:
    """Who is asking, for the rate limits: the socket's peer, unless that peer is one of
    `[web] trusted_proxies`; then the right-most X-Forwarded-For hop that is not a trusted proxy
    (every hop left of it was written by the client, and can be anything)."""
    if peer is None:
        return "unknown"
    if not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for value in forwarded for hop in value.split(",")][-MAX_FORWARDED_HOPS:]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop[:64] or peer
    return peer  # every hop is a proxy of ours: the request started inside


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    if not proxies:
        return False
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in proxies)


class BodyLimit:
    """Refuses request bodies over `limit` bytes with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, limit: int, hooks_limit: int | None = None):
        self.app = app
        self.limit = limit
        self.hooks_limit = hooks_limit or limit  # /hooks/: a service's notification may carry a message's headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.hooks_limit if scope["path"].startswith("/hooks/") else self.limit
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _too_large(send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _too_large(send)


class BodyTooLarge(Exception):
    """Raised from `receive` once a streamed body passes the limit; BodyLimit turns it into a 413."""


async def _too_large(send: Send) -> None:
    body = b"Request body too large."
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def new_csrf_cookie() -> str:
    return secrets.token_urlsafe(32)


def csrf_token(secret: str, cookie: str) -> str:
    """The form's token: bound to this browser's cookie, so another site can't forge a post."""
    return hmac.new(secret.encode(), f"csrf|{cookie}".encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: str, cookie: str | None, token: str | None) -> bool:
    if not cookie or not token or len(token) > 128:
        return False
    return hmac.compare_digest(csrf_token(secret, cookie), token)


class RateLimiter:
    """Sliding-window counters per key, in memory (per process): enough to blunt form abuse."""

    def __init__(self, limit: int, window_seconds: float):
        self.limit = limit
        self.window = window_seconds
        self.hits: dict[str, deque[float]] = {}
        self.lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self.lock:
            hits = self.hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            if len(self.hits) > 100_000:  # bounded memory under a flood of distinct keys
                self.hits = {k: v for k, v in self.hits.items() if v and v[-1] > now - self.window}
            return True

    def retry_after(self, key: str) -> int:
        """Whole seconds until `key` may try again (0 if it may now), for a Retry-After header."""
        now = time.monotonic()
        with self.lock:
            hits = self.hits.get(key)
            if not hits or len(hits) < self.limit:
                return 0
            return max(1, math.ceil(hits[0] + self.window - now))
