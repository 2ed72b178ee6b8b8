"""Runs (the monthly job, manual sends) and named leases: who may run the scheduler."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from digest.store import Store
from digest.store.schema import leases, runs, utcnow
from digest.store.statuses import RunKind, RunStatus


@dataclass(frozen=True)
class Run:
    id: str
    kind: RunKind
    month: str
    dedupe: str | None
    status: RunStatus
    detail: str | None
    sent: int
    retried: int
    failed: int
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    def as_json(self) -> dict:
        return {
            "id": self.id, "kind": self.kind, "month": self.month, "status": self.status, "detail": self.detail,
            "sent": self.sent, "retried": self.retried, "failed": self.failed,
            "started_at": self.started_at.isoformat(), "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }  # fmt: skip


def start(store: Store, kind: RunKind, month: str, dedupe: str | None = None) -> Run | None:
    """Record a new run; None if a run with the same `dedupe` key exists (it already happened)."""
    now = utcnow()
    run_id = uuid.uuid4().hex
    values = {"id": run_id, "kind": kind, "month": month, "dedupe": dedupe, "status": RunStatus.RUNNING,
              "sent": 0, "retried": 0, "failed": 0, "started_at": now, "updated_at": now}  # fmt: skip
    try:
        with store.write() as conn:
            conn.execute(insert(runs).values(**values))
    except IntegrityError:
        return None
    return get(store, run_id)


def progress(store: Store, run_id: str, sent: int, retried: int, failed: int) -> None:
    with store.write() as conn:
        conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(sent=sent, retried=retried, failed=failed, updated_at=utcnow())
        )


def finish(store: Store, run_id: str, status: RunStatus, detail: str | None = None) -> None:
    now = utcnow()
    finished = None if status in (RunStatus.RUNNING, RunStatus.AWAITING_SEND) else now
    values = {"status": status, "detail": detail, "updated_at": now, "finished_at": finished}
    if status == RunStatus.FAILED:  # a failed run frees its dedupe key: a later firing may try the month again
        values["dedupe"] = None  # (the delivery log still mails each subscriber once)
    with store.write() as conn:
        conn.execute(update(runs).where(runs.c.id == run_id).values(**values))


def resolve_awaiting(store: Store, month: str, detail: str) -> None:
    """A draft-mode scheduled run of `month` is done once a manual send of the month succeeds."""
    now = utcnow()
    with store.write() as conn:
        conn.execute(
            update(runs)
            .where(runs.c.month == month, runs.c.kind == RunKind.SCHEDULED, runs.c.status == RunStatus.AWAITING_SEND)
            .values(status=RunStatus.SUCCEEDED, detail=detail, updated_at=now, finished_at=now)
        )


def by_dedupe(store: Store, dedupe: str) -> Run | None:
    with store.read() as conn:
        row = conn.execute(select(runs).where(runs.c.dedupe == dedupe)).first()
    return Run(**row._mapping) if row else None


def get(store: Store, run_id: str) -> Run | None:
    with store.read() as conn:
        row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
    return Run(**row._mapping) if row else None


def recent(store: Store, limit: int = 20) -> list[Run]:
    with store.read() as conn:
        return [Run(**r._mapping) for r in conn.execute(select(runs).order_by(runs.c.started_at.desc()).limit(limit))]


def hold_lease(store: Store, name: str, holder: str, seconds: float) -> bool:
    """Take or renew the lease `name` for `holder`; False while someone else holds an unexpired one."""
    now = utcnow()
    until = now + timedelta(seconds=seconds)
    with store.write() as conn:
        changed = conn.execute(
            update(leases)
            .where(leases.c.name == name, or_(leases.c.holder == holder, leases.c.expires_at < now))
            .values(holder=holder, expires_at=until)
        ).rowcount
        if changed:
            return True
        if conn.execute(select(leases.c.name).where(leases.c.name == name)).first() is not None:
            return False
    try:
        with store.write() as conn:
            conn.execute(insert(leases).values(name=name, holder=holder, expires_at=until))
    except IntegrityError:  # another process inserted it first
        return False
    return True


def release_lease(store: Store, name: str, holder: str) -> None:
    with store.write() as conn:
        conn.execute(delete(leases).where(leases.c.name == name, leases.c.holder == holder))


def lease_holder(store: Store, name: str) -> tuple[str, datetime] | None:
    with store.read() as conn:
        row = conn.execute(select(leases.c.holder, leases.c.expires_at).where(leases.c.name == name)).first()
    return (row.holder, row.expires_at) if row else None
