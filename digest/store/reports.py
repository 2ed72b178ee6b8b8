"""Named queries for reports that arrive after sending: bounces, complaints, mailto unsubscribes.

Each report is recorded once under its key (the reporting mail's Message-ID, or a webhook event's
id) in the same transaction as its effect on the subscriber, so a report read twice, or a webhook
delivered twice, changes nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Update, and_, case, func, select, update
from sqlalchemy.exc import IntegrityError

from digest.store import DeliveryStatus, Store, SubscriberStatus, insert_or
from digest.store.schema import deliveries, mail_events, subscribers, utcnow


class EventKind(StrEnum):
    HARD_BOUNCE = "hard_bounce"  # the address does not exist: counts toward [delivery] bounce_after
    SOFT_BOUNCE = "soft_bounce"  # mailbox full, deferred for too long: counts toward soft_bounce_after
    COMPLAINT = "complaint"  # an ARF report (RFC 5965): the reader marked it as spam; unsubscribes at once
    UNSUBSCRIBE = "unsubscribe"  # a mail to the List-Unsubscribe mailto: address


@dataclass(frozen=True)
class Target:
    """Whom a report is about: the delivery when it is known, else the subscriber."""

    subscriber_id: int
    email: str
    delivery_id: int | None = None
    issue_id: int | None = None


@dataclass(frozen=True)
class Thresholds:
    hard: int  # [delivery] bounce_after
    soft: int  # [delivery] soft_bounce_after


def by_delivery(store: Store, delivery_id: int) -> Target | None:
    query = (
        select(deliveries.c.id, deliveries.c.issue_id, subscribers.c.id.label("s_id"), subscribers.c.email)
        .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
        .where(deliveries.c.id == delivery_id)
    )
    with store.read() as conn:
        row = conn.execute(query).first()
    return Target(row.s_id, row.email, row.id, row.issue_id) if row else None


def by_message_id(store: Store, message_id: str) -> Target | None:
    """The delivery whose Message-ID the report quotes (the same for every attempt of it)."""
    query = select(deliveries.c.id).where(deliveries.c.message_id == message_id.strip()).limit(1)
    with store.read() as conn:
        found = conn.execute(query).scalar()
    return by_delivery(store, found) if found is not None else None


def by_address(store: Store, address: str) -> Target | None:
    """The subscriber, and the last issue sent to them (what a late report is most likely about)."""
    with store.read() as conn:
        sub = conn.execute(select(subscribers.c.id, subscribers.c.email).where(subscribers.c.email == address)).first()
        if sub is None:
            return None
        last = conn.execute(
            select(deliveries.c.id, deliveries.c.issue_id)
            .where(deliveries.c.subscriber_id == sub.id, deliveries.c.status == DeliveryStatus.SENT.value)
            .order_by(deliveries.c.sent_at.desc(), deliveries.c.id.desc())
            .limit(1)
        ).first()
    return Target(sub.id, sub.email, None, last.issue_id if last else None)


def seen(store: Store, key: str) -> bool:
    with store.read() as conn:
        return conn.execute(select(mail_events.c.id).where(mail_events.c.key == key[:255])).first() is not None


def record(
    store: Store, key: str, kind: EventKind, target: Target, source: str, detail: str, limits: Thresholds
) -> bool:
    """Record the report and apply it, in one transaction; False if this key was recorded before."""
    now = utcnow()
    values = {
        "key": key[:255],
        "kind": kind.value,
        "source": source,
        "subscriber_id": target.subscriber_id,
        "issue_id": target.issue_id,
        "delivery_id": target.delivery_id,
        "detail": detail[:2000],
        "created_at": now,
    }
    statement = insert_or(store, mail_events).values(**values).on_conflict_do_nothing(index_elements=["key"])
    statement = statement.returning(mail_events.c.id)  # (rowcount is not reliable here across drivers)
    try:
        with store.write() as conn:
            if conn.execute(statement).first() is None:
                return False
            conn.execute(_effect(kind, target.subscriber_id, limits, now))
    except IntegrityError:  # (a subscriber deleted meanwhile)
        return False
    return True


def _effect(kind: EventKind, subscriber_id: int, limits: Thresholds, now: datetime) -> Update:
    row = subscribers.c
    active = row.status == SubscriberStatus.ACTIVE.value
    query = update(subscribers).where(row.id == subscriber_id).values(updated_at=now)
    if kind == EventKind.HARD_BOUNCE:
        bounced = case(
            (and_(row.hard_bounces + 1 >= limits.hard, active), SubscriberStatus.BOUNCED.value), else_=row.status
        )
        return query.values(hard_bounces=row.hard_bounces + 1, status=bounced)
    if kind == EventKind.SOFT_BOUNCE:
        bounced = case(
            (and_(row.soft_bounces + 1 >= limits.soft, active), SubscriberStatus.BOUNCED.value), else_=row.status
        )
        return query.values(soft_bounces=row.soft_bounces + 1, status=bounced)
    staying = row.status.in_([SubscriberStatus.ACTIVE.value, SubscriberStatus.PENDING.value])
    leave = {
        "status": case((staying, SubscriberStatus.UNSUBSCRIBED.value), else_=row.status),
        "unsubscribed_at": case((staying, now), else_=row.unsubscribed_at),
    }
    if kind == EventKind.COMPLAINT:
        return query.values(complaints=row.complaints + 1, **leave)
    return query.values(**leave)


def counts_by_issue(store: Store) -> dict[int, dict[str, int]]:
    """issue id -> {event kind: count}, for `digest status`."""
    query = (
        select(mail_events.c.issue_id, mail_events.c.kind, func.count())
        .where(mail_events.c.issue_id.is_not(None))
        .group_by(mail_events.c.issue_id, mail_events.c.kind)
    )
    out: dict[int, dict[str, int]] = {}
    with store.read() as conn:
        for issue_id, kind, n in conn.execute(query):
            out.setdefault(issue_id, {})[kind] = n
    return out


def unsubscribes_by_issue(store: Store) -> dict[int, int]:
    """issue id -> readers who left after it (one-click, mailto or complaint): each unsubscribed reader
    counts for the last issue sent to them before they left."""
    last = (
        select(deliveries.c.issue_id, deliveries.c.subscriber_id)
        .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
        .where(
            subscribers.c.status == SubscriberStatus.UNSUBSCRIBED.value,
            deliveries.c.status == DeliveryStatus.SENT.value,
            deliveries.c.sent_at <= subscribers.c.unsubscribed_at,
        )
        .add_columns(
            func.row_number()
            .over(
                partition_by=deliveries.c.subscriber_id, order_by=(deliveries.c.sent_at.desc(), deliveries.c.id.desc())
            )
            .label("n")
        )
        .subquery()
    )
    query = select(last.c.issue_id, func.count()).where(last.c.n == 1).group_by(last.c.issue_id)
    with store.read() as conn:
        return dict(conn.execute(query).all())


__all__ = ["EventKind", "Target", "Thresholds", "by_delivery", "by_message_id", "by_address", "record", "seen"]
