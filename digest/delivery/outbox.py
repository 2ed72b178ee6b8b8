"""The embedded default transport: one RFC 5322 .eml file per message in the outbox folder."""

from __future__ import annotations

import errno
import re
from pathlib import Path

from digest.config import Config
from digest.delivery.base import CommitGate, Deferred, DeliveryError, MailAdapter, OutgoingMessage
from digest.files import write_atomic


class OutboxAdapter(MailAdapter):
    """Writes `<outbox>/<issue>/<message-id>.eml`; the same message always lands in the same file."""

    name = "outbox"

    def __init__(self, config: Config):
        self.folder = config.paths.outbox

    def open(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DeliveryError(
                f"{self.folder}: cannot create the outbox: {exc.strerror}", "set [paths] outbox in digest.toml"
            ) from None

    def path_for(self, message: OutgoingMessage) -> Path:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", message.message_id.strip("<>"))
        issue = stem.split(".", 1)[0]
        return self.folder / issue / f"{stem}.eml"

    def _transmit(self, message: OutgoingMessage, gate: CommitGate) -> None:
        gate.commit()
        try:
            write_atomic(self.path_for(message), message.raw)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN):
                raise Deferred(f"outbox write failed: {exc.strerror}") from None
            raise DeliveryError(f"{self.folder}: cannot write to the outbox: {exc.strerror}") from None
