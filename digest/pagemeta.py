"""Fetch a page for `digest add` and read what an entry needs from it: title, site, description, canonical URL.

OpenGraph comes from extruct (Zyte's metadata extractor); `<title>` and `<link rel="canonical">`
from the same lxml tree; the charset from w3lib, which weighs the Content-Type header, a BOM and
`<meta charset>` the way browsers do.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from digest.errors import DigestError

FETCH_TIMEOUT = 10.0  # seconds for connect and each read
MAX_PAGE_BYTES = 2_000_000  # read at most this much; the <head> comes first
MAX_REDIRECTS = 5
HTML_TYPES = ("text/html", "application/xhtml+xml")
USER_AGENT = "digest-add/1 (link preview)"
_SPACE = re.compile(r"\s+")
# C0 controls and DEL, embedding/isolate controls (content.py rejects them), zero-width space, BOM;
# ZWJ/ZWNJ stay: emoji sequences and Persian words need them
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f\u200b\u202a-\u202e\u2066-\u2069\ufeff]")


class FetchError(DigestError):
    """The page could not be read; the message says why and how to add the link anyway."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"could not fetch {url}: {reason}; pass --title to add it without fetching")


@dataclass(frozen=True)
class PageMeta:
    url: str  # where the page was found, after redirects
    title: str | None
    site_name: str | None
    description: str | None
    canonical: str | None  # <link rel="canonical">, else og:url: absolute http(s), else None


def fetch_page(url: str, *, timeout: float = FETCH_TIMEOUT, max_bytes: int = MAX_PAGE_BYTES) -> PageMeta:
    """GET `url` (http/https only, redirects followed) and read its metadata; FetchError on any failure."""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise FetchError(url, "only http:// and https:// pages can be fetched")
    body, content_type, final = _download(url, timeout, max_bytes)
    return parse_page(body, content_type, final)


def _download(url: str, timeout: float, max_bytes: int) -> tuple[bytes, str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"}
    try:
        with (
            httpx.Client(
                timeout=timeout, follow_redirects=True, max_redirects=MAX_REDIRECTS, headers=headers
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code >= 400:
                raise FetchError(url, f"the server answered {response.status_code} {response.reason_phrase}".rstrip())
            content_type = response.headers.get("content-type", "")
            if content_type.split(";")[0].strip().lower() not in HTML_TYPES:
                raise FetchError(url, f"not an HTML page (Content-Type: {content_type or 'none'})")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) >= max_bytes:  # the rest is the page's body; its head has what we need
                    break
            final = str(response.url)
    except httpx.TimeoutException:
        raise FetchError(url, f"no answer within {timeout:g} s") from None
    except httpx.TooManyRedirects:
        raise FetchError(url, f"more than {MAX_REDIRECTS} redirects") from None
    except httpx.ConnectError as exc:
        raise FetchError(url, f"cannot connect ({_reason(exc)}); are you offline?") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise FetchError(url, _reason(exc)) from None
    return bytes(body[:max_bytes]), content_type, final


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "Name or service not known" in text or "getaddrinfo" in text or "nodename nor servname" in text:
        return "the host name does not resolve"
    return text[:200]


def parse_page(body: bytes, content_type: str, url: str) -> PageMeta:
    """Metadata of an HTML document; every value cleaned of control characters and runs of spaces."""
    from extruct.opengraph import OpenGraphExtractor
    from lxml import html as lxml_html
    from w3lib.encoding import html_to_unicode

    _, text = html_to_unicode(content_type, body)
    if not text.strip():
        return PageMeta(url, None, None, None, None)
    tree = lxml_html.document_fromstring(text)
    og: dict[str, str] = {}
    for item in OpenGraphExtractor().extract_items(tree, base_url=url):
        for name, value in item["properties"]:
            og.setdefault(name, value)  # the first of a repeated property, as Facebook reads it
    title = _clean(og.get("og:title")) or _clean(tree.findtext(".//title"))
    links = tree.xpath(
        '//link[@href][contains(concat(" ", normalize-space(translate(@rel, "CANOIL", "canoil")), " "), " canonical ")]'
        "/@href"
    )
    canonical = _absolute(links[0] if links else None, url) or _absolute(og.get("og:url"), url)
    return PageMeta(url, title, _clean(og.get("og:site_name")), _clean(og.get("og:description")), canonical)


def _clean(value: str | None) -> str | None:
    if not value:
        return None
    value = unicodedata.normalize("NFC", _SPACE.sub(" ", _CONTROL.sub("", value))).strip()
    return value or None


def _absolute(value: str | None, base: str) -> str | None:
    """An absolute http(s) URL with a host, or None: a page's claim about itself is only a hint."""
    if not value or not value.strip():
        return None
    try:
        joined = urljoin(base, value.strip())
        parts = urlsplit(joined)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return None
        _ = parts.port
    except ValueError:
        return None
    return joined
