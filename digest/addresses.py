"""One rule for every email address the project takes: subscribers, `--to`, the preview list, config.

Syntax only (no DNS), by email-validator. The domain is kept in its ASCII (IDNA) form, which
every SMTP server accepts; a non-ASCII local part is kept as written and needs SMTPUTF8.
"""

from __future__ import annotations

from digest.errors import DigestError


class InvalidAddress(DigestError):
    """An address that fails validation; the message says why."""


def normalise(address: str) -> str:
    """The canonical form of `address`: one row per mailbox, whatever the capitals."""
    from email_validator import EmailNotValidError, validate_email

    given = address.strip()
    try:
        result = validate_email(given, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"{given!r} is not a valid email address: {exc}") from None
    except Exception as exc:  # the IDNA codec on an absurd label  # noqa: BLE001
        raise InvalidAddress(f"{given!r} is not a valid email address: {exc}") from None
    return f"{result.local_part}@{result.ascii_domain}".lower()
