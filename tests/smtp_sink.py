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
    hang_once: set[str] = field(default_factory=set)  # never answer the first DATA for these addresses
    mail_reply: str | None = None  # the answer to every MAIL FROM, e.g. "421 4.3.2 shutting down"


class Recorder:
    """aiosmtpd handler: keeps accepted messages; thread-safe reads for the test."""

    def __init__(self, faults: Faults | None = None):
        self.faults = faults or Faults()
        self.messages: list[Received] = []
        self.attempts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.accepted = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.faults.mail_reply:
            return self.faults.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

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
        if rcpt in self.faults.hang_once:
            self.faults.hang_once.discard(rcpt)
            await asyncio.Event().wait()  # hangs until the server stops; this message is never accepted
        reply = self.faults.data_once.pop(rcpt, None)
        if reply:
            return reply
        with self.lock:
            if self.faults.drop_after is not None and self.accepted >= self.faults.drop_after:
                self.faults.drop_after = None  # once
                server.transport.close()
                return "421 closing"  # never reaches the client: the socket is gone
            self.accepted += 1
            self.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content)
            )
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

    def __init__(self, faults: Faults | None = None, *, smtputf8: bool = True):
        self.recorder = Recorder(faults)
        self.port = free_port()
        self.controller = Controller(
            self.recorder, hostname="127.0.0.1", port=self.port, decode_data=False, enable_SMTPUTF8=smtputf8
        )

    @property
    def messages(self) -> list[Received]:
        return self.recorder.messages

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


class CuttingServer:
    """A raw-socket SMTP server that closes the connection halfway through the body of the
    first message for each address in `cut_once`, and accepts everything else."""

    def __init__(self, cut_once: set[str]):
        self.cut_once = set(cut_once)
        self.messages: list[Received] = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        conn.sendall(b"220 cutting ESMTP\r\n")
        mail_from, rcpts = "", []
        try:
            while line := reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    conn.sendall(b"250-cutting\r\n250 8BITMIME\r\n")
                elif verb == b"MAIL":
                    mail_from, rcpts = line.split(b"<", 1)[1].split(b">", 1)[0].decode(), []
                    conn.sendall(b"250 OK\r\n")
                elif verb == b"RCPT":
                    rcpts.append(line.split(b"<", 1)[1].split(b">", 1)[0].decode())
                    conn.sendall(b"250 OK\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    body = []
                    while (data := reader.readline()) not in (b".\r\n", b""):
                        body.append(data)
                        if len(body) == 20 and rcpts[0] in self.cut_once:
                            self.cut_once.discard(rcpts[0])
                            conn.close()  # gone in the middle of the message: never accepted
                            return
                    with self.lock:
                        self.messages.append(Received(mail_from, rcpts, b"".join(body)))
                    conn.sendall(b"250 accepted\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 OK\r\n")
        except OSError:
            return
        finally:
            conn.close()

    def by_recipient(self) -> Counter[str]:
        with self.lock:
            return Counter(r for m in self.messages for r in m.rcpt_tos)

    def stop(self) -> None:
        self.sock.close()
