"""The delivery ledger: one row per (issue, subscriber), claimed, sent and recorded exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Update, and_, bindparam, case, func, literal, or_, select, update

from digest.errors import LeaseLost
from digest.store import DeliveryStatus, Store, StoreError, SubscriberStatus, insert_or
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
    """What to record for one claim, decided by dispatch: the store writes it as it is."""

    claim: Claim
    status: DeliveryStatus  # SENT, QUEUED (to be tried again in `retry_in` seconds) or FAILED
    message_id: str
    detail: str = ""  # the last error
    retry_in: float = 0.0  # QUEUED: seconds until the next attempt may be made
    bounce: bool = False  # FAILED as a hard bounce: counts toward marking the subscriber bounced


def save_issue(store: Store, key: str, subject: str, html: str, text: str) -> int:
    """Insert or refresh the issue's rendered email (one statement: two sends may save it at once); its id."""
    values = {"subject": subject, "html": html, "text": text, "built_at": utcnow()}
    upsert = insert_or(store, issues).values(key=key, **values)
    upsert = upsert.on_conflict_do_update(index_elements=[issues.c.key], set_=values).returning(issues.c.id)
    with store.write() as conn:
        return conn.execute(upsert).scalar_one()


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
    exists = select(deliveries.c.id).where(
        deliveries.c.issue_id == issue_id, deliveries.c.subscriber_id == subscribers.c.id
    )
    source = select(
        literal(issue_id),
        subscribers.c.id,
        literal(DeliveryStatus.QUEUED.value),
        literal(0),
        literal(False),
        literal(now, deliveries.c.updated_at.type),
    ).where(subscribers.c.status == SubscriberStatus.ACTIVE, ~exists.exists())
    columns = ["issue_id", "subscriber_id", "status", "attempts", "unknown_outcome", "updated_at"]
    with store.write() as conn:
        # DO NOTHING: a concurrent send may queue the same subscriber between our check and insert
        queue = insert_or(store, deliveries).from_select(columns, source).on_conflict_do_nothing()
        added = conn.execute(queue).rowcount
        conn.execute(
            update(issues)
            .where(issues.c.id == issue_id, issues.c.sending_started_at.is_(None))
            .values(sending_started_at=now)
        )
    return max(added, 0)


def skip_departed(store: Store, issue_id: int) -> int:
    """Queued deliveries whose subscriber has since left are skipped, never sent."""
    left = select(subscribers.c.id).where(subscribers.c.status != SubscriberStatus.ACTIVE)
    with store.write() as conn:
        return conn.execute(
            update(deliveries)
            .where(
                deliveries.c.issue_id == issue_id,
                deliveries.c.status == DeliveryStatus.QUEUED,
                deliveries.c.subscriber_id.in_(left),
            )
            .values(status=DeliveryStatus.SKIPPED, updated_at=utcnow())
        ).rowcount


def retry_failed(store: Store, issue_id: int) -> int:
    """Put an issue's failed deliveries back in the queue (for subscribers still active)."""
    active = select(subscribers.c.id).where(subscribers.c.status == SubscriberStatus.ACTIVE)
    with store.write() as conn:
        return conn.execute(
            update(deliveries)
            .where(
                deliveries.c.issue_id == issue_id,
                deliveries.c.status == DeliveryStatus.FAILED,
                deliveries.c.subscriber_id.in_(active),
            )
            .values(status=DeliveryStatus.QUEUED, attempts=0, next_attempt_at=None, updated_at=utcnow())
        ).rowcount


def _ready(issue_id: int, now: datetime) -> ColumnElement[bool]:
    return and_(
        deliveries.c.issue_id == issue_id,
        deliveries.c.status == DeliveryStatus.QUEUED,
        or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now),
    )


def claim(store: Store, issue_id: int, worker_id: int, batch: int, limit: int) -> list[Claim]:
    """Take up to `limit` ready deliveries in id order; concurrent claimers never share a row.

    PostgreSQL: one statement (FOR UPDATE SKIP LOCKED, RETURNING with the subscriber joined).
    SQLite: BEGIN IMMEDIATE makes claimers take turns; RETURNING can't join there, so a SELECT follows.
    """
    now = utcnow()
    pick = (
        select(deliveries.c.id)
        .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
        .where(_ready(issue_id, now), subscribers.c.status == SubscriberStatus.ACTIVE)
        .order_by(deliveries.c.id)
        .limit(limit)
    )
    values = {"status": DeliveryStatus.SENDING, "claimed_by": worker_id, "claim_batch": batch, "updated_at": now}
    columns = (
        deliveries.c.id,
        deliveries.c.subscriber_id,
        subscribers.c.email,
        subscribers.c.name,
        deliveries.c.attempts,
        deliveries.c.unknown_outcome,
    )
    rows: Sequence[Any]  # Rows of `columns`
    if store.dialect == "postgresql":
        take = (
            update(deliveries)
            .where(deliveries.c.id.in_(pick.with_for_update(skip_locked=True, of=deliveries).scalar_subquery()))
            .where(subscribers.c.id == deliveries.c.subscriber_id)
            .values(**values)
            .returning(*columns)
        )
        with store.write() as conn:
            rows = sorted(conn.execute(take).all(), key=lambda r: r.id)
    else:
        with store.write() as conn:  # BEGIN IMMEDIATE: one claimer at a time
            ids = [
                r.id
                for r in conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id.in_(pick.scalar_subquery()))
                    .values(**values)
                    .returning(deliveries.c.id)
                )
            ]
            if not ids:
                return []
            rows = conn.execute(
                select(*columns)
                .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                .where(deliveries.c.id.in_(ids))
                .order_by(deliveries.c.id)
            ).all()
    return [Claim(r.id, r.subscriber_id, r.email, r.name, r.attempts, bool(r.unknown_outcome)) for r in rows]


