"""Rendered email + recipient -> the bytes to send: headers, per-recipient links, DKIM.

The body is quoted-printable encoded once per issue, split around the unsubscribe slot;
each recipient costs a join of pre-encoded pieces, not an `EmailMessage` (about 4 ms).
"""

from __future__ import annotations

import binascii
import re
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from digest import tokens
from digest.config import Config
from digest.delivery import headers
from digest.delivery.base import OutgoingMessage
from digest.delivery.dkim import DkimSigner, load_signer, relaxed_fragment
from digest.render.email import RenderedEmail

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
    return_path: str | None = None  # the envelope sender for this message (VERP); default [sender] address


class Recipients:
    """Makes every real reader's `Recipient`: the Message-ID, unsubscribe link and return path signed with
    the site's secret, the same way for the issue, test copies and the welcome."""

    def __init__(self, config: Config, secret: str | None = None):
        self.config = config
        self.secret = secret if secret is not None else tokens.secret_key(config)
        self.domain = tokens.sender_domain(config)  # the Message-ID's right-hand side
        self.bounce_domain = config.delivery.return_path_domain

    def make(
        self,
        key: str,
        address: str,
        *,
        name: str | None = None,
        subscriber_id: int | None = None,
        delivery_id: int | None = None,
    ) -> Recipient:
        """`key` fixes the Message-ID (the issue's key: the same on every attempt); a `delivery_id` gets a
        VERP return path when [delivery] return_path_domain is set."""
        verp = None
        if delivery_id is not None and self.bounce_domain:
            verp = tokens.return_path(self.secret, delivery_id, self.bounce_domain)
        return Recipient(
            address=address,
            name=name,
            message_id=tokens.message_id(self.secret, key, address, self.domain),
            unsubscribe_url=tokens.unsubscribe_url(
                self.config, self.secret, tokens.TokenSubject(address, subscriber_id)
            ),
            return_path=verp,
        )


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

    def __init__(self, subtype: str, body: str, slot: str, *, signed: bool = False):
        self.head = (
            f"Content-Type: text/{subtype}; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode()
        self.pieces = [room_for_soft_break(qp_encode(piece)) for piece in body.split(slot)]
        # for DKIM, the same in relaxed form, made once per send; the URL and soft breaks between them have
        # no white space, so joined they give the relaxed part unless a piece ends in a space
        self.relaxed_head = relaxed_fragment(self.head) if signed else b""
        self.relaxed_pieces = [relaxed_fragment(piece) for piece in self.pieces] if signed else []
        self.relaxes_in_pieces = signed and not any(p.endswith((b" ", b"\t")) for p in self.relaxed_pieces)

    def encode(self, url: bytes) -> list[bytes]:
        return self._join(self.head, self.pieces, url)

    def encode_relaxed(self, url: bytes) -> list[bytes]:
        return self._join(self.relaxed_head, self.relaxed_pieces, url)

    @staticmethod
    def _join(head: bytes, pieces: list[bytes], url: bytes) -> list[bytes]:
        out = [head, pieces[0]]
        for piece in pieces[1:]:
            out += [SOFT_BREAK, url, SOFT_BREAK, piece]
        out.append(b"\r\n")  # the CRLF before a boundary belongs to the boundary, not the body
        return out


class Composer:
    """Builds each recipient's message from one rendered email; reuse it for a whole send."""

    def __init__(self, email: RenderedEmail, config: Config):
        self.config = config
        sender = config.sender
        self.envelope_sender = sender.address
        self.slot = email.slot
        self.boundary = "=_" + uuid.uuid4().hex  # "=_" never occurs in quoted-printable output
        common = [
            headers.mailbox("From", sender.name, sender.address),
            headers.unstructured("Subject", email.subject),
            list_id_header(config),
            "MIME-Version: 1.0\r\n",
        ]
        if sender.reply_to:
            common.append(headers.mailbox("Reply-To", None, sender.reply_to))
        self.common = "".join(common)
        self.mailto = f"mailto:{sender.address}?subject=unsubscribe"
        self.signer = _dkim_signer(config)
        self.text = _Part("plain", email.text, email.slot, signed=self.signer is not None)
        self.html = _Part("html", email.html, email.slot, signed=self.signer is not None)

    def compose(self, recipient: Recipient) -> OutgoingMessage:
        url = recipient.unsubscribe_url
        if not re.fullmatch(r"https?://[\x21-\x7e]+", url) or "<" in url or ">" in url:
            raise ValueError(f"unsubscribe URL must be a plain http(s) URL, not {url!r}")
        head = (
            f"{self.common}{headers.mailbox('To', recipient.name, recipient.address)}{headers.date_now()}"
            f"Message-ID: {recipient.message_id}\r\n"
            f"List-Unsubscribe: <{url}>,\r\n <{self.mailto}>\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            f'Content-Type: multipart/alternative;\r\n boundary="{self.boundary}"\r\n\r\n'
        ).encode()  # ASCII, but for a non-ASCII mailbox (RFC 6532), sent only over SMTPUTF8
        encoded_url = room_for_soft_break(qp_encode(url).rstrip(b"\r\n"))
        dash, end = f"--{self.boundary}\r\n".encode(), f"--{self.boundary}--\r\n".encode()
        text, html = self.text.encode(encoded_url), self.html.encode(encoded_url)
        raw = b"".join([head, dash, *text, dash, *html, end])
        if self.signer is not None:
            if self.text.relaxes_in_pieces and self.html.relaxes_in_pieces and b" " not in encoded_url:
                text, html = self.text.encode_relaxed(encoded_url), self.html.encode_relaxed(encoded_url)
                raw = self.signer.sign_relaxed(head[: -len(b"\r\n\r\n")], [dash, *text, dash, *html, end]) + raw
            else:
                raw = self.signer(raw) + raw
        sender = recipient.return_path or self.envelope_sender
        return OutgoingMessage(
            recipient.address,
            sender,
            recipient.message_id,
            raw,
            smtputf8=not (recipient.address.isascii() and sender.isascii()),
        )


def list_id_header(config: Config) -> str:
    """`List-Id: <phrase> <list-id>` (RFC 2919): the site title as the phrase, encoded as needed."""
    host = urlsplit(config.site.base_url).hostname or "localhost"
    list_id = config.delivery.list_id or f"digest.{host.encode('idna').decode('ascii')}"
    shown = headers.phrase(headers.clean(config.site.title)[:60], len("List-Id: "), display_name=False)
    return f"List-Id: {shown} <{list_id}>\r\n" if shown else f"List-Id: <{list_id}>\r\n"


def _dkim_signer(config: Config) -> DkimSigner | None:
    """raw -> its DKIM-Signature header(s), keys parsed once per Composer; None without [dkim].

    The signer costs 1.1-1.3x one bare RSA-2048 signature per message in-process (bench/send.py --dkim);
    dkimpy, which this replaced, took about 15x. A send on one connection signs the next message while
    the current one is on the wire (dispatch._ComposeAhead).
    """
    if config.dkim is None:
        return None
    return load_signer(config.dkim, config.root, DKIM_HEADERS)
