"""Named queries on the subscriber list."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from sqlalchemy import Row, func, insert, select, update

from digest.addresses import InvalidAddress, normalise  # noqa: F401 - the web form and CLI use them from here
from digest.errors import DigestError
from digest.store import Store, SubscriberStatus
from digest.store.csvfile import CsvRow, neutralise, read_rows
from digest.store.schema import subscribers, utcnow

LEFT = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED)


class CsvError(DigestError):
    """A subscriber CSV that can't be imported at all (its message starts with the line)."""


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str | None
    status: SubscriberStatus
    created_at: datetime
    updated_at: datetime
    confirmed_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    hard_bounces: int = 0
    soft_bounces: int = 0
    complaints: int = 0


def _row(row: Row[Any]) -> Subscriber:
    data = row._mapping
    return Subscriber(**{k: data[k] for k in Subscriber.__dataclass_fields__})


def get(store: Store, address: str) -> Subscriber | None:
    with store.read() as conn:
        row = conn.execute(select(subscribers).where(subscribers.c.email == normalise(address))).first()
    return _row(row) if row else None


def get_by_id(store: Store, subscriber_id: int) -> Subscriber | None:
    with store.read() as conn:
        row = conn.execute(select(subscribers).where(subscribers.c.id == subscriber_id)).first()
    return _row(row) if row else None


def add(
    store: Store, address: str, name: str | None = None, status: SubscriberStatus = SubscriberStatus.ACTIVE
) -> tuple[Subscriber, bool]:
    """(subscriber, created). An existing row is returned unchanged: nobody is re-activated here."""
    email = normalise(address)
    now = utcnow()
    with store.write() as conn:
        row = conn.execute(select(subscribers).where(subscribers.c.email == email)).first()
        if row:
            return _row(row), False
        clean_name = _clean_name(name)
        confirmed = now if status == SubscriberStatus.ACTIVE else None
        values = {
            "email": email,
            "name": clean_name,
            "status": status,
            "hard_bounces": 0,
            "created_at": now,
            "updated_at": now,
            "confirmed_at": confirmed,
        }
        new_id = conn.execute(insert(subscribers).values(**values).returning(subscribers.c.id)).scalar_one()
    return Subscriber(new_id, email, clean_name, status, now, now, confirmed_at=confirmed), True


def set_status(
    store: Store, subscriber_id: int, status: SubscriberStatus, *, only_from: Iterable[SubscriberStatus] | None = None
) -> bool:
    """Change a subscriber's status (optionally only from given states); True if a row changed."""
    now = utcnow()
    values: dict[str, object] = {"status": status, "updated_at": now}
    if status == SubscriberStatus.UNSUBSCRIBED:
        values["unsubscribed_at"] = now
    if status == SubscriberStatus.ACTIVE:
        values["confirmed_at"] = now
    query = update(subscribers).where(subscribers.c.id == subscriber_id).values(**values)
    if only_from is not None:
        query = query.where(subscribers.c.status.in_([str(s) for s in only_from]))
    with store.write() as conn:
        return conn.execute(query).rowcount > 0


def remove(store: Store, address: str) -> Subscriber | None:
    """Mark unsubscribed (the row stays, so no import brings them back); None if unknown."""
    found = get(store, address)
    if found and found.status != SubscriberStatus.UNSUBSCRIBED:
        set_status(store, found.id, SubscriberStatus.UNSUBSCRIBED)
        return get(store, address)
    return found


def iterate(store: Store, status: SubscriberStatus | None = None, batch: int = 1000) -> Iterator[Subscriber]:
    """Every subscriber (of a status), in id order, a page at a time: memory stays flat."""
    last = 0
    while True:
        query = select(subscribers).where(subscribers.c.id > last).order_by(subscribers.c.id).limit(batch)
        if status is not None:
            query = query.where(subscribers.c.status == status)
        with store.read() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return
        for row in rows:
            yield _row(row)
        last = rows[-1].id


def counts(store: Store) -> dict[SubscriberStatus, int]:
    """Subscribers by status; a status nobody has is left out."""
    with store.read() as conn:
        rows = conn.execute(select(subscribers.c.status, func.count()).group_by(subscribers.c.status)).all()
    return {status: n for status, n in rows}


@dataclass(frozen=True)
class ImportResult:
    added: int
    existing: int
    rejected: int  # rows reported through `on_reject`


IMPORT_BATCH = 500  # rows per insert transaction: memory stays flat however long the file


def import_csv(
    store: Store,
    source: BinaryIO | str,
    status: SubscriberStatus = SubscriberStatus.ACTIVE,
    on_reject: Callable[[int, str], None] | None = None,
) -> ImportResult:
    """A header row with an `email` column (and optionally `name`); each bad row goes to
    `on_reject(line, why)` as it is read, every good one is imported, a batch at a time.

    Existing addresses are left exactly as they are, so re-importing never re-activates
    someone who unsubscribed or bounced.
    """
    rows = read_rows(io.BytesIO(source.encode()) if isinstance(source, str) else source)
    email_at, name_at = _header(next(rows, None))
    first_line: dict[str, int] = {}  # address -> the line it was first on: duplicates name it
    batch: dict[str, str | None] = {}
    added = rejected = 0
    for row in rows:
        email, why = _address(row, email_at, first_line)
        if why:
            rejected += 1
            if on_reject:
                on_reject(row.line, why)
            continue
        first_line[email] = row.line
        batch[email] = _clean_name(row.cells[name_at]) if name_at is not None and name_at < len(row.cells) else None
        if len(batch) >= IMPORT_BATCH:
            added += _insert_new(store, batch, status)
            batch.clear()
    added += _insert_new(store, batch, status)
    return ImportResult(added, len(first_line) - added, rejected)


