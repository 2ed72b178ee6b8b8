"""Real mail plumbing for the bounce tests: an SMTP server that delivers into a Maildir (as an MDA
does, with Return-Path and Delivered-To), an IMAP server (pymap) serving that Maildir, and the
report shapes in tests/data/bounces/ filled in for a message that was really sent."""

from __future__ import annotations

import mailbox
import smtplib
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from aiosmtpd.controller import Controller
from smtp_sink import free_port

DATA = Path(__file__).resolve().parent / "data" / "bounces"


class MaildirDelivery:
    """aiosmtpd handler: each accepted message lands in the Maildir, as Postfix's virtual(8) writes it."""

    def __init__(self, path: Path):
        self.box = mailbox.Maildir(path, create=True)

    async def handle_DATA(self, server, session, envelope):
        for rcpt in envelope.rcpt_tos:
            head = f"Return-Path: <{envelope.mail_from}>\r\nDelivered-To: {rcpt}\r\n".encode()
            self.box.add(head + (envelope.original_content or envelope.content))
        return "250 2.0.0 delivered to maildir"


class MaildirServer:
    def __init__(self, path: Path):
        self.path = path
        self.port = free_port()
        self.controller = Controller(MaildirDelivery(path), hostname="127.0.0.1", port=self.port, decode_data=False)

    def start(self) -> MaildirServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def deliver(self, raw: bytes, rcpt: str, mail_from: str = "") -> None:
        """What a remote MTA does with a report: MAIL FROM:<> (RFC 3464), RCPT TO the return path."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
            client.sendmail(mail_from, [rcpt], raw)


@dataclass(frozen=True)
class Sent:
    """One message the digest really sent, as the relay received it."""

    rcpt: str
    mail_from: str  # the envelope sender: the VERP return path when configured
    message_id: str
    subject: str


def report(shape: str, sent: Sent, nonce: str = "1") -> bytes:
    text = (DATA / f"{shape}.eml").read_text()
    for key, value in {
        "{VERP}": sent.mail_from,
        "{RCPT}": sent.rcpt,
        "{MSGID}": sent.message_id,
        "{SUBJECT}": sent.subject,
        "{NONCE}": nonce,
    }.items():
        text = text.replace(key, value)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def plain_mail(sender: str, to: str, subject: str, body: str, message_id: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n"
        f"Date: Mon, 3 Mar 2025 12:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n{body}\r\n"
    ).encode()


class ImapServer:
    """pymap's maildir backend serving `home` (a Maildir) to `user`, in its own process on loopback."""

    def __init__(self, base: Path, home: str, user: str, password: str):
        from pymap.config import BuiltinHash

        self.port = free_port()
        (base / "pymap-etc-passwd").write_text(f"{user}:::::{home}:\n")
        (base / "pymap-etc-shadow").write_text(f"{user}:{BuiltinHash().hash(password)}:::::::\n")
        self.args = [
            sys.executable,
            "-c",
            "import sys; from pymap.main import main; sys.exit(main())",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-tls",
        ]
        self.args += ["maildir", str(base)]
        self.process: subprocess.Popen | None = None

    def start(self) -> ImapServer:
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # ready when it greets
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"* OK"):
                        return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"pymap exited: {self.process.stderr.read().decode()}") from None
                time.sleep(0.1)
        raise RuntimeError("pymap did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process.stderr.close()
