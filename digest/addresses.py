"""One rule for every email address the project takes: subscribers, `--to`, the preview list, config.

Syntax only (no DNS), by email-validator. The domain is kept in its ASCII (IDNA) form, which
every SMTP server accepts; a non-ASCII local part is kept as written and needs SMTPUTF8.
"""

from __future__ import annotations

import re

from digest.errors import DigestError


class InvalidAddress(DigestError):
    """An address that fails validation; the message says why."""


# Explicit ASCII classes on purpose: \w and \d would also match non-ASCII letters and digits.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"  # RFC 5322 atext, as email_validator.rfc_constants.ATEXT
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_ADDRESS = re.compile(rf"({_ATEXT}+(?:\.{_ATEXT}+)*)@((?:{_LABEL}\.)+([A-Za-z]{{2,63}}))")
_REFUSED_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})  # SPECIAL_USE_DOMAIN_NAMES


def _plainly_valid(given: str) -> bool:
    """True only for a plain ASCII address that email-validator certainly accepts as `given.lower()`.

    Why: importing email_validator compiles its regexes (~17 ms a process), and every `digest
    build` paid that only to check the config's sender. This fast path may only accept; anything
    it is unsure of (quotes, display names, non-ASCII, IP literals, Punycode, odd TLDs, long local
    parts) goes to email-validator, which gives the verdict and the message. Accepted: a dot-atom
    local part of at most 64 characters (email-validator checks 64 only when strict); LDH labels
    of 1-63 not starting or ending with "-"; a dot; a letters-only TLD (email-validator wants a
    final letter) that is not a special-use name it refuses by default ("test" included); no "--"
    (so no "xn--" Punycode, no R-LDH "ab--" label); at most 254 characters in all.
    """
    if len(given) > 254:
        return False
    match = _PLAIN_ADDRESS.fullmatch(given)
    return match is not None and len(match[1]) <= 64 and "--" not in match[2] and match[3].lower() not in _REFUSED_TLDS


def normalise(address: str) -> str:
    """The canonical form of `address`: one row per mailbox, whatever the capitals."""
    given = address.strip()
    if _plainly_valid(given):
        return given.lower()

    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(given, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"{given!r} is not a valid email address: {exc}") from None
    except Exception as exc:  # the IDNA codec on an absurd label  # noqa: BLE001
        raise InvalidAddress(f"{given!r} is not a valid email address: {exc}") from None
    return f"{result.local_part}@{result.ascii_domain}".lower()
