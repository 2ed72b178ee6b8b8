"""`digest links check`: does every entry's URL still answer? Dead links and permanent moves.

Checked concurrently with httpx's async client, at most `PER_HOST` requests to one host and
`OVERALL` in all, so a month of links from one site doesn't look like an attack on it. Results are
cached in var/cache/links.json with the time of the check; a result younger than
`[check] links_max_age_hours` is reused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from digest.config import Config
from digest.files import write_atomic

log = logging.getLogger(__name__)
PER_HOST = 2  # requests in flight to one host
OVERALL = 16  # requests in flight in all
MAX_REDIRECTS = 10
RETRY_AFTER_CAP = 30.0  # seconds: a longer Retry-After makes the link a failure now, not a stalled check
HEAD_REFUSED = frozenset({403, 405, 501})  # some servers answer HEAD so; GET tells the truth
PERMANENT = frozenset({301, 308})
TEMPORARY = frozenset({302, 303, 307})
USER_AGENT = "digest-link-check/1"
CACHE_VERSION = 1
FORGET_AFTER = timedelta(days=90)  # the cache keeps no result older than this


class LinkStatus(StrEnum):
    OK = "ok"  # answered 2xx (after any temporary redirects)
    MOVED = "moved"  # a permanent redirect (301/308) to `moved_to`, which answers
    DEAD = "dead"  # 4xx, 5xx, DNS failure, TLS error, timeout, refused connection


@dataclass(frozen=True)
class LinkResult:
    url: str
    status: LinkStatus
    detail: str  # "200 OK", "404 Not Found", "DNS lookup failed: ...", ...
    checked_at: datetime
    moved_to: str | None = None  # the target of the permanent redirects, for --fix-redirects

    def age(self, now: datetime) -> timedelta:
        return max(now - self.checked_at, timedelta(0))


@dataclass(frozen=True)
class LinkUse:
    """One entry's URL and where it is written (the line of its `url:` key)."""

    path: Path  # as shown to the writer (relative to the project)
    file: Path  # the file itself
    line: int | None
    url: str


def wayback_url(url: str) -> str:
    """The Wayback Machine's list of snapshots of `url` (a page for the writer; never requested here)."""
    return f"https://web.archive.org/web/*/{url}"


# -- checking ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    timeout: float = 10.0  # seconds for connect, each read, and the pool
    retries: int = 2  # further tries after a timeout, a connection error, a 5xx or a 429
    backoff: float = 1.0  # seconds before the first retry; doubles each time
    per_host: int = PER_HOST
    overall: int = OVERALL


def check_urls(urls: Iterable[str], limits: Limits | None = None) -> dict[str, LinkResult]:
    """Check each distinct URL once, concurrently; never raises for a bad link."""
    return asyncio.run(_check_all(list(dict.fromkeys(urls)), limits or Limits()))


async def _check_all(urls: list[str], limits: Limits) -> dict[str, LinkResult]:
    overall = asyncio.Semaphore(limits.overall)
    hosts: dict[str, asyncio.Semaphore] = {}
    timeout = httpx.Timeout(limits.timeout)
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    async with httpx.AsyncClient(timeout=timeout, headers=headers, follow_redirects=False) as client:
        checker = _Checker(client, limits, overall, hosts)
        results = await asyncio.gather(*(checker.check(url) for url in urls))
    return dict(zip(urls, results, strict=True))


