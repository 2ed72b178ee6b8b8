"""A real SMTP server on loopback (aiosmtpd) that records messages and injects faults on request."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    @property
    def message(self):
        return message_from_bytes(self.content, policy=policy.default)

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


@dataclass
class Faults:
    """What the server does wrong. Addresses map to an SMTP reply string, e.g. '451 4.7.1 try later'."""

    rcpt: dict[str, str] = field(default_factory=dict)  # every attempt for these addresses
    rcpt_once: dict[str, str] = field(default_factory=dict)  # only the first attempt
    data_once: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None  # close the connection (no reply) after this many accepted messages
    delay: float = 0.0  # seconds to wait before answering DATA
    greeting_421: bool = False


class Recorder:
    """aiosmtpd handler: keeps accepted messages; thread-safe reads for the test."""

    def __init__(self, faults: Faults | None = None):
        self.faults = faults or Faults()
        self.messages: list[Received] = []
        self.attempts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.accepted = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            self.attempts[address] += 1
            first = self.attempts[address] == 1
        if address in self.faults.rcpt:
            return self.faults.rcpt[address]
        if first and address in self.faults.rcpt_once:
            return self.faults.rcpt_once[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.faults.delay:
            await asyncio.sleep(self.faults.delay)
        rcpt = envelope.rcpt_tos[0]
        reply = self.faults.data_once.pop(rcpt, None)
        if reply:
            return reply
        with self.lock:
            if self.faults.drop_after is not None and self.accepted >= self.faults.drop_after:
                self.faults.drop_after = None  # once
                server.transport.close()
                return "421 closing"  # never reaches the client: the socket is gone
            self.accepted += 1
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 Message accepted"

    def by_recipient(self) -> Counter[str]:
        with self.lock:
            return Counter(r for m in self.messages for r in m.rcpt_tos)

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)


class SmtpServer:
    """Start/stop an aiosmtpd server on 127.0.0.1 at a free port."""

    def __init__(self, faults: Faults | None = None):
        self.recorder = Recorder(faults)
        self.port = free_port()
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port, decode_data=False)

    @property
    def messages(self) -> list[Received]:
        return self.recorder.messages

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
