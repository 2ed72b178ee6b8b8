"""One month rendered for the preview, in memory: the email as it would be sent and the pages `digest build`
would write, or the problems that stopped it, as `digest check` words them. Nothing is written to output/
and the render cache is not used: a preview must never change what the next build reuses."""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from digest import collect
from digest.config import Config, load_config
from digest.errors import ConfigError, ContentError, DigestError, NothingToDo

log = logging.getLogger(__name__)

DARK_QUERY = re.compile(r"\(\s*prefers-color-scheme\s*:\s*dark\s*\)", re.IGNORECASE)
LIGHT_QUERY = re.compile(r"\(\s*prefers-color-scheme\s*:\s*light\s*\)", re.IGNORECASE)
ALWAYS, NEVER = "(min-width: 0px)", "(max-width: -1px)"  # media features every / no viewport matches


@dataclass(frozen=True)
class Snapshot:
    """What the preview shows until the next edit: either a rendered month or `problems` (never both)."""

    month: str = ""  # "2025-02"
    subject: str = ""
    preheader: str = ""
    html: str = ""  # the email, its unsubscribe slot already filled with the preview's harmless URL
    text: str = ""
    pages: dict[str, bytes] = field(default_factory=dict)  # site path ("index.html", "2025/02/index.html") -> body
    warnings: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()  # "error: content/2025/02/a.md:3: ..." lines


def render_snapshot(config_path: Path, month: date | None, unsubscribe_url: str) -> tuple[Snapshot, Config | None]:
    """Read digest.toml again and render the month; a bad edit anywhere becomes a Snapshot of its problems."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return Snapshot(problems=tuple(f"error: {p}" for p in exc.problems)), None
    return render_month(config, month, unsubscribe_url), config


def render_month(config: Config, month: date | None, unsubscribe_url: str) -> Snapshot:
    """The month's email, issue page, index and stylesheet (the latest month with entries by default)."""
    from digest.render import environment

    environment.cache_clear()  # a template added to the site's folder overrides the theme's from now on
    try:
        return _render(config, month, unsubscribe_url)
    except NothingToDo:
        raise  # no month to show: the caller decides whether that is fatal
    except (ContentError, ConfigError) as exc:
        return Snapshot(problems=tuple(f"error: {p}" for p in exc.problems))
    except DigestError as exc:  # a template's syntax error or missing file, named with its line
        return Snapshot(problems=(f"error: {exc}",))
    except Exception as exc:  # noqa: BLE001 (a preview outlives any edit; the traceback goes to the log)
        log.exception("the preview could not render")
        return Snapshot(problems=(f"error: {type(exc).__name__}: {exc}",))


def _render(config: Config, month: date | None, unsubscribe_url: str) -> Snapshot:
    from digest.render.email import render_email
    from digest.render.site import neighbours, render_article, render_index_page, render_page, static_pages

    archive = collect.load_archive(config)  # ContentError lists every problem
    months = archive.months()
    if not months:
        raise NothingToDo(f"no entries in {config.paths.content}: add one with 'digest add URL --title ...'")
    chosen = month or months[-1]
    if chosen not in months:
        shown = ", ".join(f"{m:%Y-%m}" for m in months[-6:])
        raise NothingToDo(f"no entries for {chosen:%Y-%m}: nothing to preview (months with entries: {shown})")
    issue = archive.issue(chosen)
    email = render_email(issue, config)
    others = {m: archive.issue(m, html=False) for m in months if m != chosen}
    ordered = [issue if m == chosen else others[m] for m in months]
    older, newer = neighbours(ordered, months.index(chosen))
    pages = (
        render_page(issue, render_article(issue, config), (older, newer), config),
        render_index_page(ordered, config),
        *static_pages(config),
    )
    warnings = [f"warning: {w}" for w in archive.warnings_about(issue.entries)]
    return Snapshot(
        month=issue.key,
        subject=email.subject,
        preheader=issue.preheader,
        html=email.html.replace(email.slot, unsubscribe_url),
        text=email.text.replace(email.slot, unsubscribe_url),
        pages={page.path: _local_links(page.body, config) for page in pages},
        warnings=(*warnings, *(f"warning: {w}" for w in email.warnings)),
    )


def _local_links(body: bytes, config: Config) -> bytes:
    """Links to the site's own pages point into the preview instead of the live site."""
    base = html.escape(config.site.base_url, quote=True)
    return body.replace(f'"{base}'.encode(), b'"/site/')


def force_scheme(email_html: str, scheme: str) -> str:
    """The email as a mail client in light or dark mode shows it, whatever the viewer's own setting:
    its `prefers-color-scheme` media queries are made to match (or never match), and the page's
    color-scheme is set as Apple Mail sets it for a `light dark` email."""
    dark = scheme == "dark"
    forced = DARK_QUERY.sub(ALWAYS if dark else NEVER, email_html)
    forced = LIGHT_QUERY.sub(NEVER if dark else ALWAYS, forced)
    style = f"<style>:root {{ color-scheme: {'dark' if dark else 'light'} !important; }}</style>"
    head_end = forced.lower().find("</head>")
    return forced[:head_end] + style + forced[head_end:] if head_end >= 0 else style + forced
