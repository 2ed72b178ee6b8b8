"""Recorded runs: the monthly job and manual sends, shared by the scheduler and the admin trigger.

A run is a row in `runs` with live counters, so `GET /admin/runs/<id>` (from any process)
can follow it. A scheduled run carries a dedupe key: the month is published once, however
many schedulers fire.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import date, timedelta

from digest import publish
from digest.config import Config
from digest.errors import DigestError, NothingToDo
from digest.store import Store
from digest.store import runs as run_log
from digest.store.runs import Run, RunKind, RunStatus
from digest.store.schema import utcnow

log = logging.getLogger(__name__)
PROGRESS_EVERY = 0.5  # seconds between counter updates in the runs table
ABANDONED_AFTER = timedelta(minutes=30)  # a "running" run this long without progress died with its process


def start_send(store: Store, config: Config, month: date | None, stop: threading.Event) -> Run:
    """Record a manual send of `month` (default: the latest) and run it in a background thread."""
    rendered = publish.render(config, month, for_sending=True)  # bad content, an empty month or a message
    # that could not be sent whole fails here, before the 202
    run = run_log.start(store, RunKind.MANUAL, rendered.issue.key)
    assert run is not None  # manual runs have no dedupe key
    thread = threading.Thread(
        target=_send_run, args=(store, config, rendered, run.id, stop), name=f"digest-run-{run.id[:8]}", daemon=True
    )
    thread.start()
    return run


def run_scheduled(store: Store, config: Config, month: date, stop: threading.Event | None = None) -> Run | None:
    """The monthly job for `month`: publish once (a second call is a no-op returning None)."""
    key = f"{month:%Y-%m}"
    run = run_log.start(store, RunKind.SCHEDULED, key, dedupe=f"scheduled:{key}") or _take_over(store, key)
    if run is None:
        log.info("the scheduled publish of %s already ran; not running it again", key)
        return None
    try:  # in draft mode nothing is published before the writer says so: render only
        rendered = (
            publish.render(config, month, for_sending=True)
            if config.schedule.mode == "draft"
            else publish.build(config, month, for_sending=True)
        )
    except NothingToDo as exc:
        log.info("skipping the scheduled publish of %s: %s", key, exc)
        run_log.finish(store, run.id, RunStatus.SKIPPED, str(exc))
        return run_log.get(store, run.id)
    except Exception as exc:  # noqa: BLE001 - recorded, never left "running" (that would hold the month's dedupe key)
        return _scheduled_failed(store, run.id, key, exc)
    if config.check.links:
        log_links(config, month)
    if config.schedule.mode == "draft":
        try:
            report = publish.send_copies(config, rendered, list(config.delivery.recipients))
        except Exception as exc:  # noqa: BLE001 - e.g. the SMTP server is unreachable
            return _scheduled_failed(store, run.id, key, exc)
        sent = len(report.results) - report.failed
        detail = f"preview sent to {sent} of {len(report.results)}; the send waits for POST /admin/send"
        log.info("%s: %s", key, detail)
        run_log.finish(store, run.id, RunStatus.AWAITING_SEND, detail)
        return run_log.get(store, run.id)
    _send_run(store, config, rendered, run.id, stop or threading.Event())
    return run_log.get(store, run.id)


def log_links(config: Config, month: date) -> None:
    """Log the month's dead and moved links before the send; never stops it (a site may be down for an hour)."""
    from digest.linkcheck import check_links

    try:
        report = check_links(config, month)
    except Exception as exc:  # noqa: BLE001 - the link check is advice; the send goes on
        log.warning("the link check of %s failed: %s", f"{month:%Y-%m}", exc)
        return
    for problem in report.problems():
        log.warning("%s", problem)
    log.info(
        "link check of %s: %d link(s), %d dead, %d moved",
        report.scope,
        len({f.use.url for f in report.findings}),
        len(report.dead),
        len(report.moved),
    )


def _take_over(store: Store, key: str) -> Run | None:
    """Restart a scheduled run whose process died mid-run (no progress for a long time); else None."""
    dedupe = f"scheduled:{key}"
    found = run_log.by_dedupe(store, dedupe)
    if found is None or found.status != RunStatus.RUNNING or utcnow() - found.updated_at < ABANDONED_AFTER:
        return None
    log.warning("the scheduled publish of %s made no progress since %s; running it again", key, found.updated_at)
    run_log.finish(store, found.id, RunStatus.FAILED, "abandoned: its process stopped while running")
    return run_log.start(store, RunKind.SCHEDULED, key, dedupe=dedupe)


def _scheduled_failed(store: Store, run_id: str, key: str, exc: Exception) -> Run | None:
    if isinstance(exc, DigestError):
        log.error("the scheduled publish of %s failed: %s", key, exc)
    else:
        log.exception("the scheduled publish of %s failed: %s", key, exc)
    run_log.finish(store, run_id, RunStatus.FAILED, str(exc))
    return run_log.get(store, run_id)


def _send_run(store: Store, config: Config, rendered: publish.Rendered, run_id: str, stop: threading.Event) -> None:
    """Send, mirroring the counters into the run row; any failure is recorded, never raised."""
    last = [0.0]

    def progress(stats) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY:
            last[0] = now
            run_log.progress(store, run_id, stats.sent, stats.retried, stats.failed)

    try:
        publish.write(rendered, config)  # site and feeds go out with the email (unchanged files are left alone)
        report = publish.send(config, rendered, stop=stop, on_progress=progress)
    except Exception as exc:  # noqa: BLE001 - a job failure is logged and recorded; the process lives on
        log.exception("sending %s failed: %s", rendered.issue.key, exc)
        run_log.finish(store, run_id, RunStatus.FAILED, str(exc))
        return
    if report.queued_only:
        detail = f"queued for {report.queued} subscriber(s); digest worker processes send them"
        log.info("%s: %s", rendered.issue.key, detail)
        run_log.finish(store, run_id, RunStatus.SUCCEEDED, detail)
        return
    stats = report.stats
    assert stats is not None  # only a dry run has none
    run_log.progress(store, run_id, stats.sent, stats.retried, stats.failed)
    status = RunStatus.SUCCEEDED if report.ok else RunStatus.FAILED
    detail = (
        f"sent {stats.sent}, retried {stats.retried}, failed {stats.failed}, skipped {report.already_sent} already sent"
    )
    if report.stopped:
        detail += f"; stopped with {report.remaining} left"
    log.info("%s: %s", rendered.issue.key, detail)
    run_log.finish(store, run_id, status, detail)
    if status == RunStatus.SUCCEEDED:
        run_log.resolve_awaiting(store, rendered.issue.key, f"sent by run {run_id}: {detail}")
