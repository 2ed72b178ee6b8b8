"""The stage lists: check, build, send and publish a month. The CLI, web front and scheduler call these."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from digest import collect
from digest.collect import Archive, Issue
from digest.config import Config
from digest.errors import Problem
from digest.files import write_atomic
from digest.gcpause import stage

if TYPE_CHECKING:  # the renderers and the store load only when a command needs them
    from digest.delivery.base import SendResult
    from digest.delivery.dispatch import RunStats
    from digest.render.cache import RenderCache, SitePlan
    from digest.render.email import RenderedEmail
    from digest.render.feed import Feeds
    from digest.render.site import Page

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rendered:
    """Every channel of a month, in memory: nothing is written until all of it rendered."""

    issue: Issue
    email: RenderedEmail
    pages: tuple[Page, ...]  # the pages rendered: every one in a full build, else what changed and the index
    feeds: Feeds
    site: SitePlan | None = None  # every issue page's key, for the render cache; pages to remove
    sendable: bool = False  # the preflight passed on this email: `send` need not compose the sample again


@stage
def render(config: Config, month: date | None = None, *, for_sending: bool = False, full: bool = False) -> Rendered:
    """Check all content, then render the month's email, the feeds, the index and the issue pages whose inputs
    changed since the last build (every page with `full`); `for_sending` also composes a sample message and
    refuses (SendRefused) what `send` could not send whole."""
    from digest.render import keep_compiled
    from digest.render.cache import RenderCache, code_version, plan_site
    from digest.render.site import Page, neighbours, page_path, render_page, static_pages

    archive = collect.load_archive(config)  # ContentError lists every problem
    latest = archive.latest_month  # NothingToDo in an empty archive, even with a month asked for
    months = archive.months()
    issue = archive.issue(month or latest, html=False)  # commentary HTML only for what is rendered
    renders = RenderCache(config, archive, full=full)
    _log_warnings(archive, issue, renders.link_warnings(issue.month))
    keep_compiled(config.paths.templates, config.var_dir / "cache" / "templates", code_version())
    recent = months[-config.feeds.keep :]
    feeds_key = renders.feeds_key(recent)
    others = {"index.html": renders.index_key(months), **{name: feeds_key for name in FEED_FILES}}
    issues, plan = _Issues(archive, issue, renders), plan_site(renders, months, others)
    changed = [i for i, m in enumerate(months) if page_path(m) not in plan.kept]
    pages = [
        render_page(issues[months[i]], issues.article(months[i]), issues.pair(neighbours(months, i)), config)
        for i in changed
    ]
    index = Page("index.html", renders.in_output("index.html", plan) or issues.index())
    rendered = Rendered(issue, _email(issues, issue, renders, config), (*pages, index, *static_pages(config)),
                        _feeds(recent, issues, renders, plan), plan)  # fmt: skip
    if for_sending:
        preflight(config, rendered)
        rendered = replace(rendered, sendable=True)
    return rendered


class _Issues:
    """The archive's issues and articles for one render, each made only if something needs it: a build that
    changed nothing builds no issue but the month's."""

    def __init__(self, archive: Archive, issue: Issue, renders: RenderCache):
        self.archive, self.renders, self.config = archive, renders, renders.config
        self._issues = {issue.month: issue}
        self._with_html: dict[date, Issue] = {}  # the article and the email of a month share one render

    def __getitem__(self, month: date) -> Issue:
        if month not in self._issues:
            self._issues[month] = self.archive.issue(month, html=False)
        return self._issues[month]

    def pair(self, months: tuple[date | None, date | None]) -> tuple[Issue | None, Issue | None]:
        """The issues of (older, newer) months; None where there is none."""
        older, newer = months
        return (None if older is None else self[older], None if newer is None else self[newer])

    def with_html(self, month: date) -> Issue:
        """The month's issue with its commentary rendered, made once per build."""
        if month not in self._with_html:
            self._with_html[month] = self.archive.issue(month)
        return self._with_html[month]

    def article(self, month: date) -> str:
        """From the render cache, or rendered (with the commentary's HTML) and cached."""
        from digest.render.site import render_article

        html = self.renders.article(month)
        if html is None:
            html = render_article(self.with_html(month), self.config)
            self.renders.store_article(month, html)
        return html

    def index(self) -> bytes:
        from digest.render.site import render_index_page

        return render_index_page([self[m] for m in self.archive.months()], self.config).body


FEED_FILES = ("feed.xml", "atom.xml", "feed.json")  # in the site folder, in the order of `Feeds`' fields


