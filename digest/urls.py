"""Canonical URLs: the form `add` stores, and the key duplicate checks compare.

`canonical_url` is a safe rewrite, the same page for every reader: url-normalize lower-cases the
scheme and host, drops a default port, encodes the host with IDNA and normalises percent-encoding,
then tracking parameters are removed. `url_key` goes further, for finding the same article under
two addresses only: it also ignores http vs https, `www.`, a trailing slash, the fragment, the
order of query parameters and AMP variants. A key is never stored or linked to.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import SplitResult, parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

# Query parameters that only say where a click came from. Prefixes first (every `utm_*`).
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_")  # Google Analytics, Matomo/Piwik, HubSpot ads
TRACKING_PARAMS = frozenset(
    {
        "fbclid",  # Facebook
        "gclid",  # Google Ads
        "gclsrc",
        "dclid",  # Google Display
        "gbraid",  # Google Ads (iOS)
        "wbraid",
        "msclkid",  # Microsoft Ads
        "twclid",  # X/Twitter ads
        "ttclid",  # TikTok ads
        "li_fat_id",  # LinkedIn
        "yclid",  # Yandex
        "mc_cid",  # Mailchimp campaign
        "mc_eid",  # Mailchimp subscriber
        "igshid",  # Instagram share
        "igsh",
        "ref_src",  # X/Twitter
        "ref_url",
        "_hsenc",  # HubSpot
        "_hsmi",
        "__hstc",
        "__hssc",
        "__hsfp",
        "hsctatracking",
        "mkt_tok",  # Marketo
        "vero_id",  # Vero
        "vero_conv",
        "oly_anon_id",  # Omeda
        "oly_enc_id",
        "rb_clickid",
        "s_cid",  # Adobe
        "_ga",  # Google cross-domain linker
        "_gl",
        "ncid",
        "sr_share",
        "si",  # YouTube and Spotify share links
        "spm",
    }
)
AMP_PARAMS = frozenset({"amp", "amp_js_v", "usqp"})  # `?amp`, `?amp=1`, Google's AMP cache markers
DEFAULT_PORTS = {"http": 80, "https": 443}
HOST_PREFIXES = ("www.", "m.", "amp.")  # the same site for desktop, mobile and AMP readers
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")  # not a link anyone can click: left as written
_AMP_SEGMENT = re.compile(r"/amp(?=/|$)", re.IGNORECASE)
_AMP_SUFFIX = re.compile(r"\.amp(?:\.html?)?$", re.IGNORECASE)  # /story.amp, /story.amp.html
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_QUERY_PAIR = r"[A-Za-z0-9\-._~!$'()*+,:@/?]+(?:=[A-Za-z0-9\-._~!$'()*+,:@/?]*)?"
# URLs url-normalize returns exactly as given (tests/test_urls.py has Hypothesis hold it to that): a
# lower-case host name with no IDNA form, no port, path segments neither empty nor dot segments, no
# percent escapes, a query of plain name=value pairs, no fragment. Most links are like this, and
# url-normalize takes 30-40 us a URL (IDNA checks on each label): a tenth of a cold scan's time.
_ALREADY_NORMAL = re.compile(
    rf"https?://(?!(?:[^/]*\.)?[a-z0-9]{{2}}--)(?:{_LABEL}\.)+[a-z]{{2,63}}"
    r"(?:/|(?:/(?!\.\.?(?:/|$|\?))[A-Za-z0-9\-._~!$&'()*+,;=:@]+)+/?)"
    rf"(?:\?{_QUERY_PAIR}(?:&{_QUERY_PAIR})*)?"
)


def is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def canonical_url(url: str) -> str:
    """The address to store: same page, no tracking parameters, normalised case and port.

    http vs https and `www.` are kept as given (a site may serve only one of them); anything that is
    not an http(s) URL comes back stripped but otherwise untouched.
    """
    text = url.strip()
    if _ALREADY_NORMAL.fullmatch(text):  # most links: what the general path gives, without parsing twice
        base, _, query = text.partition("?")
        query = _query(query, keep=lambda name: not is_tracking(name))
        return f"{base}?{query}" if query else base
    return _canonical(text)


def _canonical(text: str) -> str:
    parts = _split(text)
    if parts is None or _UNSAFE.search(text) or parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
        return text
    from url_normalize import url_normalize  # most links skip it (url_key's fast path): not every process pays

    try:
        normal = url_normalize(text) or text
    except Exception:  # noqa: BLE001 - a library's surprise on odd input must never stop a check or an add
        return text
    parts = _split(normal)
    if parts is None or not _host(parts):
        return text
    query = _query(parts.query, keep=lambda name: not is_tracking(name))
    return urlunsplit((parts.scheme, _netloc(parts), parts.path or "/", query, parts.fragment))


def url_key(url: str) -> str:
    """What two addresses of the same article have in common; for duplicate checks only.

    https://www.example.com/story/amp/?utm_source=x and http://example.com/story both give
    https://example.com/story. Idempotent: url_key(url_key(u)) == url_key(u).
    """
    canonical = canonical_url(url)
    if _ALREADY_NORMAL.fullmatch(canonical):  # scheme://host/path?query, host without a port
        host, _, rest = canonical.partition("://")[2].partition("/")
        path, _, query = ("/" + rest).partition("?")
        return _key(host, path, query)
    return _general_key(canonical)


def _general_key(canonical: str) -> str:
    parts = _split(canonical)
    if parts is None or _UNSAFE.search(canonical) or parts.scheme not in DEFAULT_PORTS or not _host(parts):
        return canonical
    host = _netloc(parts, userinfo=False)
    host = host.rsplit(":", 1)[0] if parts.port in DEFAULT_PORTS.values() else host  # the key is always https
    return _key(host, parts.path, parts.query)


def _key(host: str, path: str, query: str) -> str:
    pairs = sorted(
        (n, v)
        for n, v in parse_qsl(query, keep_blank_values=True)
        if n.lower() not in AMP_PARAMS and not (n.lower() == "outputtype" and v.lower() == "amp")
    )
    return urlunsplit(("https", _without_prefixes(host), _plain_path(path), urlencode(pairs), ""))


def _plain_path(path: str) -> str:
    """The path without AMP markers or a trailing slash; repeated, as removing one can expose another."""
    while True:
        shorter = _AMP_SUFFIX.sub("", _AMP_SEGMENT.sub("", path)).rstrip("/")
        if shorter == path:
            return path
        path = shorter


def _without_prefixes(host: str) -> str:
    """`www.`, `m.` and `amp.` off the front, as long as a domain with a dot remains."""
    while True:
        prefix = next((p for p in HOST_PREFIXES if host.startswith(p) and _domain(host[len(p) :])), None)
        if prefix is None:
            return host
        host = host[len(prefix) :]


def _domain(name: str) -> bool:
    """Two or more non-empty labels: what is left after a prefix must still name a site."""
    labels = name.split(".")
    return len(labels) >= 2 and all(labels)


def _host(parts: SplitResult) -> str:
    return (parts.hostname or "").rstrip(".")


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        return None
    return parts


def _netloc(parts: SplitResult, *, userinfo: bool = True) -> str:
    """Host (lower case) and any non-default port, after the user info if asked for."""
    host = _host(parts)
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == DEFAULT_PORTS.get(parts.scheme) else f"{host}:{port}"
    user = parts.netloc.rpartition("@")[0] if userinfo else ""
    return f"{user}@{netloc}" if user else netloc


def _query(query: str, *, keep: Callable[[str], bool]) -> str:
    """The query without the parameters `keep` rejects; the others untouched and in their order."""
    if not query:
        return ""
    pieces = [p for p in query.split("&") if p and keep(_param_name(p))]
    return "&".join(pieces)


def _param_name(piece: str) -> str:
    return unquote_plus(piece.partition("=")[0])
