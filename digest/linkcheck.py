"""The link check as the writer runs it: a month's (or the archive's) URLs, cached results, the report.

`digest links check`, `digest check --month` with `[check] links = true`, and the monthly job all
come here; `links` does the HTTP, `urlfix` rewrites a moved URL in its entry file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from digest.collect import Archive, display_path, load_archive
from digest.config import Config
from digest.errors import Problem
from digest.links import (
    Limits,
    LinkCache,
    LinkResult,
    LinkStatus,
    LinkUse,
    cache_path,
    check_urls,
    month_label,
    utc_now,
    wayback_url,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finding:
    """One entry's link with its result."""

    use: LinkUse
    result: LinkResult
    fixed: bool = False  # --fix-redirects rewrote the entry's url


@dataclass(frozen=True)
class LinkReport:
    scope: str  # "2025-02" or "the archive"
    findings: tuple[Finding, ...]
    checked_at: datetime  # when this run looked: the ages are relative to it
    requested: int  # URLs asked over the network this run (the others came from the cache)

    @property
    def dead(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.result.status == LinkStatus.DEAD)

    @property
    def moved(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.result.status == LinkStatus.MOVED)

    def age(self, finding: Finding) -> str:
        return describe_age(finding.result.age(self.checked_at))

    def problems(self) -> list[Problem]:
        """Dead links and permanent moves as warnings, for `digest check --month`."""
        found = []
        for finding in self.dead:
            found.append(
                Problem(
                    finding.use.path,
                    f"dead link {finding.use.url}: {finding.result.detail} (checked {self.age(finding)})",
                    finding.use.line,
                    hint=f"replace or remove it; archived copies: {wayback_url(finding.use.url)}",
                    warning=True,
                )
            )
        for finding in self.moved:
            found.append(
                Problem(
                    finding.use.path,
                    f"{finding.use.url} moved permanently to {finding.result.moved_to}",
                    finding.use.line,
                    hint="digest links check --fix-redirects rewrites it",
                    warning=True,
                )
            )
        return found


def check_links(
    config: Config, month: date | None = None, *, fix_redirects: bool = False, archive: Archive | None = None
) -> LinkReport:
    """Check the URLs of `month`'s entries (every entry without a month); reuse young cached results."""
    from digest.urlfix import rewrite_url

    uses = link_uses(config, month, archive)
    cache = LinkCache(cache_path(config))
    now = utc_now()
    max_age = timedelta(hours=config.check.links_max_age_hours)
    urls = list(dict.fromkeys(use.url for use in uses))
    cached = {url: hit for url in urls if (hit := cache.fresh(url, max_age, now)) is not None}
    missing = [url for url in urls if url not in cached]
    fetched = check_urls(missing, limits(config)) if missing else {}
    if fetched:
        cache.update(fetched)
        cache.save()
    results = {**cached, **fetched}
    findings = []
    for use in uses:
        result = results[use.url]
        fixed = bool(fix_redirects and result.status == LinkStatus.MOVED and result.moved_to)
        if fixed:
            fixed = rewrite_url(use.file, use.line, use.url, result.moved_to or "")
        findings.append(Finding(use, result, fixed))
    log.info("checked %d link(s) of %s: %d from the network", len(urls), month_label(month), len(missing))
    return LinkReport(month_label(month), tuple(findings), now, len(missing))


def limits(config: Config) -> Limits:
    return Limits(timeout=config.check.links_timeout, retries=config.check.links_retries)


def link_uses(config: Config, month: date | None, archive: Archive | None = None) -> list[LinkUse]:
    """Every entry URL of the month (drafts too: they are about to go out), sorted by file."""
    archive = archive or load_archive(config, strict=False)
    records = [r for r in archive.records if month is None or r.month == month]
    uses = []
    for record in sorted(records, key=lambda r: r.path):
        if record.fields.url:
            path = Path(record.path)
            uses.append(LinkUse(display_path(path, config), path, record.url_line, record.fields.url))
    return uses


def describe_age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"