def _outcome_update(**values: object) -> Update:
    """A prebuilt UPDATE for one kind of outcome: built once, so SQLAlchemy compiles it once.

    Fenced: it changes the row only while the claim is still this worker's, so a worker whose
    lease was taken over can't overwrite what the new owner records."""
    common: dict[str, object] = {
        "attempts": bindparam("attempts"),
        "message_id": bindparam("message_id"),
        "claimed_by": None,
        "claim_batch": None,
        "updated_at": bindparam("now"),
    }
    return (
        update(deliveries)
        .where(
            deliveries.c.id == bindparam("d_id"),
            deliveries.c.claimed_by == bindparam("owner"),
            deliveries.c.status == DeliveryStatus.SENDING.value,
        )
        .values(**common, **values)
    )


_SENT = _outcome_update(
    status=DeliveryStatus.SENT.value, sent_at=bindparam("now"), last_error=None, next_attempt_at=None
)
_LATER = _outcome_update(
    status=DeliveryStatus.QUEUED.value, next_attempt_at=bindparam("next"), last_error=bindparam("error")
)
_FAILED = _outcome_update(status=DeliveryStatus.FAILED.value, next_attempt_at=None, last_error=bindparam("error"))
_BOUNCED = (
    update(subscribers)
    .where(subscribers.c.id == bindparam("s_id"))
    .values(
        hard_bounces=subscribers.c.hard_bounces + 1,
        status=case(
            (
                and_(
                    subscribers.c.hard_bounces + 1 >= bindparam("threshold"),
                    subscribers.c.status == SubscriberStatus.ACTIVE.value,
                ),
                SubscriberStatus.BOUNCED.value,
            ),
            else_=subscribers.c.status,
        ),
        updated_at=bindparam("now"),
    )
)


class Recorder:
    """The hot path: records outcomes on its own DBAPI connection with SQL compiled once.

    Going through SQLAlchemy's execution layer costs ~150 us a message; the same UPDATE
    on the driver costs ~10 us on SQLite. One Recorder per sending thread.
    """

    def __init__(self, store: Store, owner: int, bounce_after: int):
        self.store = store
        self.owner = owner  # the worker whose claims these outcomes settle
        self.bounce_after = bounce_after  # hard bounces that mark a subscriber bounced ([delivery] bounce_after)
        self.raw = store.engine.raw_connection()
        driver = self.raw.driver_connection
        if driver is None:  # (only after close, which happens in `close`)
            raise StoreError(f"database {store.safe_url}: no driver connection to record outcomes on")
        self.driver: Any = driver  # sqlite3 or psycopg: execute, pipeline and commit differ by driver
        self.sqlite = store.dialect == "sqlite"
        dialect = store.engine.dialect
        self.statements = {name: _Prepared(statement, dialect) for name, statement in _STATEMENTS.items()}

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Write outcomes in one transaction: sent, queued again, or failed (and count hard bounces).

        LeaseLost when some claim was no longer this worker's: its lease was taken over, and the
        new owner's record stands."""
        batches = _split(outcomes, self.owner, self.bounce_after)
        cursors = {name: self.raw.cursor() for name, rows in batches.items() if rows}
        try:
            if self.sqlite:
                cursors[next(iter(cursors))].execute("BEGIN IMMEDIATE")
                self._execute(cursors, batches)
                self.driver.execute("COMMIT")
            else:  # pipeline mode: the statements and the commit cross the network in one round trip
                with self.driver.pipeline():
                    self._execute(cursors, batches)
                    self.driver.commit()
            self.store.round_trips += 1  # one flush: statements and commit in one go
            # each kind's executemany sums its rows (psycopg: once the pipeline has synced)
            changed = sum(cursor.rowcount for name, cursor in cursors.items() if name != "bounced")
        except Exception as exc:
            self._rollback()
            raise StoreError(f"database {self.store.safe_url}: recording delivery outcomes failed: {exc}") from exc
        finally:
            for cursor in cursors.values():
                cursor.close()
        if changed < len(outcomes):
            raise LeaseLost(
                f"worker {self.owner}: {len(outcomes) - changed} of {len(outcomes)} claims were taken over by another "
                "worker (this one's lease expired); their outcomes are left to it"
            )

    def _execute(self, cursors: dict, batches: dict[str, list[dict]]) -> None:
        for name, cursor in cursors.items():
            prepared = self.statements[name]
            cursor.executemany(prepared.sql, [prepared.params(row) for row in batches[name]])

    def _rollback(self) -> None:
        try:
            if self.sqlite:
                self.driver.execute("ROLLBACK")
            else:
                self.raw.rollback()
        except Exception:  # noqa: BLE001 - the connection may be gone; the error above is what matters
            pass

    def close(self) -> None:
        self.raw.close()


