"""The delivery ledger: one row per (issue, subscriber), claimed, sent and recorded exactly once."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, insert, literal, or_, select, update

from digest.store import DeliveryStatus, Store, SubscriberStatus
from digest.store.schema import deliveries, issues, subscribers, utcnow


@dataclass(frozen=True)
class StoredIssue:
    id: int
    key: str
    subject: str
    html: str
    text: str
    built_at: datetime
    sending_started_at: datetime | None
    sending_finished_at: datetime | None


@dataclass(frozen=True)
class Claim:
    """A delivery a connection now owns until it records the outcome."""

    id: int
    subscriber_id: int
    email: str
    name: str | None
    attempts: int
    unknown_outcome: bool  # its previous sender died with it in flight: this is a resend


@dataclass(frozen=True)
class Outcome:
    claim: Claim
    status: str  # SendStatus value
    message_id: str
    detail: str = ""
    bounce: bool = False  # a hard bounce for this address (RCPT refused with 5xx)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff: float  # seconds before the 2nd attempt; doubles each time
    bounce_after: int


def save_issue(store: Store, key: str, subject: str, html: str, text: str) -> int:
    """Insert or refresh the issue's rendered email; returns its id."""
    now = utcnow()
    with store.write() as conn:
        found = conn.execute(select(issues.c.id).where(issues.c.key == key)).scalar()
        if found is None:
            values = {"key": key, "subject": subject, "html": html, "text": text, "built_at": now}
            return conn.execute(insert(issues).values(**values).returning(issues.c.id)).scalar_one()
        conn.execute(update(issues).where(issues.c.id == found).values(subject=subject, html=html, text=text, built_at=now))
        return found


def get_issue(store: Store, key: str | None = None, issue_id: int | None = None) -> StoredIssue | None:
    query = select(issues).where(issues.c.key == key) if key else select(issues).where(issues.c.id == issue_id)
    with store.read() as conn:
        row = conn.execute(query).first()
    return StoredIssue(**row._mapping) if row else None


def list_issues(store: Store) -> list[StoredIssue]:
    with store.read() as conn:
        return [StoredIssue(**r._mapping) for r in conn.execute(select(issues).order_by(issues.c.key.desc()))]


def enqueue(store: Store, issue_id: int) -> int:
    """A queued delivery for each active subscriber who has none for this issue; one statement."""
    now = utcnow()
    exists = select(deliveries.c.id).where(deliveries.c.issue_id == issue_id, deliveries.c.subscriber_id == subscribers.c.id)
    source = select(
        literal(issue_id), subscribers.c.id, literal(DeliveryStatus.QUEUED.value), literal(0), literal(False), literal(now, deliveries.c.updated_at.type)
    ).where(subscribers.c.status == SubscriberStatus.ACTIVE, ~exists.exists())
    columns = ["issue_id", "subscriber_id", "status", "attempts", "unknown_outcome", "updated_at"]
    with store.write() as conn:
        added = conn.execute(insert(deliveries).from_select(columns, source)).rowcount
        conn.execute(update(issues).where(issues.c.id == issue_id, issues.c.sending_started_at.is_(None)).values(sending_started_at=now))
    return max(added, 0)


def skip_departed(store: Store, issue_id: int) -> int:
    """Queued deliveries whose subscriber has since left are skipped, never sent."""
    left = select(subscribers.c.id).where(subscribers.c.status != SubscriberStatus.ACTIVE)
    with store.write() as conn:
        return conn.execute(
            update(deliveries)
            .where(deliveries.c.issue_id == issue_id, deliveries.c.status == DeliveryStatus.QUEUED, deliveries.c.subscriber_id.in_(left))
            .values(status=DeliveryStatus.SKIPPED, updated_at=utcnow())
        ).rowcount


