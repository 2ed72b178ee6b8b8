"""`digest add`: one link -> a validated entry file."""

from __future__ import annotations

from datetime import datetime

from digest.collect import display_path
from digest.config import Config
from digest.content import parse_entry, url_problem
from digest.errors import DigestError, Problem
from digest.importers import write_entry


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
    path = write_entry(config, title=title, url=url, when=moment, section=section, source=source, note=note, quote=quote, tags=tags)
    entry, problems = parse_entry(path, path.read_bytes(), config.site.sections, config.site.tz)
    if entry is None:  # e.g. an unknown section: remove the file rather than leave an invalid one
        path.unlink()
        raise DigestError("; ".join(p.message + (f" ({p.hint})" if p.hint else "") for p in problems if not p.warning))
    return display_path(path, config), [p for p in problems if p.warning]


def _parse_when(value: str | None, config: Config) -> datetime:
    tz = config.site.tz
    if not value:
        return datetime.now(tz).replace(microsecond=0)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise DigestError(f"--date {value!r} is not a date: use YYYY-MM-DD or an ISO datetime such as 2025-02-28T22:59:00+01:00") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
