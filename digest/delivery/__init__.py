"""Ways to send mail, by the name used in digest.toml's [delivery] adapter and --adapter."""

from __future__ import annotations

from importlib import import_module

from digest.config import Config
from digest.delivery.base import MailAdapter

ADAPTERS = {
    "outbox": "digest.delivery.outbox:OutboxAdapter",
    "console": "digest.delivery.console:ConsoleAdapter",
    "smtp": "digest.delivery.smtp:SmtpAdapter",
    "postmark": "digest.delivery.postmark:PostmarkAdapter",
    "ses": "digest.delivery.ses:SesAdapter",
    "mailgun": "digest.delivery.mailgun:MailgunAdapter",
}


def make_adapter(config: Config, name: str | None = None) -> MailAdapter:
    """The adapter `name` (default: the configured one); imported only when chosen."""
    module, _, cls = ADAPTERS[name or config.delivery.adapter].partition(":")
    return getattr(import_module(module), cls)(config)
