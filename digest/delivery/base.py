"""The mail adapter interface every transport implements, and the types that cross it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Self

from digest.errors import DeliveryError


class SendStatus(StrEnum):
    SENT = "sent"  # accepted by the transport; never send again
    DEFERRED = "deferred"  # temporary (4xx, timeout, dropped connection); dispatch retries with backoff
    REJECTED = "rejected"  # permanent for this address (5xx); counts toward bounced


@dataclass(frozen=True)
class OutgoingMessage:
    """One recipient's finished message: the exact bytes that go on the wire (and get DKIM-signed)."""

    recipient: str
    sender: str  # the envelope sender (MAIL FROM)
    message_id: str
    raw: bytes
    smtputf8: bool = False  # an address is not ASCII: the server must offer SMTPUTF8 (RFC 6531)


@dataclass(frozen=True)
class SendResult:
    message_id: str
    status: SendStatus
    detail: str = ""
    bounce: bool = False  # a REJECTED that counts as a hard bounce of the address
    retry_after: float | None = None  # a DEFERRED the service asked to retry no sooner than this (seconds)


class NotSent(DeliveryError):
    """The service refused the whole call (a wrong key): nothing was handed over, the claims go back as they were."""


class Deferred(Exception):
    """Raised by `_transmit` for a temporary failure: try again later (no sooner than `retry_after` seconds,
    when the service said so: an HTTP 429 or 503 with Retry-After)."""

    def __init__(self, reply: str, retry_after: float | None = None):
        super().__init__(reply)
        self.retry_after = retry_after


class Rejected(Exception):
    """Raised by `_transmit` when the server refuses this message for good.

    `bounce` says whether the refusal is about the address (unknown mailbox), which
    counts toward marking the subscriber bounced, or about the message itself.
    """

    def __init__(self, reply: str, bounce: bool = True):
        super().__init__(reply)
        self.bounce = bounce


class CommitGate:
    """The point of no return of one send, as dispatch sees it.

    An adapter calls `commit()` right before a message becomes irrevocable (SMTP: before the
    final '.' of DATA; an HTTP service: before the request). Dispatch's gate blocks there until
    the connection's previous outcome is recorded and raises if the worker's lease is gone, so a
    connection never has more than one unrecorded message. This base gate has nothing to wait
    for: sends outside dispatch (test copies, notices) use it.
    """

    def ready(self) -> bool:
        """Whether `commit()` would return at once: SMTP then sends the body and the '.' in one write."""
        return True

    def commit(self) -> None:
        """Wait until the message may be completed; raise (anything) if it must not be."""


NO_WAIT = CommitGate()  # the gate for a send with nothing recorded before it


class MailAdapter(ABC):
    """Connects, sends one message at a time, reports each outcome, closes.

    An adapter never retries, sleeps or touches the store: dispatch owns claims, pacing,
    backoff, bounces and the delivery ledger. Only a transport that cannot work at all
    raises DeliveryError; the next `send` after a dropped connection reopens it.
    """

    name: ClassVar[str]
    batch_limit: ClassVar[int] = 1  # >1: `send_batch` hands over up to this many messages in one call

    def open(self) -> None:  # noqa: B027 - most transports need no session
        """Prepare the transport; DeliveryError with a hint if it is unusable."""

    def close(self) -> None:  # noqa: B027
        """Release the transport; safe to call twice."""

    def send(self, message: OutgoingMessage, gate: CommitGate = NO_WAIT) -> SendResult:
        """Send one message, passing `gate` just before the point of no return, so dispatch can finish
        recording the previous message while this one is transferred."""
        try:
            self._transmit(message, gate)
        except Deferred as exc:
            return SendResult(message.message_id, SendStatus.DEFERRED, str(exc), retry_after=exc.retry_after)
        except Rejected as exc:
            return SendResult(message.message_id, SendStatus.REJECTED, str(exc), exc.bounce)
        return SendResult(message.message_id, SendStatus.SENT)

    def send_batch(self, messages: list[OutgoingMessage], gate: CommitGate) -> list[SendResult]:
        """Hand over several messages in one call (batch_limit > 1), one result each, in order. The gate is
        passed once, right before the call: dispatch has recorded the previous batch and holds its lease."""
        raise NotImplementedError(f"the {self.name} adapter sends one message at a time")

    @abstractmethod
    def _transmit(self, message: OutgoingMessage, gate: CommitGate) -> None:
        """Hand the message over; call `gate.commit()` right before it becomes irrevocable."""

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = [
    "CommitGate",
    "NO_WAIT",
    "DeliveryError",
    "NotSent",
    "MailAdapter",
    "OutgoingMessage",
    "SendResult",
    "SendStatus",
    "Deferred",
    "Rejected",
]