class _Prepared:
    """A statement compiled for the store's driver, with its parameter order."""

    def __init__(self, statement: object, dialect: object):
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        self.sql = compiled.string
        self.static = {name: bind.value for name, bind in compiled.binds.items() if not bind.required}
        self.order = compiled.positiontup

    def params(self, row: dict) -> object:
        full = {**self.static, **row}
        return [full[name] for name in self.order] if self.order else full


def _split(outcomes: Sequence[Outcome], owner: int, bounce_after: int) -> dict[str, list[dict]]:
    """The outcomes' rows, by the statement that records them."""
    now = utcnow().replace(tzinfo=None)  # the drivers get naive UTC, as UTCDateTime stores it
    batches: dict[str, list[dict]] = {"sent": [], "later": [], "failed": [], "bounced": []}
    for o in outcomes:
        row = {
            "d_id": o.claim.id,
            "attempts": o.claim.attempts + 1,
            "message_id": o.message_id,
            "error": o.detail[:1000] or None,
            "now": now,
            "owner": owner,
        }
        if o.status == DeliveryStatus.SENT:
            batches["sent"].append(row)
        elif o.status == DeliveryStatus.QUEUED:
            batches["later"].append({**row, "next": now + timedelta(seconds=o.retry_in)})
        else:
            batches["failed"].append(row)
            if o.bounce:
                batches["bounced"].append({"s_id": o.claim.subscriber_id, "now": now, "threshold": bounce_after})
    return batches


_STATEMENTS = {"sent": _SENT, "later": _LATER, "failed": _FAILED, "bounced": _BOUNCED}


def release(store: Store, worker_id: int, ids: Sequence[int]) -> None:
    """Give back claimed deliveries that were never handed to the transport."""
    if not ids:
        return
    with store.write() as conn:
        conn.execute(
            update(deliveries)
            .where(
                deliveries.c.id.in_(list(ids)),
                deliveries.c.claimed_by == worker_id,
                deliveries.c.status == DeliveryStatus.SENDING,
            )
            .values(status=DeliveryStatus.QUEUED, claimed_by=None, claim_batch=None, updated_at=utcnow())
        )


def next_due(store: Store, issue_id: int) -> float | None:
    """Seconds until the next queued delivery is due (0 if one is now); None if none is queued."""
    with store.read() as conn:
        due = conn.execute(
            select(
                func.min(
                    func.coalesce(deliveries.c.next_attempt_at, literal(utcnow(), deliveries.c.next_attempt_at.type))
                )
            )
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(
                deliveries.c.issue_id == issue_id,
                deliveries.c.status == DeliveryStatus.QUEUED,
                subscribers.c.status == SubscriberStatus.ACTIVE,
            )
        ).scalar()
    if due is None:
        return None
    if isinstance(due, str):  # SQLite returns MIN() over a mixed expression as text
        due = datetime.fromisoformat(due).replace(tzinfo=utcnow().tzinfo)
    elif due.tzinfo is None:
        due = due.replace(tzinfo=utcnow().tzinfo)
    return max(0.0, (due - utcnow()).total_seconds())


def counts(store: Store, issue_id: int) -> dict[str, int]:
    """The issue's deliveries by status (a key for every `DeliveryStatus`), and "resent_unknown": those
    resent after a crash left their outcome unknown."""
    with store.read() as conn:
        rows = conn.execute(
            select(deliveries.c.status, func.count())
            .where(deliveries.c.issue_id == issue_id)
            .group_by(deliveries.c.status)
        ).all()
        unknown = conn.execute(
            select(func.count()).where(deliveries.c.issue_id == issue_id, deliveries.c.unknown_outcome.is_(True))
        ).scalar_one()
    result: dict[str, int] = {status: 0 for status in DeliveryStatus}
    result.update({status: n for status, n in rows})
    result["resent_unknown"] = unknown
    return result


def finish_if_done(store: Store, issue_id: int) -> bool:
    """Stamp sending_finished_at once nothing is queued or claimed; True if the issue is done."""
    with store.write() as conn:
        open_ = conn.execute(
            select(func.count()).where(
                deliveries.c.issue_id == issue_id,
                deliveries.c.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]),
            )
        ).scalar_one()
        if open_:
            return False
        conn.execute(
            update(issues)
            .where(issues.c.id == issue_id, issues.c.sending_finished_at.is_(None))
            .values(sending_finished_at=utcnow())
        )
    return True


def issues_with_work(store: Store) -> list[int]:
    """Issues with deliveries ready now, oldest issue first: what a worker looks for."""
    now = utcnow()
    with store.read() as conn:
        return list(
            conn.execute(
                select(deliveries.c.issue_id)
                .where(
                    deliveries.c.status == DeliveryStatus.QUEUED,
                    or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now),
                )
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
