"""A transport that prints each message to standard output, for a look before sending for real."""

from __future__ import annotations

import sys
from typing import TextIO

from digest.config import Config
from digest.delivery.base import CommitGate, MailAdapter, OutgoingMessage


class ConsoleAdapter(MailAdapter):
    name = "console"

    def __init__(self, config: Config, stream: TextIO | None = None):
        self.stream = stream or sys.stdout

    def _transmit(self, message: OutgoingMessage, gate: CommitGate) -> None:
        gate.commit()
        rule = "-" * 72
        self.stream.write(f"{rule}\nTo: {message.recipient} ({len(message.raw):,} bytes)\n{rule}\n")
        self.stream.write(message.raw.decode("utf-8", "replace").replace("\r\n", "\n"))
        self.stream.write("\n")
        self.stream.flush()