def retry_failed(store: Store, issue_id: int) -> int:
    """Put an issue's failed deliveries back in the queue (for subscribers still active)."""
    active = select(subscribers.c.id).where(subscribers.c.status == SubscriberStatus.ACTIVE)
    with store.write() as conn:
        return conn.execute(
            update(deliveries)
            .where(deliveries.c.issue_id == issue_id, deliveries.c.status == DeliveryStatus.FAILED, deliveries.c.subscriber_id.in_(active))
            .values(status=DeliveryStatus.QUEUED, attempts=0, next_attempt_at=None, updated_at=utcnow())
        ).rowcount


def _ready(issue_id: int, now: datetime):
    return and_(
        deliveries.c.issue_id == issue_id,
        deliveries.c.status == DeliveryStatus.QUEUED,
        or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now),
    )


def claim(store: Store, issue_id: int, worker_id: int, batch: int, limit: int) -> list[Claim]:
    """Take up to `limit` ready deliveries in id order; concurrent claimers never share a row."""
    now = utcnow()
    pick = (
        select(deliveries.c.id)
        .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
        .where(_ready(issue_id, now), subscribers.c.status == SubscriberStatus.ACTIVE)
        .order_by(deliveries.c.id)
        .limit(limit)
    )
    if store.dialect == "postgresql":
        pick = pick.with_for_update(skip_locked=True, of=deliveries)
    take = (
        update(deliveries)
        .where(deliveries.c.id.in_(pick.scalar_subquery()))
        .values(status=DeliveryStatus.SENDING, claimed_by=worker_id, claim_batch=batch, updated_at=now)
        .returning(deliveries.c.id)
    )
    with store.write() as conn:  # BEGIN IMMEDIATE on SQLite: one claimer at a time
        ids = [row.id for row in conn.execute(take)]
        if not ids:
            return []
        rows = conn.execute(
            select(deliveries.c.id, deliveries.c.subscriber_id, subscribers.c.email, subscribers.c.name, deliveries.c.attempts, deliveries.c.unknown_outcome)
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(deliveries.c.id.in_(ids))
            .order_by(deliveries.c.id)
        ).all()
    return [Claim(r.id, r.subscriber_id, r.email, r.name, r.attempts, bool(r.unknown_outcome)) for r in rows]


def record(store: Store, outcomes: Sequence[Outcome], policy: RetryPolicy) -> None:
    """Write outcomes in one transaction: sent, retry later, or failed (and count hard bounces)."""
    now = utcnow()
    sent, later, failed, bounced = [], [], [], []
    for o in outcomes:
        attempts = o.claim.attempts + 1
        base = {"d_id": o.claim.id, "attempts": attempts, "message_id": o.message_id, "error": o.detail[:1000] or None}
        if o.status == "sent":
            sent.append(base)
        elif o.status == "deferred" and attempts < policy.max_attempts:
            delay = policy.backoff * (2 ** (attempts - 1)) * random.uniform(0.8, 1.2)
            later.append({**base, "next": now + timedelta(seconds=delay)})
        else:
            if o.status == "deferred":
                base["error"] = f"gave up after {attempts} attempts: {o.detail}"[:1000]
            failed.append(base)
            if o.bounce:
                bounced.append({"s_id": o.claim.subscriber_id})
    with store.write() as conn:
        _apply(conn, sent, status=DeliveryStatus.SENT, sent_at=now, last_error=None, next_attempt_at=None, updated_at=now)
        _apply(conn, later, status=DeliveryStatus.QUEUED, next_attempt_at="next", updated_at=now)
        _apply(conn, failed, status=DeliveryStatus.FAILED, next_attempt_at=None, updated_at=now)
        if bounced:
            n = policy.bounce_after
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == _param("s_id"))
                .values(
                    hard_bounces=subscribers.c.hard_bounces + 1,
                    status=case((and_(subscribers.c.hard_bounces + 1 >= n, subscribers.c.status == SubscriberStatus.ACTIVE), SubscriberStatus.BOUNCED.value), else_=subscribers.c.status),
                    updated_at=now,
                ),
                bounced,
            )