class _Checker:
    """Follows one URL's redirects hop by hop, retrying each request as `Limits` allows."""

    def __init__(
        self, client: httpx.AsyncClient, limits: Limits, overall: asyncio.Semaphore, hosts: dict[str, asyncio.Semaphore]
    ):
        self.client, self.limits, self.overall, self.hosts = client, limits, overall, hosts

    async def check(self, url: str) -> LinkResult:
        moved_to: str | None = None
        permanent_so_far = True  # only an unbroken run of 301/308 from the start moves the link
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = await self._request(current)
            except _Failure as failure:
                return LinkResult(url, LinkStatus.DEAD, failure.detail, utc_now())
            code = response.status_code
            location = response.headers.get("location")
            if code in PERMANENT | TEMPORARY and location:
                target = urljoin(current, location)
                if urlsplit(target).scheme not in ("http", "https"):
                    return LinkResult(url, LinkStatus.DEAD, f"{code} redirect to {target[:200]}", utc_now())
                permanent_so_far = permanent_so_far and code in PERMANENT
                moved_to = target if permanent_so_far else moved_to
                current = target
                continue
            detail = f"{code} {response.reason_phrase}".strip()
            if code >= 400 or code < 200:
                return LinkResult(url, LinkStatus.DEAD, detail, utc_now())
            if moved_to and moved_to != url:
                return LinkResult(url, LinkStatus.MOVED, f"{detail} at {moved_to}", utc_now(), moved_to)
            return LinkResult(url, LinkStatus.OK, detail, utc_now())
        return LinkResult(url, LinkStatus.DEAD, f"more than {MAX_REDIRECTS} redirects", utc_now())

    async def _request(self, url: str) -> httpx.Response:
        """HEAD, or GET when HEAD is refused; retried with backoff on transient failures."""
        delay = self.limits.backoff
        for attempt in range(self.limits.retries + 1):
            last = attempt == self.limits.retries
            try:
                response = await self._send("HEAD", url)
                if response.status_code in HEAD_REFUSED:
                    response = await self._send("GET", url)
            except _Failure as failure:
                if last or not failure.transient:
                    raise
                await asyncio.sleep(delay)
            else:
                wait = _retry_wait(response, delay)
                if wait is None or last:
                    return response
                await asyncio.sleep(wait)
            delay *= 2
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _send(self, method: str, url: str) -> httpx.Response:
        host = (urlsplit(url).hostname or "").lower()
        limit = self.hosts.setdefault(host, asyncio.Semaphore(self.limits.per_host))
        async with self.overall, limit:
            try:
                request = self.client.build_request(method, url)
                response = await self.client.send(request, stream=True)
                await response.aclose()  # the status is all we need: never read a body
                return response
            except httpx.TimeoutException:
                raise _Failure(f"timed out after {self.limits.timeout:g} s", transient=True) from None
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                raise _connect_failure(exc) from None
            except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
                raise _Failure(f"request failed: {exc}"[:300], transient=False) from None


class _Failure(Exception):
    def __init__(self, detail: str, *, transient: bool):
        super().__init__(detail)
        self.detail, self.transient = detail, transient


def _connect_failure(exc: Exception) -> _Failure:
    """Name the cause the writer can act on: DNS, TLS, or the connection itself."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return _Failure(f"DNS lookup failed: {cause.strerror or cause}", transient=False)
        if isinstance(cause, ssl.SSLError):
            return _Failure(f"TLS error: {getattr(cause, 'reason', None) or cause}", transient=False)
        cause = cause.__cause__ or cause.__context__
    text = str(exc) or type(exc).__name__
    if "Name or service not known" in text or "getaddrinfo" in text or "nodename nor servname" in text:
        return _Failure(f"DNS lookup failed: {text}", transient=False)
    if "SSL" in text or "certificate" in text.lower():
        return _Failure(f"TLS error: {text}", transient=False)
    return _Failure(f"connection failed: {text}"[:300], transient=True)


def _retry_wait(response: httpx.Response, delay: float) -> float | None:
    """Seconds to wait before trying again, or None when the answer is final."""
    if response.status_code != 429 and response.status_code < 500:
        return None
    after = _retry_after(response.headers.get("retry-after"))
    if after is None:
        return delay
    return None if after > RETRY_AFTER_CAP else after


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - utc_now()).total_seconds(), 0.0)


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# -- the cache --------------------------------------------------------------------------------


class LinkCache:
    """var/cache/links.json: the last result for each URL, with the time it was checked."""

    def __init__(self, path: Path):
        self.path = path
        self.results = self._load()

    def fresh(self, url: str, max_age: timedelta, now: datetime) -> LinkResult | None:
        found = self.results.get(url)
        return found if found is not None and found.age(now) < max_age else None

    def update(self, results: dict[str, LinkResult]) -> None:
        self.results.update(results)

    def save(self) -> None:
        """Write every result but those older than `FORGET_AFTER` (links long gone from content/)."""
        now = utc_now()
        kept = {url: r for url, r in sorted(self.results.items()) if r.age(now) < FORGET_AFTER}
        data = {"version": CACHE_VERSION, "results": {url: _to_json(result) for url, result in kept.items()}}
        write_atomic(self.path, json.dumps(data, ensure_ascii=False, indent=1) + "\n", sync=False)

    def _load(self) -> dict[str, LinkResult]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("version") != CACHE_VERSION:
                return {}
            return {url: _from_json(url, item) for url, item in data["results"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring the damaged link cache %s: %s", self.path, exc)  # it is only a cache
            return {}


def _to_json(result: LinkResult) -> dict[str, str | None]:
    data = asdict(result)
    data.pop("url")
    data["checked_at"] = result.checked_at.isoformat()
    return data


def _from_json(url: str, item: dict) -> LinkResult:
    checked = datetime.fromisoformat(item["checked_at"])
    if checked.tzinfo is None:
        raise ValueError(f"checked_at {item['checked_at']!r} has no time zone")
    return LinkResult(url, LinkStatus(item["status"]), str(item["detail"]), checked, item.get("moved_to"))


def cache_path(config: Config) -> Path:
    return config.var_dir / "cache" / "links.json"


def month_label(month: date | None) -> str:
    return f"{month:%Y-%m}" if month else "the archive"
