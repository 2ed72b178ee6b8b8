"""The tables: subscribers, issues, deliveries, and the workers that hold delivery claims."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect

from digest.store.statuses import DeliveryStatus, RunKind, RunStatus, SubscriberStatus


class UTCDateTime(TypeDecorator):
    """Stored as naive UTC (portable across SQLite and PostgreSQL), read back timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Status(TypeDecorator[str]):
    """A status column: text in the database, a member of its StrEnum in Python (written and read back),
    so no caller compares a status with a bare string."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum]):
        super().__init__(16)
        self.enum = enum

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value  # an unknown status fails here, not later

    def process_result_value(self, value: str | None, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self.enum(value)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),  # normalised: domain lower-cased
    Column("name", String(200)),
    Column("status", Status(SubscriberStatus), nullable=False),
    Column("hard_bounces", Integer, nullable=False, default=0),
    Column("soft_bounces", Integer, nullable=False, default=0),  # counted apart, against a larger threshold
    Column("complaints", Integer, nullable=False, default=0),  # ARF feedback reports (each also unsubscribes)
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("confirmed_at", UTCDateTime),
    Column("unsubscribed_at", UTCDateTime),
    Index(None, "status"),
)

issues = Table(
    "issues",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(7), nullable=False, unique=True),  # "2025-02"
    Column("subject", Text, nullable=False),
    Column("html", Text, nullable=False),  # the rendered email, so a worker on any host can send it
    Column("text", Text, nullable=False),
    Column("built_at", UTCDateTime, nullable=False),
    Column("sending_started_at", UTCDateTime),
    Column("sending_finished_at", UTCDateTime),
)

workers = Table(
    "workers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("host", String(255), nullable=False),
    Column("boot_id", String(64), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("process_start", String(32), nullable=False),  # with pid and boot_id: this process, not a reused pid
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime),
    Column("sent", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("status", Status(DeliveryStatus), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("message_id", String(255)),
    Column("sent_at", UTCDateTime),
    Column("next_attempt_at", UTCDateTime),
    Column("claimed_by", Integer, ForeignKey("workers.id", ondelete="SET NULL")),
    Column("claim_batch", Integer),  # a batch is sent in id order: its lowest unrecorded row is the one in flight
    Column("unknown_outcome", Boolean, nullable=False, default=False),  # in flight when its sender died
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("issue_id", "subscriber_id"),
    Index(None, "issue_id", "status", "id"),
    Index(None, "claimed_by"),
)


def utcnow() -> datetime:
    return datetime.now(UTC)


runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", Status(RunKind), nullable=False),
    Column("month", String(7), nullable=False),
    Column("dedupe", String(64), unique=True),  # "scheduled:2025-02": a scheduled publish happens once per month
    Column("status", Status(RunStatus), nullable=False),
    Column("detail", Text),
    Column("sent", Integer, nullable=False, default=0),
    Column("retried", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("started_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),  # "scheduler"
    Column("holder", String(128), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

mail_events = Table(
    "mail_events",
    metadata,
    Column("id", Integer, primary_key=True),
    # the reporting mail's Message-ID, or the service's event id: each is acted on once, however often it comes
    Column("key", String(255), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # EventKind
    Column("source", String(16), nullable=False),  # "maildir", "imap", "postmark", "ses", "mailgun"
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE")),
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="SET NULL")),
    Column("delivery_id", Integer, ForeignKey("deliveries.id", ondelete="SET NULL")),
    Column("detail", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "issue_id", "kind"),
)
