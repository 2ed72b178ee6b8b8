"""`digest add`: one link -> a validated entry file."""

from __future__ import annotations

from datetime import datetime

from digest.collect import display_path
from digest.config import Config
from digest.content import parse_entry, url_problem
from digest.errors import DigestError, Problem
from digest.files import write_atomic
from digest.importers import entry_file


def add_entry(
    config: Config,
    *,
    url: str | None,
    title: str,
    section: str | None = None,
    source: str | None = None,
    note: str = "",
    quote: str | None = None,
    tags: tuple[str, ...] = (),
    when: str | None = None,
) -> tuple[object, list[Problem]]:
    """Validate the values as `digest check` would, then write the file; nothing is written on error."""
    if url and url_problem(url):
        raise DigestError(f"{url_problem(url)}: use an http:// or https:// address")
    moment = _parse_when(when, config)
    planned = entry_file(
        config, title=title, url=url, when=moment, section=section, source=source, note=note, quote=quote, tags=tags
    )
    shown = display_path(planned.path, config)
    entry, problems = parse_entry(shown, planned.text.encode(), config.site.sections, config.site.tz)
    if entry is None:  # e.g. an unknown section: checked before anything (file or folder) is written
        raise DigestError("; ".join(p.message + (f" ({p.hint})" if p.hint else "") for p in problems if not p.warning))
    if not planned.exists:
        write_atomic(planned.path, planned.text)
    return shown, [p for p in problems if p.warning]


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
