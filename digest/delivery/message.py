"""Rendered email + recipient -> the bytes to send: headers, per-recipient links, DKIM.

The body is quoted-printable encoded once per issue, split around the unsubscribe slot;
each recipient costs a join of pre-encoded pieces, not an `EmailMessage` (about 4 ms).
"""

from __future__ import annotations

import binascii
import re
import uuid
from dataclasses import dataclass
from email import policy
from email.utils import formataddr, formatdate
from urllib.parse import urlsplit

from digest.config import Config
from digest.delivery.base import OutgoingMessage
from digest.render.email import UNSUBSCRIBE_TOKEN, RenderedEmail

SOFT_BREAK = b"=\r\n"  # a QP soft line break: joins encoded pieces without adding characters
DKIM_HEADERS = [
    b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
    b"list-id", b"list-unsubscribe", b"list-unsubscribe-post",
]  # fmt: skip


@dataclass(frozen=True)
class Recipient:
    address: str
    message_id: str
    unsubscribe_url: str
    name: str | None = None


def qp_encode(text: str) -> bytes:
    """RFC 2045 quoted-printable: CRLF line ends, lines of at most 76 characters (binascii
    lets a few reach 77), and no line starting with '.', so SMTP needs no dot-stuffing pass."""
    encoded = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), istext=True)
    return b"\r\n".join(_fit_line(line) for line in encoded.split(b"\n"))


def _fit_line(line: bytes) -> bytes:
    """'.x' -> '=2Ex' (the same text once decoded); lines over 76 split with soft breaks."""
    out = []
    while True:
        if line.startswith(b"."):
            line = b"=2E" + line[1:]
        if len(line) <= 76:
            break
        cut = 75
        while b"=" in line[cut - 2 : cut]:  # never split an =XX escape
            cut -= 1
        out.append(line[:cut] + b"=")
        line = line[cut:]
    return b"\r\n".join([*out, line])


def room_for_soft_break(encoded: bytes) -> bytes:
    """Split a last line of 76 characters, so an appended '=' keeps it within RFC 2045's limit."""
    start = encoded.rfind(b"\n") + 1
    last = encoded[start:]
    if len(last) < 76:
        return encoded
    cut = 72
    while b"=" in last[cut - 2 : cut]:  # never split an =XX escape
        cut -= 1
    return encoded[:start] + last[:cut] + SOFT_BREAK + last[cut:]


class _Part:
    """One text part, encoded once, with the unsubscribe URL filled in per recipient."""

    def __init__(self, subtype: str, body: str):
        self.head = (
            f"Content-Type: text/{subtype}; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode()
        self.pieces = [room_for_soft_break(qp_encode(piece)) for piece in body.split(UNSUBSCRIBE_TOKEN)]

    def encode(self, url: bytes) -> bytes:
        out = [self.head, self.pieces[0]]
        for piece in self.pieces[1:]:
            out += [SOFT_BREAK, url, SOFT_BREAK, piece]
        out.append(b"\r\n")  # the CRLF before a boundary belongs to the boundary, not the body
        return b"".join(out)


class Composer:
    """Builds each recipient's message from one rendered email; reuse it for a whole send."""

    def __init__(self, email: RenderedEmail, config: Config):
        self.config = config
        sender = config.sender
        self.envelope_sender = sender.address
        self.boundary = "=_" + uuid.uuid4().hex  # "=_" never occurs in quoted-printable output
        host = urlsplit(config.site.base_url).hostname or "localhost"
        list_id = config.delivery.list_id or f"digest.{host}"
        common = [
            _header("From", formataddr((_clean(sender.name), sender.address), charset="utf-8")),
            policy.SMTP.fold("Subject", _clean(email.subject)),
            f"List-Id: {_clean(config.site.title)[:60].replace('<', '').replace('>', '')} <{list_id}>\r\n",
            "MIME-Version: 1.0\r\n",
        ]
        if sender.reply_to:
            common.append(_header("Reply-To", sender.reply_to))
        self.common = "".join(common)
        self.mailto = f"mailto:{sender.address}?subject=unsubscribe"
        self.text = _Part("plain", email.text)
        self.html = _Part("html", email.html)
        self.signer = _dkim_signer(config)

    def compose(self, recipient: Recipient) -> OutgoingMessage:
        url = recipient.unsubscribe_url
        if not re.fullmatch(r"https?://[\x21-\x7e]+", url) or "<" in url or ">" in url:
            raise ValueError(f"unsubscribe URL must be a plain http(s) URL, not {url!r}")
        to = formataddr((_clean(recipient.name or ""), recipient.address), charset="utf-8")
        head = (
            f"{self.common}{_header('To', to)}Date: {formatdate(usegmt=True)}\r\n"
            f"Message-ID: {recipient.message_id}\r\n"
            f"List-Unsubscribe: <{url}>,\r\n <{self.mailto}>\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            f'Content-Type: multipart/alternative;\r\n boundary="{self.boundary}"\r\n\r\n'
        ).encode("ascii")
        encoded_url = room_for_soft_break(qp_encode(url).rstrip(b"\r\n"))
        dash = f"--{self.boundary}\r\n".encode()
        raw = b"".join(
            [
                head,
                dash,
                self.text.encode(encoded_url),
                dash,
                self.html.encode(encoded_url),
                f"--{self.boundary}--\r\n".encode(),
            ]
        )
        if self.signer is not None:
            raw = self.signer(raw) + raw
        return OutgoingMessage(recipient.address, self.envelope_sender, recipient.message_id, raw)


def _clean(value: str) -> str:
    """No control characters in header values: a title can't inject a header."""
    return " ".join(re.sub(r"[\x00-\x1f\x7f]", " ", value).split())


def _header(name: str, value: str) -> str:
    return policy.SMTP.fold(name, value)


def _dkim_signer(config: Config):
    """A function raw -> DKIM-Signature header, or None when no key is configured."""
    if config.dkim is None:
        return None
    import dkim

    from digest.errors import DeliveryError

    try:
        key = config.dkim.key_file.read_bytes()
    except OSError as exc:
        raise DeliveryError(
            f"{config.dkim.key_file}: cannot read the DKIM key: {exc.strerror}", "set [dkim] key_file"
        ) from None
    selector, domain = config.dkim.selector.encode(), config.dkim.domain.encode()

    def sign(raw: bytes) -> bytes:
        return dkim.sign(
            raw, selector, domain, key, canonicalize=(b"relaxed", b"relaxed"), include_headers=DKIM_HEADERS
        )

    return sign
