"""`digest status`: the delivery log's figures, readable at any time, even mid-send."""

from __future__ import annotations

from datetime import date

from digest.config import Config
from digest.errors import NothingToDo


def render_status(config: Config, month: date | None = None) -> str:
    from digest.publish import open_store
    from digest.store import deliveries as ledger
    from digest.store import reports, subscribers, workers

    store = open_store(config)
    lines = []
    subs = subscribers.counts(store)
    lines.append(
        "subscribers: " + ", ".join(f"{subs.get(s, 0)} {s}" for s in ("active", "pending", "unsubscribed", "bounced"))
    )
    issues = ledger.list_issues(store)
    if month is not None:
        issues = [i for i in issues if i.key == f"{month:%Y-%m}"]
        if not issues:
            raise NothingToDo(f"{month:%Y-%m} has not been sent")
    events, left = reports.counts_by_issue(store), reports.unsubscribes_by_issue(store)
    for issue in issues:
        c = ledger.counts(store, issue.id)
        state = "finished" if issue.sending_finished_at else ("sending" if issue.sending_started_at else "built")
        lines.append(
            f"{issue.key}: {state}; sent {c['sent']}, queued {c['queued']}, in flight {c['sending']}, "
            f"failed {c['failed']}, "
            f"skipped {c['skipped']}" + (f", resent after a crash {c['resent_unknown']}" if c["resent_unknown"] else "")
        )
        if issue.sending_started_at:
            lines.append(
                f"  started {issue.sending_started_at:%Y-%m-%d %H:%M:%S} UTC"
                + (f", finished {issue.sending_finished_at:%Y-%m-%d %H:%M:%S} UTC" if issue.sending_finished_at else "")
            )
        lines += _after(events.get(issue.id, {}), left.get(issue.id, 0))
        if month is not None:
            lines += [f"  failed: {email}: {error}" for email, error in ledger.failures(store, issue.id)]
    active = [w for w in workers.listing(store) if w.alive]
    lines.append(f"workers: {len(active)} running")
    for w in active:
        elapsed = max((w.heartbeat_at - w.started_at).total_seconds(), 1e-6)
        lines.append(
            f"  #{w.id} {w.host} pid {w.pid}: {w.claimed} claimed, {w.sent} sent ({w.sent / elapsed:.0f} msg/s), "
            f"lease until {w.lease_until:%H:%M:%S} UTC"
        )
    if not issues and month is None:
        lines.append("no issue has been sent yet")
    store.close()
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