def _param(name: str):
    from sqlalchemy import bindparam

    return bindparam(name)


def _apply(conn, rows: list[dict], **values: object) -> None:
    if not rows:
        return
    sets = {k: (_param(v) if v == "next" else v) for k, v in values.items()}
    sets.update(attempts=_param("attempts"), message_id=_param("message_id"), claimed_by=None, claim_batch=None)
    if "last_error" not in values:
        sets["last_error"] = _param("error")
    conn.execute(update(deliveries).where(deliveries.c.id == _param("d_id")).values(**sets), rows)


def release(store: Store, worker_id: int, ids: Sequence[int]) -> None:
    """Give back claimed deliveries that were never handed to the transport."""
    if not ids:
        return
    with store.write() as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(list(ids)), deliveries.c.claimed_by == worker_id, deliveries.c.status == DeliveryStatus.SENDING)
            .values(status=DeliveryStatus.QUEUED, claimed_by=None, claim_batch=None, updated_at=utcnow())
        )


def next_due(store: Store, issue_id: int) -> float | None:
    """Seconds until the next queued delivery is due (0 if one is now); None if none is queued."""
    with store.read() as conn:
        due = conn.execute(
            select(func.min(func.coalesce(deliveries.c.next_attempt_at, literal(utcnow(), deliveries.c.next_attempt_at.type))))
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(deliveries.c.issue_id == issue_id, deliveries.c.status == DeliveryStatus.QUEUED, subscribers.c.status == SubscriberStatus.ACTIVE)
        ).scalar()
    if due is None:
        return None
    if isinstance(due, str):  # SQLite returns MIN() over a mixed expression as text
        due = datetime.fromisoformat(due).replace(tzinfo=utcnow().tzinfo)
    elif due.tzinfo is None:
        due = due.replace(tzinfo=utcnow().tzinfo)
    return max(0.0, (due - utcnow()).total_seconds())


def counts(store: Store, issue_id: int) -> dict[str, int]:
    with store.read() as conn:
        rows = conn.execute(
            select(deliveries.c.status, func.count()).where(deliveries.c.issue_id == issue_id).group_by(deliveries.c.status)
        ).all()
        unknown = conn.execute(
            select(func.count()).where(deliveries.c.issue_id == issue_id, deliveries.c.unknown_outcome.is_(True))
        ).scalar_one()
    result = {str(s): 0 for s in DeliveryStatus}
    result.update({str(status): n for status, n in rows})
    result["resent_unknown"] = unknown
    return result


def finish_if_done(store: Store, issue_id: int) -> bool:
    """Stamp sending_finished_at once nothing is queued or claimed; True if the issue is done."""
    with store.write() as conn:
        open_ = conn.execute(
            select(func.count()).where(deliveries.c.issue_id == issue_id, deliveries.c.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]))
        ).scalar_one()
        if open_:
            return False
        conn.execute(update(issues).where(issues.c.id == issue_id, issues.c.sending_finished_at.is_(None)).values(sending_finished_at=utcnow()))
    return True


def issues_with_work(store: Store) -> list[int]:
    """Issues with deliveries ready now, oldest issue first: what a worker looks for."""
    now = utcnow()
    with store.read() as conn:
        return list(
            conn.execute(
                select(deliveries.c.issue_id)
                .where(deliveries.c.status == DeliveryStatus.QUEUED, or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now))
                .group_by(deliveries.c.issue_id)
                .order_by(deliveries.c.issue_id)
            ).scalars()
        )


def failures(store: Store, issue_id: int, limit: int = 200) -> list[tuple[str, str]]:
    """(address, last error) of an issue's failed deliveries."""
    with store.read() as conn:
        rows = conn.execute(
            select(subscribers.c.email, deliveries.c.last_error)
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(deliveries.c.issue_id == issue_id, deliveries.c.status == DeliveryStatus.FAILED)
            .order_by(deliveries.c.id)
            .limit(limit)
        ).all()
    return [(r.email, r.last_error or "") for r in rows]
