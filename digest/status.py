"""`digest status`: the delivery log's figures, readable at any time, even mid-send; as text or as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from digest.config import Config
from digest.errors import NothingToDo
from digest.store.statuses import DeliveryStatus, SubscriberStatus

if TYPE_CHECKING:
    from digest.store.workers import Worker

SUBSCRIBER_STATES = (
    SubscriberStatus.ACTIVE, SubscriberStatus.PENDING, SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED
)  # fmt: skip
EVENT_KINDS = ("hard_bounce", "soft_bounce", "complaint")


@dataclass(frozen=True)
class IssueFigures:
    """One issue's deliveries and what came back after it."""

    key: str
    subject: str
    built_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int]  # DeliveryStatus -> deliveries, and "resent_unknown"
    events: dict[str, int]  # EVENT_KINDS -> reports that arrived later
    unsubscribed: int  # readers who left after this issue
    failures: tuple[tuple[str, str], ...]  # (address, last error), when asked for

    @property
    def state(self) -> str:
        return "finished" if self.finished_at else ("sending" if self.started_at else "built")

    @property
    def remaining(self) -> int:
        return self.counts[DeliveryStatus.QUEUED] + self.counts[DeliveryStatus.SENDING]

    def rate(self, now: datetime) -> float | None:
        """Messages sent per second since sending started (to its end, or to now)."""
        if self.started_at is None:
            return None
        elapsed = ((self.finished_at or now) - self.started_at).total_seconds()
        return self.counts[DeliveryStatus.SENT] / elapsed if elapsed > 0 else None

    def eta_seconds(self, now: datetime) -> float | None:
        """At the rate so far, how long the queued and in-flight deliveries take; only while sending."""
        rate = self.rate(now)
        if self.state != "sending" or not rate:
            return None
        return self.remaining / rate


@dataclass(frozen=True)
class WorkerFigures:
    id: int
    host: str
    pid: int
    running: bool  # False once stopped, or once its lease lapsed without a heartbeat (a dead sender)
    started_at: datetime
    heartbeat_at: datetime
    lease_until: datetime
    stopped_at: datetime | None
    claimed: int
    sent: int
    failed: int

    @property
    def rate(self) -> float:
        """Messages per second from its start to its last heartbeat."""
        return self.sent / max((self.heartbeat_at - self.started_at).total_seconds(), 1e-6)


@dataclass(frozen=True)
class Status:
    at: datetime
    month: date | None
    subscribers: dict[str, int]  # SubscriberStatus -> subscribers
    issues: tuple[IssueFigures, ...]
    workers: tuple[WorkerFigures, ...]  # running ones, and those whose lease lapsed without a stop


def gather_status(config: Config, month: date | None = None, failures: bool | None = None) -> Status:
    """Every figure status shows, read once; the failures of each issue with a month (or `failures`)."""
    from digest.store import deliveries, open_store, reports, subscribers, workers
    from digest.store.schema import utcnow

    store = open_store(config)
    try:
        subs = subscribers.counts(store)
        stored = deliveries.list_issues(store)
        if month is not None:
            stored = [i for i in stored if i.key == f"{month:%Y-%m}"]
            if not stored:
                raise NothingToDo(f"{month:%Y-%m} has not been sent")
        events, left = reports.counts_by_issue(store), reports.unsubscribes_by_issue(store)
        with_failures = month is not None if failures is None else failures
        issues = tuple(
            IssueFigures(
                key=i.key,
                subject=i.subject,
                built_at=i.built_at,
                started_at=i.sending_started_at,
                finished_at=i.sending_finished_at,
                counts=deliveries.counts(store, i.id),
                events={kind: events.get(i.id, {}).get(kind, 0) for kind in EVENT_KINDS},
                unsubscribed=left.get(i.id, 0),
                failures=tuple(deliveries.failures(store, i.id)) if with_failures else (),
            )
            for i in stored
        )
        senders = tuple(_worker(w) for w in workers.listing(store))
    finally:
        store.close()
    counts: dict[str, int] = {state: subs.get(state, 0) for state in SUBSCRIBER_STATES}
    return Status(utcnow(), month, counts, issues, senders)


def _worker(w: Worker) -> WorkerFigures:
    return WorkerFigures(
        w.id, w.host, w.pid, w.alive, w.started_at, w.heartbeat_at, w.lease_until, w.stopped_at, w.claimed, w.sent,
        w.failed,
    )  # fmt: skip


# -- text ----------------------------------------------------------------------------------------


def render_status(config: Config, month: date | None = None) -> str:
    return status_text(gather_status(config, month))


