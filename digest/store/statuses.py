"""The store's closed vocabularies: a subscriber's, a delivery's and a run's status, and a run's kind."""

from __future__ import annotations

from enum import StrEnum


class SubscriberStatus(StrEnum):
    PENDING = "pending"  # signed up, not yet confirmed
    ACTIVE = "active"  # receives each issue
    UNSUBSCRIBED = "unsubscribed"  # kept, so no import brings them back
    BOUNCED = "bounced"  # too many hard bounces


class DeliveryStatus(StrEnum):
    QUEUED = "queued"  # waiting (perhaps for its next attempt time)
    SENDING = "sending"  # claimed by a worker
    SENT = "sent"  # accepted by the transport: never again
    FAILED = "failed"  # permanent failure, or temporary ones past max attempts
    SKIPPED = "skipped"  # the subscriber left before it was sent


class RunKind(StrEnum):
    SCHEDULED = "scheduled"  # the monthly job
    MANUAL = "manual"  # POST /admin/send, or the CLI


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # an empty month
    AWAITING_SEND = "awaiting-send"  # draft mode: preview mailed, the send waits for the trigger