def _feeds(recent: list[date], issues: _Issues, renders: RenderCache, plan: SitePlan) -> Feeds:
    """RSS, Atom and JSON Feed of the recent issues, as the output holds them when none of them changed."""
    from digest.render.feed import Feeds, render_feeds

    kept = [renders.in_output(name, plan) for name in FEED_FILES]
    if all(body is not None for body in kept):
        return Feeds(*kept)  # type: ignore[arg-type]
    articles = {issues[m].key: issues.article(m) for m in recent}
    return render_feeds([issues[m] for m in recent], articles, renders.config)


def _email(issues: _Issues, issue: Issue, renders: RenderCache, config: Config) -> RenderedEmail:
    """The month's email from the render cache (its warnings said again), or rendered and cached."""
    from digest.render.email import RenderedEmail, render_email

    fields = renders.email(issue.month)
    try:
        email = RenderedEmail(**{**fields, "warnings": tuple(fields["warnings"])}) if fields else None
    except (TypeError, KeyError):  # saved by another version of RenderedEmail
        email = None
    if email is None:
        email = render_email(issues.with_html(issue.month), config)
        renders.store_email(issue.month, email)
        return email
    for warning in email.warnings:
        log.warning("%s", warning)
    return email


def preflight(config: Config, rendered: Rendered) -> None:
    """SendRefused, listing why, unless one real message of this email reads back exactly as composed
    (once per render: a `sendable` one passed already)."""
    if rendered.sendable:
        return
    from digest.delivery import preflight as check

    problems = check.problems(rendered.email, config)
    if problems:
        raise check.SendRefused(rendered.issue.key, problems)


def write(rendered: Rendered, config: Config) -> tuple[Path, ...]:
    """Pages before feeds (no feed item may link to a missing page), then the email files."""
    site = config.paths.output / "site"
    feeds = rendered.feeds
    pages: list[tuple[Path, bytes | str]] = [(site / page.path, page.body) for page in rendered.pages]
    emails = config.paths.output / "email"
    groups: list[list[tuple[Path, bytes | str]]] = [
        pages,
        list(zip((site / name for name in FEED_FILES), (feeds.rss, feeds.atom, feeds.json), strict=True)),
        [
            (emails / f"{rendered.issue.key}.html", rendered.email.html),
            (emails / f"{rendered.issue.key}.txt", rendered.email.text),
        ],
    ]
    files = [file for group in groups for file in group]
    from concurrent.futures import ThreadPoolExecutor  # only a build writes: not every command's start-up

    with ThreadPoolExecutor(max_workers=4) as pool:  # each file's fsync waits on the disk, not the GIL
        for group in groups:  # one group written whole before the next starts
            list(pool.map(lambda file: write_atomic(*file), group))
    if rendered.site is not None:
        _finish_site(rendered.site, config)
    log.info("built %s: %d entries, %d files", rendered.issue.key, len(rendered.issue.entries), len(files))
    return tuple(path for path, _ in files)


def _finish_site(plan: SitePlan, config: Config) -> None:
    """After the index and feeds stopped listing them, remove the pages of months gone; then record every
    page's key, so the next build knows what the output holds."""
    from digest.render.cache import RenderCache, remove_stale

    remove_stale(config.paths.output / "site", plan.stale)
    RenderCache(config, None).save_manifest(plan.keys, plan.kept)  # type: ignore[arg-type]


def build(config: Config, month: date | None = None, *, for_sending: bool = False, full: bool = False) -> Rendered:
    """Render every channel first, so bad input writes nothing; then write them. Without `full`, only what
    changed since the last build is rendered (the render cache in var/cache/render/)."""
    rendered = render(config, month, for_sending=for_sending, full=full)
    write(rendered, config)
    return rendered


def _log_warnings(archive: Archive, issue: Issue, links: list[Problem]) -> None:
    """The month's own warnings one by one (`links`: its commentary's); the rest of the archive's as a count."""
    own = archive.warnings_about(issue.entries)
    for warning in links:
        log.warning("%s", warning)
    for warning in own:
        log.warning("%s", warning)
    if len(archive.warnings) > len(own):
        log.info("%d warning(s) in other months' entries: 'digest check' lists them", len(archive.warnings) - len(own))


@dataclass(frozen=True)
class CheckReport:
    month: str | None
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not any(not p.warning for p in self.problems)


def check(config: Config, month: date | None = None) -> CheckReport:
    """Every content problem at once; with a month, the pre-send checks on its rendered email too."""
    archive = collect.load_archive(config, strict=False, link_warnings=True)
    problems = list(archive.problems)
    if month is None or archive.errors:
        return CheckReport(None if month is None else f"{month:%Y-%m}", tuple(problems))
    from digest import checks
    from digest.render.email import render_email

    issue = archive.issue(month)
    problems += checks.email_problems(render_email(issue, config), issue, config)
    problems += checks.repeated_links(archive, issue, config)
    if config.check.links:  # warnings: a site that is down today must not block the send
        from digest.linkcheck import check_links

        problems += check_links(config, month, archive=archive).problems()
    return CheckReport(issue.key, tuple(problems))