def status_text(status: Status) -> str:
    subs = status.subscribers
    lines = ["subscribers: " + ", ".join(f"{subs[s]} {s}" for s in SUBSCRIBER_STATES)]
    for issue in status.issues:
        c = issue.counts
        lines.append(
            f"{issue.key}: {issue.state}; sent {c[DeliveryStatus.SENT]}, queued {c[DeliveryStatus.QUEUED]}, "
            f"in flight {c[DeliveryStatus.SENDING]}, failed {c[DeliveryStatus.FAILED]}, "
            f"skipped {c[DeliveryStatus.SKIPPED]}"
            + (f", resent after a crash {c['resent_unknown']}" if c["resent_unknown"] else "")
        )
        if issue.started_at:
            lines.append(
                f"  started {issue.started_at:%Y-%m-%d %H:%M:%S} UTC"
                + (f", finished {issue.finished_at:%Y-%m-%d %H:%M:%S} UTC" if issue.finished_at else "")
            )
        lines += _after(issue.events, issue.unsubscribed)
        if status.month is not None:
            lines += [f"  failed: {email}: {error}" for email, error in issue.failures]
    active = [w for w in status.workers if w.running]
    lines.append(f"workers: {len(active)} running")
    for w in active:
        lines.append(
            f"  #{w.id} {w.host} pid {w.pid}: {w.claimed} claimed, {w.sent} sent ({w.rate:.0f} msg/s), "
            f"lease until {w.lease_until:%H:%M:%S} UTC"
        )
    if not status.issues and status.month is None:
        lines.append("no issue has been sent yet")
    return "\n".join(lines)


def _after(events: dict[str, int], unsubscribed: int) -> list[str]:
    """What came back after an issue: bounces and complaints reported later, and who left after it."""
    figures = [
        (events.get("hard_bounce", 0), "hard bounce", "hard bounces"),
        (events.get("soft_bounce", 0), "soft bounce", "soft bounces"),
        (events.get("complaint", 0), "complaint", "complaints"),
    ]
    parts = [f"{n} {one if n == 1 else many}" for n, one, many in figures] + [f"{unsubscribed} unsubscribed"]
    return [f"  after it: {', '.join(parts)}"] if any(n for n, _, _ in figures) or unsubscribed else []


# -- JSON ----------------------------------------------------------------------------------------


def status_json(status: Status) -> str:
    """One JSON document for scripts and dashboards: every key always present (null when unknown),
    times in ISO 8601 UTC, counts as integers, rates in messages per second."""
    document = {
        "generated_at": _iso(status.at),
        "month": f"{status.month:%Y-%m}" if status.month else None,
        "subscribers": status.subscribers | {"total": sum(status.subscribers.values())},
        "issues": [_issue_json(issue, status.at) for issue in status.issues],
        "workers": {
            "running": sum(1 for w in status.workers if w.running),
            "list": [_worker_json(w) for w in status.workers],
        },
    }
    return json.dumps(document, ensure_ascii=False, indent=2)


def _issue_json(issue: IssueFigures, now: datetime) -> dict[str, object]:
    c = issue.counts
    rate, eta = issue.rate(now), issue.eta_seconds(now)
    return {
        "key": issue.key,
        "subject": issue.subject,
        "state": issue.state,
        "built_at": _iso(issue.built_at),
        "started_at": _iso(issue.started_at),
        "finished_at": _iso(issue.finished_at),
        "deliveries": {
            "total": sum(c[s] for s in DeliveryStatus),
            "sent": c[DeliveryStatus.SENT],
            "queued": c[DeliveryStatus.QUEUED],
            "in_flight": c[DeliveryStatus.SENDING],
            "failed": c[DeliveryStatus.FAILED],
            "skipped": c[DeliveryStatus.SKIPPED],
            "resent_after_crash": c["resent_unknown"],
            "remaining": issue.remaining,
        },
        "rate_per_second": round(rate, 3) if rate is not None else None,
        "eta_seconds": round(eta, 1) if eta is not None else None,
        "after": {
            "hard_bounces": issue.events["hard_bounce"],
            "soft_bounces": issue.events["soft_bounce"],
            "complaints": issue.events["complaint"],
            "unsubscribed": issue.unsubscribed,
        },
        "failures": [{"address": address, "error": error} for address, error in issue.failures],
    }


def _worker_json(w: WorkerFigures) -> dict[str, object]:
    return {
        "id": w.id,
        "host": w.host,
        "pid": w.pid,
        "state": "running" if w.running else "stopped",
        "lease_lapsed": w.stopped_at is None and not w.running,
        "started_at": _iso(w.started_at),
        "heartbeat_at": _iso(w.heartbeat_at),
        "lease_until": _iso(w.lease_until),
        "stopped_at": _iso(w.stopped_at),
        "claimed": w.claimed,
        "sent": w.sent,
        "failed": w.failed,
        "rate_per_second": round(w.rate, 3),
    }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


__all__ = ["gather_status", "render_status", "status_text", "status_json", "Status", "IssueFigures", "WorkerFigures"]
