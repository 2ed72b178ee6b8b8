"""Small one-off mails: the double opt-in confirmation (a plain EmailMessage: low volume), and the
welcome, composed like an issue so it carries the same headers (List-Unsubscribe one-click and all)."""

from __future__ import annotations

import html
import uuid
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from digest.config import Config
from digest.delivery import headers
from digest.delivery.base import OutgoingMessage


def confirmation(config: Config, address: str, confirm_url: str) -> OutgoingMessage:
    """'Confirm your subscription' with the signed link; nothing else is sent until it is followed."""
    site, sender = config.site, config.sender
    utf8 = not address.isascii()  # a non-ASCII mailbox: RFC 6532 headers, sent over SMTPUTF8
    message = EmailMessage(policy=policy.SMTPUTF8 if utf8 else policy.SMTP)
    message["From"] = Address(display_name=headers.clean(sender.name), addr_spec=sender.address)  # never re-parsed
    local, _, domain = address.rpartition("@")  # (addr_spec= refuses a non-ASCII local part)
    message["To"] = Address(username=local, domain=domain) if utf8 else Address(addr_spec=address)
    message["Subject"] = headers.clean(f"Confirm your subscription to {site.title}")
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = f"<confirm.{uuid.uuid4().hex}@{sender.address.rsplit('@', 1)[1]}>"
    message["Auto-Submitted"] = "auto-generated"
    text = (
        f"Someone (probably you) asked to receive {site.title} by email at {address}.\n\n"
        f"To confirm, open this link:\n\n  {confirm_url}\n\n"
        "The link works for 7 days. If it wasn't you, ignore this message: nothing more will be sent.\n"
    )
    message.set_content(text)
    title = html.escape(site.title)
    message.add_alternative(
        f'<!DOCTYPE html><html lang="{html.escape(site.language)}"><body style="font-family:sans-serif">'
        f"<p>Someone (probably you) asked to receive {title} by email at {html.escape(address)}.</p>"
        f'<p><a href="{html.escape(confirm_url)}">Confirm your subscription</a></p>'
        "<p>The link works for 7 days. If it wasn't you, ignore this message: nothing more will be sent.</p>"
        "</body></html>",
        subtype="html",
    )
    return OutgoingMessage(address, sender.address, str(message["Message-ID"]), message.as_bytes(), smtputf8=utf8)


def welcome(config: Config, secret: str, subscriber_id: int, address: str, name: str | None, latest_key: str | None):
    """The welcome for one confirmed reader: the latest issue's link and their own unsubscribe link."""
    from digest.delivery.message import Composer, Recipients
    from digest.render.welcome import LatestIssue, render_welcome

    latest = LatestIssue.from_key(latest_key, config) if latest_key else None
    recipient = Recipients(config, secret).make("welcome", address, name=name, subscriber_id=subscriber_id)
    return Composer(render_welcome(config, latest), config).compose(recipient)
