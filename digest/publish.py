"""The stage lists: check, build, send and publish a month. The CLI, web front and scheduler call these."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from digest import collect
from digest.collect import Archive, Issue
from digest.config import Config
from digest.errors import Problem
from digest.files import write_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Build:
    issue: Issue
    email: object  # RenderedEmail; typed loosely so importing this module stays cheap
    written: tuple[Path, ...]
    warnings: tuple[str, ...] = ()


def choose_month(archive: Archive, month: date | None) -> Issue:
    """The requested month's issue, or the latest month's; NothingToDo when empty."""
    return archive.issue(month or archive.latest_month)


def build(config: Config, month: date | None = None) -> Build:
    """Render every channel first, so bad input writes nothing; then pages, feeds, email."""
    from digest.render.email import render_email
    from digest.render.feed import render_feeds
    from digest.render.site import render_article, render_site

    archive = collect.load_archive(config)  # ContentError lists every problem
    issue = choose_month(archive, month)
    _log_warnings(archive, issue)
    email = render_email(issue, config)
    issues = [archive.issue(m) for m in archive.months()]
    articles = {i.key: render_article(i, config) for i in issues}
    feeds = render_feeds(issues[-config.feeds.keep :], articles, config)
    pages = render_site(issues, articles, config)
    site = config.paths.output / "site"
    written = []
    for page in pages:  # pages before feeds: no feed item may link to a missing page
        written.append(_write(site / page.path, page.body))
    for name, body in (("feed.xml", feeds.rss), ("atom.xml", feeds.atom), ("feed.json", feeds.json)):
        written.append(_write(site / name, body))
    emails = config.paths.output / "email"
    written.append(_write(emails / f"{issue.key}.html", email.html))
    written.append(_write(emails / f"{issue.key}.txt", email.text))
    log.info("built %s: %d entries, %d files", issue.key, len(issue.entries), len(written))
    return Build(issue, email, tuple(written), email.warnings)


def _log_warnings(archive: Archive, issue: Issue) -> None:
    """The month's own warnings one by one; the rest of the archive's as a count."""
    mine = {str(e.path.name) for e in issue.entries}
    own = [w for w in archive.warnings if Path(str(w.path)).name in mine]
    for warning in own:
        log.warning("%s", warning)
    others = len(archive.warnings) - len(own)
    if others:
        log.info("%d warning(s) in other months' entries: 'digest check' lists them", others)


def _write(path: Path, body: bytes | str) -> Path:
    write_atomic(path, body)
    return path


@dataclass(frozen=True)
class CheckReport:
    month: str | None
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not any(not p.warning for p in self.problems)


def check(config: Config, month: date | None = None) -> CheckReport:
    """Every content problem at once; with a month, the pre-send checks on its rendered email too."""
    archive = collect.load_archive(config, strict=False)
    problems = list(archive.problems)
    if month is None or archive.errors:
        return CheckReport(None if month is None else f"{month:%Y-%m}", tuple(problems))
    from digest import checks
    from digest.render.email import render_email

    issue = archive.issue(month)
    problems += checks.email_problems(render_email(issue, config), issue, config)
    problems += checks.repeated_links(archive, issue, config)
    return CheckReport(issue.key, tuple(problems))


@dataclass(frozen=True)
class CopyReport:
    """What a send to a fixed list of addresses (test copies, previews) did."""

    issue_key: str
    results: tuple[tuple[str, object], ...]  # (address, SendResult)

    @property
    def failed(self) -> int:
        return sum(1 for _, r in self.results if r.status != "sent")


def send_copies(config: Config, build: Build, addresses: list[str], *, adapter: str | None = None, test: bool = True) -> CopyReport:
    """Send the built issue to `addresses` only; nothing is recorded in the delivery log."""
    from digest import tokens
    from digest.delivery import make_adapter
    from digest.delivery.message import Composer, Recipient

    secret = tokens.secret_key(config)
    domain = tokens.sender_domain(config)
    composer = Composer(build.email, config)
    results = []
    with make_adapter(config, adapter) as transport:
        for address in addresses:
            key = f"{build.issue.key}.test-{uuid.uuid4().hex[:10]}" if test else build.issue.key
            recipient = Recipient(
                address=address,
                message_id=tokens.message_id(secret, key, address, domain),
                unsubscribe_url=tokens.unsubscribe_url(config, secret, tokens.TokenSubject(address)),
            )
            results.append((address, transport.send(composer.compose(recipient))))
    return CopyReport(build.issue.key, tuple(results))
