"""Sender workers and their leases: a claim is valid while its worker's lease is."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from sqlalchemy import Connection, Select, and_, func, insert, or_, select, update

from digest.store import DeliveryStatus, Store
from digest.store.schema import deliveries, utcnow, workers


@cache
def _identity() -> tuple[str, str]:
    """(host name, kernel boot id and PID namespace): two processes are on "this machine", where a pid
    can be checked, only when all three match. Containers share the host's kernel boot id and may
    share a host name, but each has its own PID namespace; without /proc nothing is local."""
    host = socket.gethostname()
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return host, f"unknown:{uuid.uuid4().hex}"  # never matches another process: wait for the lease
    return host, f"{boot}:{namespace}"


def process_start(pid: int) -> str:
    """The kernel's start time of `pid` (clock ticks since boot): tells a live process from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


@dataclass(frozen=True)
class Worker:
    id: int
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    lease_until: datetime
    stopped_at: datetime | None
    sent: int
    failed: int
    claimed: int = 0

    @property
    def alive(self) -> bool:
        return self.stopped_at is None and self.lease_until > utcnow()


def register(store: Store, lease: float) -> int:
    host, boot = _identity()
    now = utcnow()
    values = {
        "host": host, "boot_id": boot, "pid": os.getpid(), "process_start": process_start(os.getpid()),
        "started_at": now, "heartbeat_at": now, "lease_until": now + timedelta(seconds=lease), "sent": 0, "failed": 0,
    }  # fmt: skip
    with store.write() as conn:
        return conn.execute(insert(workers).values(**values).returning(workers.c.id)).scalar_one()


def heartbeat(store: Store, worker_id: int, lease: float, sent: int, failed: int) -> bool:
    """Renew the lease; False if it had already expired and was taken away (stop sending then)."""
    now = utcnow()
    with store.write() as conn:
        changed = conn.execute(
            update(workers)
            .where(workers.c.id == worker_id, workers.c.stopped_at.is_(None))
            .values(heartbeat_at=now, lease_until=now + timedelta(seconds=lease), sent=sent, failed=failed)
        ).rowcount
    return changed > 0


def stop(store: Store, worker_id: int, sent: int, failed: int) -> None:
    """End the lease. A graceful stop has given its claims back already; after an error, what is
    left goes back too, its possibly-sent rows flagged as after a crash."""
    now = utcnow()
    with store.write() as conn:
        _requeue(conn, select(workers.c.id).where(workers.c.id == worker_id), now)
        conn.execute(
            update(workers)
            .where(workers.c.id == worker_id)
            .values(stopped_at=now, lease_until=now, heartbeat_at=now, sent=sent, failed=failed)
        )


def expire_dead_local(store: Store) -> int:
    """End the leases of workers on this machine whose process is gone: no need to wait them out."""
    host, boot = _identity()
    with store.read() as conn:
        rows = conn.execute(
            select(workers.c.id, workers.c.pid, workers.c.process_start).where(
                workers.c.host == host, workers.c.boot_id == boot, workers.c.stopped_at.is_(None)
            )
        ).all()
    dead = [r.id for r in rows if r.pid != os.getpid() and process_start(r.pid) != r.process_start]
    if dead:
        with store.write() as conn:
            conn.execute(
                update(workers).where(workers.c.id.in_(dead)).values(lease_until=utcnow() - timedelta(seconds=1))
            )
    return len(dead)


def reap(store: Store) -> int:
    """Return dead workers' claims to the queue; returns how many were possibly in flight.

    A connection sends its claimed batch in id order and records each outcome before the
    next message is completed, so of a dead worker's batch only the lowest still-claimed
    row may have reached the server: that one is flagged `unknown_outcome` and is resent
    with the same Message-ID. At most one per connection; for a batch handed over in one
    call (a negative claim_batch: Postmark's batch endpoint), every row of that batch.
    """
    expire_dead_local(store)
    now = utcnow()
    with store.write() as conn:
        dead = select(workers.c.id).where(workers.c.lease_until < now)
        unknown = _requeue(conn, dead, now)
        conn.execute(
            update(workers).where(workers.c.lease_until < now, workers.c.stopped_at.is_(None)).values(stopped_at=now)
        )
    return unknown


def requeue_own(store: Store, worker_id: int) -> int:
    """After a failed batch in a live worker: its claims go back, the possibly-sent ones flagged."""
    with store.write() as conn:
        return _requeue(conn, select(workers.c.id).where(workers.c.id == worker_id), utcnow())


def _requeue(conn: Connection, owners: Select[tuple[int]], now: datetime) -> int:
    claimed = and_(deliveries.c.status == DeliveryStatus.SENDING, deliveries.c.claimed_by.in_(owners))
    in_flight = (
        select(func.min(deliveries.c.id)).where(claimed).group_by(deliveries.c.claimed_by, deliveries.c.claim_batch)
    )
    # a negative claim_batch was handed over whole, in one call (an HTTP batch API): every row may be sent
    handed_whole = and_(claimed, deliveries.c.claim_batch < 0)
    unknown = conn.execute(
        update(deliveries).where(or_(deliveries.c.id.in_(in_flight), handed_whole)).values(unknown_outcome=True)
    ).rowcount
    conn.execute(
        update(deliveries)
        .where(claimed)
        .values(status=DeliveryStatus.QUEUED, claimed_by=None, claim_batch=None, updated_at=now)
    )
    return unknown


def listing(store: Store, include_stopped: bool = False) -> list[Worker]:
    claimed = (
        select(deliveries.c.claimed_by, func.count().label("n"))
        .where(deliveries.c.status == DeliveryStatus.SENDING)
        .group_by(deliveries.c.claimed_by)
        .subquery()
    )
    query = select(workers, func.coalesce(claimed.c.n, 0).label("claimed")).outerjoin(
        claimed, claimed.c.claimed_by == workers.c.id
    )
    if not include_stopped:
        query = query.where(or_(workers.c.stopped_at.is_(None), workers.c.lease_until > utcnow()))
    with store.read() as conn:
        rows = conn.execute(query.order_by(workers.c.id)).all()
    return [
        Worker(
            r.id, r.host, r.pid, r.started_at, r.heartbeat_at, r.lease_until, r.stopped_at, r.sent, r.failed, r.claimed
        )
        for r in rows
    ]
