"""Before anything is queued: compose one real message exactly as `send` would, and read it back strictly.

`check --month`, `send`, `publish`, the monthly job, the admin send and the workers all run
this, so a message that could not be sent is refused before the first recipient, never
discovered half-way through a list.
"""

from __future__ import annotations

import email
import email.errors
import email.policy
import re
from email.headerregistry import Address

from digest.config import Config
from digest.delivery import headers
from digest.delivery.message import Composer, Recipient, list_id_header
from digest.errors import DeliveryError, Label, Problem, SendRefused
from digest.render.email import RenderedEmail, final_html_bytes

__all__ = ["SendRefused", "problems", "sample_recipient", "wire_problems"]

# A sample reader whose name holds everything that has broken headers before
SAMPLE_NAME = 'Zoë "Ünï" <x@evil.example>, y@evil.example — 读者 قارئ 📬'
_READ = email.policy.default  # defects are collected on each part and header, and reported


def sample_recipient(config: Config, key: str) -> Recipient:
    """A reader with the longest possible unsubscribe link and a hostile display name."""
    from digest.tokens import longest_unsubscribe_url

    address = "sample.reader@" + config.sender.address.rsplit("@", 1)[1]
    url = config.site.base_url + "unsubscribe/"
    url += "x" * (longest_unsubscribe_url(config) - len(url))
    return Recipient(address, f"<{key}.preflight@{address.rsplit('@', 1)[1]}>", url, SAMPLE_NAME)


def problems(rendered: RenderedEmail, config: Config, recipient: Recipient | None = None) -> list[Problem]:
    """What would be wrong with the message `send` composes for `recipient` (a sample reader by default)."""
    where = Label(f"{rendered.key} email")
    found = []
    if config.email.overflow == "refuse":
        size = final_html_bytes(rendered.html, rendered.slot, config)
        if size > config.email.max_html_bytes:
            found.append(
                Problem(
                    where,
                    f"the HTML is {size:,} bytes, {size - config.email.max_html_bytes:,} over [email] max_html_bytes "
                    f"({config.email.max_html_bytes:,}): Gmail would clip it, unsubscribe link included",
                    hint=f"{rendered.fits} of {rendered.total} entries fit: trim commentary, move entries to another "
                    'month, or set [email] overflow = "link"',
                )
            )
    recipient = recipient or sample_recipient(config, rendered.key)
    try:
        message = Composer(rendered, config).compose(recipient)
    except DeliveryError as exc:  # e.g. the DKIM key can't be read
        return [*found, Problem(where, str(exc))]
    except (ValueError, UnicodeError) as exc:
        return [*found, Problem(where, f"the message can't be composed: {exc}")]
    found += [
        Problem(where, text) for text in wire_problems(message.raw, message.smtputf8, config, rendered, recipient)
    ]
    return found


def wire_problems(
    raw: bytes, smtputf8: bool, config: Config, rendered: RenderedEmail, recipient: Recipient
) -> list[str]:
    """Read `raw` back with the standard library's parser and compare every header with what went in."""
    out = []
    lines = raw.split(b"\r\n")
    if b"\n" in raw.replace(b"\r\n", b"") or b"\r" in raw.replace(b"\r\n", b""):
        out.append("a bare CR or LF in the message (lines must end in CRLF)")
    long = [n for n, line in enumerate(lines, 1) if len(line) > 998]
    if long:
        out.append(f"line {long[0]} is {len(lines[long[0] - 1]):,} octets; RFC 5322 allows 998")
    if not smtputf8 and not raw.isascii():
        out.append("non-ASCII bytes on the wire although no address needs SMTPUTF8")
    # RFC 6532: UTF-8 headers (read as text); the parser flags a non-ASCII local part, which SMTPUTF8 allows
    message = (
        email.message_from_string(raw.decode("utf-8"), policy=_READ)
        if smtputf8
        else (email.message_from_bytes(raw, policy=_READ))
    )
    allowed = (email.errors.NonASCIILocalPartDefect,) if smtputf8 else ()
    for part in message.walk():
        if part.defects:
            out.append(f"{part.get_content_type()} part: {', '.join(type(d).__name__ for d in part.defects)}")
    for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe"):
        values = message.get_all(name) or []
        if len(values) != 1:
            out.append(f"{name}: {len(values)} headers, expected one")
            continue
        defects = [d for d in getattr(values[0], "defects", ()) if not isinstance(d, allowed)]
        if defects:
            out.append(f"{name}: {', '.join(type(d).__name__ for d in defects)}")
    if out:
        return out
    expect = {
        "From": [Address(headers.clean(config.sender.name), addr_spec=config.sender.address)],
        "To": [Address(headers.clean(recipient.name or ""), addr_spec=recipient.address)],
    }
    for name, wanted in expect.items():
        got = [(a.display_name, a.addr_spec) for a in message[name].addresses]
        if got != [(a.display_name, a.addr_spec) for a in wanted]:
            out.append(f"{name} reads back as {got!r}, not {[(a.display_name, a.addr_spec) for a in wanted]!r}")
    if str(message["Subject"]) != headers.clean(rendered.subject):
        out.append(f"Subject reads back as {str(message['Subject'])!r}, not {headers.clean(rendered.subject)!r}")
    list_id = email.message_from_bytes(list_id_header(config).encode() + b"\r\n", policy=_READ)["List-Id"]
    if str(message["List-Id"]) != str(list_id) or headers.clean(config.site.title)[:60] not in str(list_id):
        out.append(f"List-Id reads back as {str(message['List-Id'])!r}")
    if not re.search(r"[+-]\d{4}$", str(message["Date"])):
        out.append(f"Date {message['Date']} has no numeric zone")
    if f"<{recipient.unsubscribe_url}>" not in str(message["List-Unsubscribe"]).replace(" ", ""):
        out.append("List-Unsubscribe does not carry the reader's unsubscribe URL")
    for part in message.walk():
        if part.get_content_maintype() == "text" and recipient.unsubscribe_url not in part.get_content():
            out.append(f"the {part.get_content_subtype()} part has no unsubscribe link")
    return out
