"""SMTP transport: one reused connection, reopened when the server drops it. Only speaks SMTP."""

from __future__ import annotations

import os
import smtplib
import socket
import ssl

from digest.config import Config
from digest.delivery.base import Deferred, DeliveryError, MailAdapter, OutgoingMessage, Rejected

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
            client.ehlo()
            if s.security == "starttls":
                client.starttls(context=self.tls_context)
                client.ehlo()
            if s.username:
                if self.password is None:
                    client.close()
                    raise DeliveryError(f"[smtp] username is set but {PASSWORD_ENV} is not", f"export {PASSWORD_ENV}=...")
                client.login(s.username, self.password)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP login to {self._where} as {s.username!r} failed: {_reply(exc)}", f"check [smtp] username and {PASSWORD_ENV}") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"SMTP server {self._where}: {exc}", "set [smtp] security to match the server") from None
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

    def _transmit(self, message: OutgoingMessage) -> None:
        if self.client is None:
            self._connect()
        assert self.client is not None
        try:
            self.client.sendmail(message.sender, [message.recipient], message.raw)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            self._outcome(code, text, bounce=True)
        except smtplib.SMTPSenderRefused as exc:
            if exc.smtp_code >= 500:
                raise DeliveryError(f"SMTP server {self._where} refuses the sender {message.sender}: {_reply(exc)}", "check [sender] address") from None
            self._after_4xx(exc.smtp_code)
            raise Deferred(_reply(exc)) from None
        except smtplib.SMTPDataError as exc:
            # only "no such mailbox"-type DATA replies count against the address; "spam" ones do not
            bounce = _reply(exc).split(" ", 2)[1].startswith(("5.1.", "5.2.1", "5.2.2")) if " " in _reply(exc) else False
            self._outcome(exc.smtp_code, exc.smtp_error, bounce=bounce)
        except smtplib.SMTPResponseException as exc:
            self._drop()  # e.g. 421 to MAIL: smtplib has already closed the socket
            self._outcome(exc.smtp_code, exc.smtp_error, bounce=False)
        except (smtplib.SMTPServerDisconnected, socket.timeout, OSError) as exc:
            self._drop()
            raise Deferred(f"connection lost: {exc or type(exc).__name__}") from None

    def _outcome(self, code: int, text: bytes | str, *, bounce: bool) -> None:
        reply = f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
        if code >= 500:
            raise Rejected(reply, bounce=bounce)
        self._after_4xx(code)
        raise Deferred(reply)

    def _after_4xx(self, code: int) -> None:
        if code == 421:  # the server is closing the channel
            self._drop()


def _reply(exc: smtplib.SMTPResponseException) -> str:
    error = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    return f"{exc.smtp_code} {error}"