def _header(row: CsvRow | None) -> tuple[int, int | None]:
    """The positions of the `email` and `name` columns; CsvError if there is no email column."""
    if row is not None and row.error:
        raise CsvError(f"line {row.line}: the header row can't be read: {row.error}")
    names = [cell.strip().lower() for cell in row.cells] if row else []
    if "email" not in names:
        found = ", ".join(cell for cell in (row.cells if row else ()) if cell) or "nothing"
        raise CsvError(f"line {row.line if row else 1}: no 'email' column in the header (found: {found[:200]})")
    return names.index("email"), names.index("name") if "name" in names else None


def _address(row: CsvRow, email_at: int, first_line: dict[str, int]) -> tuple[str, str]:
    """(normalised address, "") for a good row, or ("", why not)."""
    if row.error:
        return "", row.error
    raw = row.cells[email_at].strip() if email_at < len(row.cells) else ""
    if not raw:
        return "", "empty email"
    try:
        email = normalise(raw)
    except InvalidAddress as exc:
        return "", str(exc)
    if email in first_line:
        return "", f"{email} is already on line {first_line[email]}"
    return email, ""


def _insert_new(store: Store, rows: dict[str, str | None], status: SubscriberStatus) -> int:
    added = 0
    emails = list(rows)
    now = utcnow()
    for start in range(0, len(emails), IMPORT_BATCH):
        chunk = emails[start : start + IMPORT_BATCH]
        with store.write() as conn:
            known = set(conn.execute(select(subscribers.c.email).where(subscribers.c.email.in_(chunk))).scalars())
            new = [
                {"email": e, "name": rows[e], "status": status, "hard_bounces": 0, "created_at": now, "updated_at": now,
                 "confirmed_at": now if status == SubscriberStatus.ACTIVE else None}
                for e in chunk if e not in known
            ]  # fmt: skip
            if new:
                conn.execute(insert(subscribers), new)
            added += len(new)
    return added


def export_csv(store: Store, status: SubscriberStatus | None = None) -> Iterator[str]:
    """CSV lines (header first) that `import_csv` reads back. Anyone can sign up as
    `=1+1@example.com`, so every cell a spreadsheet would run as a formula starts with `'`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["email", "name", "status", "created_at", "confirmed_at", "unsubscribed_at"])
    yield buffer.getvalue()
    for sub in iterate(store, status):
        buffer.seek(0)
        buffer.truncate()
        cells = [sub.email, sub.name or "", sub.status, _iso(sub.created_at)]
        writer.writerow([neutralise(cell) for cell in cells + [_iso(sub.confirmed_at), _iso(sub.unsubscribed_at)]])
        yield buffer.getvalue()


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def _clean_name(name: str | None) -> str | None:
    if not name:
        return None
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in name).split())[:200]
    return cleaned or None


def request_subscription(store: Store, address: str) -> tuple[Subscriber, bool]:
    """A sign-up from the web: (subscriber, send a confirmation?). Never changes an active row.

    New addresses become pending; pending ones get the confirmation again; people who left
    may come back, but only by confirming (their status stays until they do).
    """
    from sqlalchemy.exc import IntegrityError

    try:
        sub, created = add(store, address, status=SubscriberStatus.PENDING)
    except IntegrityError:  # a concurrent sign-up for the same address won the insert
        found = get(store, address)
        if found is None:  # (and was removed again at once)
            raise
        sub, created = found, False
    if created:
        return sub, True
    return sub, sub.status != SubscriberStatus.ACTIVE


def confirm(store: Store, subscriber_id: int, address: str, issued_at: datetime | None = None) -> Subscriber | None:
    """Activate the subscriber a confirmation token names; None if the token doesn't match a row,
    or was issued before they unsubscribed (an old link must not undo leaving)."""
    sub = get_by_id(store, subscriber_id)
    if sub is None or sub.email != address.lower():
        return None
    left = sub.unsubscribed_at if sub.status == SubscriberStatus.UNSUBSCRIBED else None
    if left is not None and issued_at is not None and issued_at < left.replace(microsecond=0):
        return None  # (token timestamps are whole seconds: a link sent in the same second still works)
    if sub.status != SubscriberStatus.ACTIVE:
        now = utcnow()
        with store.write() as conn:
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == sub.id, subscribers.c.status != SubscriberStatus.ACTIVE)
                .values(
                    status=SubscriberStatus.ACTIVE,
                    confirmed_at=now,
                    updated_at=now,
                    hard_bounces=0,
                    unsubscribed_at=None,
                )
            )
    return get_by_id(store, sub.id)


def unsubscribe(store: Store, subscriber_id: int | None, address: str) -> Subscriber | None:
    """Unsubscribe whom an unsubscribe token names (idempotent); the row's address must match."""
    sub = get_by_id(store, subscriber_id) if subscriber_id is not None else get(store, address)
    if sub is None or sub.email != address.lower():
        return None
    if sub.status != SubscriberStatus.UNSUBSCRIBED:
        set_status(store, sub.id, SubscriberStatus.UNSUBSCRIBED)
    return get_by_id(store, sub.id)
