"""`digest add`: one link -> a validated entry file, its title read from the page unless given."""

from __future__ import annotations

import contextlib
import textwrap
from datetime import datetime
from urllib.parse import urlsplit

import yaml

from digest.collect import display_path
from digest.config import Config
from digest.content import parse_entry, url_problem
from digest.errors import DigestError, Problem
from digest.files import write_atomic
from digest.importers import entry_file
from digest.urls import canonical_url

SUGGESTION = "# suggested note, from the page's description (a comment: readers never see it):"


def add_entry(
    config: Config,
    *,
    url: str | None,
    title: str | None,
    section: str | None = None,
    source: str | None = None,
    note: str = "",
    quote: str | None = None,
    tags: tuple[str, ...] = (),
    when: str | None = None,
    fetch: bool = True,
    fetch_timeout: float | None = None,
) -> tuple[object, list[Problem]]:
    """Validate the values as `digest check` would, then write the file; nothing is written on error.

    Without a title the page is fetched for one (and for the source and a suggested note); the URL
    stored is the canonical one: the page's own `<link rel="canonical">` or og:url, cleaned of tracking.
    """
    if url and url_problem(url):
        raise DigestError(f"{url_problem(url)}: use an http:// or https:// address")
    moment = _parse_when(when, config)
    suggestion = ""
    if title is None:
        url, title, source, suggestion = _from_page(url, source, fetch, fetch_timeout)
    url = canonical_url(url) if url else url
    planned = entry_file(
        config, title=title, url=url, when=moment, section=section, source=source, note=note, quote=quote, tags=tags
    )
    text = with_suggestion(planned.text, suggestion)
    shown = display_path(planned.path, config)
    entry, problems = parse_entry(shown, text.encode(), config.site.sections, config.site.tz)
    if entry is None:  # e.g. an unknown section: checked before anything (file or folder) is written
        raise DigestError("; ".join(p.message + (f" ({p.hint})" if p.hint else "") for p in problems if not p.warning))
    if not planned.exists:
        write_atomic(planned.path, text)
    return shown, [p for p in problems if p.warning]


def _from_page(
    url: str | None, source: str | None, fetch: bool, timeout: float | None
) -> tuple[str, str, str | None, str]:
    """(url, title, source, suggested note) read from the page at `url`."""
    from digest.pagemeta import FETCH_TIMEOUT, FetchError, fetch_page

    if not url:
        raise DigestError('--title is required without a URL: pass --title "..."')
    if not fetch:
        raise DigestError(
            '--no-fetch needs --title: pass --title "...", or leave out --no-fetch to read it from the page'
        )
    page = fetch_page(url, timeout=timeout or FETCH_TIMEOUT)
    if not page.title:
        raise FetchError(url, "the page has neither og:title nor a <title>")
    stored = page.canonical if page.canonical and not url_problem(page.canonical) else url
    return stored, page.title, source or page.site_name or host_name(stored), page.description or ""


def host_name(url: str) -> str | None:
    """The host as a reader would write it: no `www.`, Unicode rather than punycode."""
    host = (urlsplit(url).hostname or "").rstrip(".")
    with contextlib.suppress(UnicodeError):
        host = host.encode("ascii").decode("idna") if "xn--" in host else host
    return host.removeprefix("www.") or None


def with_suggestion(text: str, suggestion: str) -> str:
    """The entry's text with `suggestion` as YAML comment lines at the end of the front matter."""
    if not suggestion.strip():
        return text
    printable = yaml.reader.Reader.NON_PRINTABLE.sub("", suggestion)  # YAML refuses such characters even in comments
    lines = textwrap.wrap(" ".join(printable.split()), 100, break_long_words=False, break_on_hyphens=False)
    comment = "\n".join([SUGGESTION, *(f"#   {line}" for line in lines)]) + "\n"
    head, sep, rest = text[4:].partition("---\n")  # the text starts "---\n"; its front matter ends at the next
    return f"---\n{head}{comment}{sep}{rest}"


def _parse_when(value: str | None, config: Config) -> datetime:
    tz = config.site.tz
    if not value:
        return datetime.now(tz).replace(microsecond=0)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise DigestError(
            f"--date {value!r} is not a date: use YYYY-MM-DD or an ISO datetime such as 2025-02-28T22:59:00+01:00"
        ) from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
    try:
        local = parsed.astimezone(tz)
    except OverflowError:
        local = None
    if local is None or not 2 <= local.year <= 9998:
        raise DigestError(f"--date {value!r} is out of range: use a date between the years 2 and 9998")
    return parsed