# -- sending ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyReport:
    """What a send to a fixed list of addresses (test copies, previews) did."""

    issue_key: str
    results: tuple[tuple[str, SendResult], ...]  # (address, result)

    @property
    def failed(self) -> int:
        from digest.delivery.base import SendStatus

        return sum(1 for _, r in self.results if r.status != SendStatus.SENT)


def send_copies(config: Config, rendered: Rendered, addresses: list[str], *, adapter: str | None = None) -> CopyReport:
    """Test copies and previews: each gets its own Message-ID; nothing goes in the delivery log."""
    from digest.addresses import InvalidAddress, normalise
    from digest.delivery import make_adapter
    from digest.delivery.message import Composer, Recipients

    checked, invalid = [], []
    for address in addresses:  # the same rule as a subscriber's address, before anything is sent
        try:
            checked.append(normalise(address))
        except InvalidAddress as exc:
            invalid.append(str(exc))
    if invalid:
        raise InvalidAddress("; ".join(invalid) + "; nothing was sent")
    preflight(config, rendered)
    addresses = list(dict.fromkeys(checked))
    recipients = Recipients(config)
    composer = Composer(rendered.email, config)
    results = []
    with make_adapter(config, adapter) as transport:
        for address in addresses:
            recipient = recipients.make(f"{rendered.issue.key}.test-{uuid.uuid4().hex[:10]}", address)
            results.append((address, transport.send(composer.compose(recipient))))
    return CopyReport(rendered.issue.key, tuple(results))


@dataclass(frozen=True)
class SendReport:
    """One `send` run: this run's counters and the issue's delivery counts before and after it."""

    issue_key: str
    stats: RunStats | None  # None for a dry run
    before: dict[str, int]
    after: dict[str, int]
    stopped: bool = False
    queued_only: bool = False  # left for `digest worker`

    @property
    def already_sent(self) -> int:
        from digest.store import DeliveryStatus

        return self.before.get(DeliveryStatus.SENT, 0)

    @property
    def queued(self) -> int:
        from digest.store import DeliveryStatus

        return self.after.get(DeliveryStatus.QUEUED, 0)

    @property
    def remaining(self) -> int:
        from digest.store import DeliveryStatus

        return self.after.get(DeliveryStatus.QUEUED, 0) + self.after.get(DeliveryStatus.SENDING, 0)

    @property
    def ok(self) -> bool:
        return self.stats is None or (self.stats.failed == 0 and not self.stopped)


def send(
    config: Config,
    rendered: Rendered,
    *,
    adapter: str | None = None,
    retry_failed: bool = False,
    dry_run: bool = False,
    stop: threading.Event | None = None,
    on_progress: Callable[[RunStats], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    queue_only: bool | None = None,
) -> SendReport:
    """Queue the issue for every active subscriber without a delivery yet, then send what is queued
    (or, in queue mode, leave the sending to `digest worker` processes)."""
    from digest.delivery.dispatch import Sender
    from digest.store import DeliveryStatus, SubscriberStatus, deliveries, open_store, subscribers

    preflight(config, rendered)  # before the store: nothing is queued for a message that can't be sent
    store = open_store(config)
    try:
        key, email = rendered.issue.key, rendered.email
        if dry_run:
            stored = deliveries.get_issue(store, key)
            before = deliveries.counts(store, stored.id) if stored else {}
            active = subscribers.counts(store).get(SubscriberStatus.ACTIVE, 0)
            would_send = max(active - before.get(DeliveryStatus.SENT, 0), 0)
            return SendReport(key, None, before, {**before, "would_send": would_send})
        issue_id = deliveries.save_issue(store, key, email.subject, email.html, email.text)
        if retry_failed:
            log.info("requeued %d failed deliveries of %s", deliveries.retry_failed(store, issue_id), key)
        before = deliveries.counts(store, issue_id)
        deliveries.enqueue(store, issue_id)
        deliveries.skip_departed(store, issue_id)
        if config.delivery.mode == "queue" if queue_only is None else queue_only:
            return SendReport(key, None, before, deliveries.counts(store, issue_id), queued_only=True)
        if on_total is not None:  # what this run has to send: the progress bar's total and ETA
            waiting = deliveries.counts(store, issue_id)
            on_total(waiting[DeliveryStatus.QUEUED] + waiting[DeliveryStatus.SENDING])
        with Sender(config, store, adapter=adapter, stop=stop, on_progress=on_progress) as sender:
            stats = sender.send_issue(issue_id, key, email)
        deliveries.finish_if_done(store, issue_id)
        after = deliveries.counts(store, issue_id)
        return SendReport(key, stats, before, after, stopped=bool(stop and stop.is_set()))
    finally:
        store.close()
