"""SMTP transport: one reused connection, reopened when the server drops it. Only speaks SMTP."""

from __future__ import annotations

import os
import re
import smtplib
import socket
import ssl

from digest.config import Config
from digest.delivery.base import CommitGate, Deferred, DeliveryError, MailAdapter, OutgoingMessage, Rejected

PASSWORD_ENV = "DIGEST_SMTP_PASSWORD"


class SmtpAdapter(MailAdapter):
    name = "smtp"

    def __init__(self, config: Config, tls_context: ssl.SSLContext | None = None):
        self.settings = config.smtp
        self.password = os.environ.get(PASSWORD_ENV)
        self.tls_context = tls_context or ssl.create_default_context()
        self.client: smtplib.SMTP | None = None

    def open(self) -> None:
        """Connect and log in now, so a wrong host or password stops the send before it starts."""
        try:
            self._connect()
        except Deferred as exc:
            raise DeliveryError(f"SMTP server {self._where}: {exc}", "check [smtp] host, port and security") from None

    @property
    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def _connect(self) -> None:
        s = self.settings
        try:
            if s.security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self.tls_context)
            else:
                client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            # the final '.' is a small write after the body: without NODELAY, Nagle and delayed ACKs cost 40 ms
            if client.sock is not None:  # (always, once connected)
                client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.ehlo()
            if s.security == "starttls":
                client.starttls(context=self.tls_context)
                client.ehlo()
            if s.username:
                if self.password is None:
                    client.close()
                    raise DeliveryError(
                        f"[smtp] username is set but {PASSWORD_ENV} is not", f"export {PASSWORD_ENV}=..."
                    )
                client.login(s.username, self.password)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"SMTP login to {self._where} as {s.username!r} failed: {_reply(exc)}",
                f"check [smtp] username and {PASSWORD_ENV}",
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(
                f"SMTP server {self._where}: {exc}", "set [smtp] security to match the server"
            ) from None
        except ssl.SSLError as exc:
            raise Deferred(f"TLS handshake failed: {exc.reason or exc}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise Deferred(f"cannot connect: {exc}") from None
        self.client = client

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()

    def _drop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()

    def _transmit(self, message: OutgoingMessage, gate: CommitGate) -> None:
        if self.client is None:
            self._connect()
        assert self.client is not None
        try:
            _sendmail(self.client, message, gate)
        except _Uncommitted as exc:
            self._drop()  # closing before the final '.' makes the server discard the message
            raise exc.reason from None
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            self._outcome(code, text, bounce=True)
        except smtplib.SMTPSenderRefused as exc:
            if exc.smtp_code >= 500:
                raise DeliveryError(
                    f"SMTP server {self._where} refuses the sender {message.sender}: {_reply(exc)}",
                    "check [sender] address",
                ) from None
            self._outcome(exc.smtp_code, exc.smtp_error, bounce=False)
        except smtplib.SMTPDataError as exc:
            # only "no such mailbox"-type DATA replies count against the address; "spam" ones do not
            enhanced = _reply(exc).split(" ")[1] if _reply(exc).count(" ") else ""
            self._outcome(exc.smtp_code, exc.smtp_error, bounce=enhanced.startswith(("5.1.", "5.2.1", "5.2.2")))
        except smtplib.SMTPResponseException as exc:
            self._drop()
            self._outcome(exc.smtp_code, exc.smtp_error, bounce=False)
        except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise Deferred(f"connection lost: {exc or type(exc).__name__}") from None
        finally:
            if self.client is not None and self.client.sock is None:  # closed after a 421 or an abandoned DATA
                self.client = None

    def _outcome(self, code: int, text: bytes | str, *, bounce: bool) -> None:
        reply = f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
        if code >= 500:
            raise Rejected(reply, bounce=bounce)
        if code == 421:  # the server is closing the channel
            self._drop()
        raise Deferred(reply)


class _Uncommitted(Exception):
    """`gate.commit()` failed: the message must not be completed. `reason` is what it raised."""

    def __init__(self, reason: BaseException):
        super().__init__(str(reason))
        self.reason = reason


def _sendmail(client: smtplib.SMTP, message: OutgoingMessage, gate: CommitGate) -> None:
    """smtplib's sendmail for one recipient, with `gate.commit()` called before the final '.'.

    With PIPELINING (RFC 2920) MAIL, RCPT and DATA go out in one write: one round trip
    instead of three. Addresses were validated when stored, so smtplib's slow quoting is skipped.
    """
    mail_from = f"MAIL FROM:<{message.sender}>"
    if message.smtputf8:
        if not (client.does_esmtp and client.has_extn("smtputf8")):
            raise Rejected(
                f"the address {message.recipient} is not ASCII and the server does not offer SMTPUTF8 (RFC 6531), "
                "so it can't be delivered through this server",
                bounce=False,
            )
        mail_from += " SMTPUTF8"
    envelope = [mail_from, f"RCPT TO:<{message.recipient}>", "DATA"]
    if client.does_esmtp and client.has_extn("pipelining"):
        client.send("".join(f"{line}\r\n" for line in envelope).encode("utf-8"))
        replies = [client.getreply() for _ in envelope]
    else:
        replies = []
        for line in envelope:
            client.send(f"{line}\r\n".encode())
            replies.append(client.getreply())
            if replies[-1][0] >= 400:
                break
    _check_envelope(client, message, replies)
    body = _dot_stuff(message.raw)
    if gate.ready():  # the previous outcome is recorded already: one write
        _commit(gate)
        client.send(body + b".\r\n")
    else:  # transfer the body while the previous outcome is recorded, then complete
        client.send(body)
        _commit(gate)
        client.send(b".\r\n")
    code, reply = client.getreply()
    if code != 250:
        raise smtplib.SMTPDataError(code, reply)


def _commit(gate: CommitGate) -> None:
    try:
        gate.commit()
    except BaseException as exc:
        raise _Uncommitted(exc) from exc


def _check_envelope(client: smtplib.SMTP, message: OutgoingMessage, replies: list[tuple[int, bytes]]) -> None:
    """Raise what smtplib's sendmail would for a refused MAIL, RCPT or DATA."""
    (mail_code, mail_reply), rest = replies[0], replies[1:]
    if mail_code == 250 and rest and rest[0][0] in (250, 251) and len(rest) == 2 and rest[1][0] == 354:
        return
    # DATA accepted although MAIL or RCPT failed: abandon it; 421: the server is closing anyway
    if len(rest) == 2 and rest[1][0] == 354 or 421 in (code for code, _ in replies):
        client.close()
    else:
        client.rset()
    if mail_code != 250:
        raise smtplib.SMTPSenderRefused(mail_code, mail_reply, message.sender)
    rcpt_code, rcpt_reply = rest[0]
    if rcpt_code not in (250, 251):
        raise smtplib.SMTPRecipientsRefused({message.recipient: (rcpt_code, rcpt_reply)})
    raise smtplib.SMTPDataError(*rest[1])


def _dot_stuff(raw: bytes) -> bytes:
    """RFC 5321 4.5.2 transparency; the regex only runs when a line starts with '.'."""
    if raw.startswith(b".") or b"\n." in raw:
        raw = re.sub(rb"(?m)^\.", b"..", raw)
    return raw if raw.endswith(b"\r\n") else raw + b"\r\n"


def _reply(exc: smtplib.SMTPResponseException) -> str:
    error = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    return f"{exc.smtp_code} {error}"
