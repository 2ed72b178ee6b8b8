"""Signed tokens for unsubscribe and confirmation links, and the secret that signs them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from digest.config import Config
from digest.errors import DigestError
from digest.files import write_atomic

CONFIRM_MAX_AGE = 7 * 24 * 3600  # a confirmation link works for a week
TIMED = {"confirm"}  # purposes whose tokens carry a timestamp and expire; unsubscribe links never do
SECRET_ENV = "DIGEST_SECRET_KEY"


class TokenError(DigestError):
    """A token that was tampered with, belongs to another purpose, or has expired."""

    def __init__(self, message: str, expired: bool = False):
        self.expired = expired
        super().__init__(message)


@dataclass(frozen=True)
class TokenSubject:
    """Who a token speaks for: the address, and the subscriber row when there is one."""

    address: str
    subscriber_id: int | None = None
    issued_at: datetime | None = field(default=None, compare=False)  # timed tokens only (UTC, whole seconds)


def secret_key(config: Config) -> str:
    """DIGEST_SECRET_KEY, or a random key kept in var/secret.key (created on first use, mode 0600)."""
    value = os.environ.get(SECRET_ENV)
    if value:
        return value
    path = config.var_dir / "secret.key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        write_atomic(path, secrets.token_urlsafe(32), mode=0o600)
        return path.read_text().strip()


@lru_cache(maxsize=16)
def _signer(secret: str, purpose: str, timed: bool):
    """One itsdangerous signer per purpose: a token for one purpose never passes for another."""
    from itsdangerous import Signer, TimestampSigner

    return (TimestampSigner if timed else Signer)(secret, salt=f"digest.{purpose}")


def make_token(secret: str, purpose: str, subject: TokenSubject) -> str:
    """`<payload>.<signature>` (plus a timestamp for confirmations); the payload names the subscriber."""
    subscriber = "" if subject.subscriber_id is None else subject.subscriber_id  # (0 is an id too)
    payload = base64.urlsafe_b64encode(f"{subscriber}:{subject.address.lower()}".encode()).rstrip(b"=")
    return _signer(secret, purpose, purpose in TIMED).sign(payload).decode("ascii")


def read_token(secret: str, purpose: str, token: str, max_age: int | None = None) -> TokenSubject:
    """The subject of a valid token; TokenError (never a traceback) for anything else."""
    from itsdangerous import BadSignature, SignatureExpired
    from itsdangerous.encoding import base64_decode, base64_encode

    if len(token) > 512 or not token.isascii():
        raise TokenError("this link is not valid: it is too long or has stray characters")
    signer = _signer(secret, purpose, purpose in TIMED)
    try:
        if purpose in TIMED:
            payload, issued_at = signer.unsign(token, max_age=max_age, return_timestamp=True)
        else:
            payload, issued_at = signer.unsign(token), None
        signature = token.rpartition(".")[2].encode()
        if base64_encode(base64_decode(signature)) != signature:  # one token, one spelling: the last
            raise BadSignature("non-canonical signature")  # character may carry bits base64 ignores
        subscriber, _, address = base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)).decode().partition(":")
    except SignatureExpired:
        raise TokenError("this link has expired", expired=True) from None
    except (BadSignature, ValueError, UnicodeDecodeError):
        raise TokenError("this link is not valid: it may have been cut short or altered") from None
    if "@" not in address or not (subscriber == "" or subscriber.isdigit()):
        raise TokenError("this link is not valid")
    return TokenSubject(address, int(subscriber) if subscriber else None, issued_at)


def unsubscribe_url(config: Config, secret: str, subject: TokenSubject) -> str:
    return f"{config.site.base_url}unsubscribe/{make_token(secret, 'unsubscribe', subject)}"


def longest_unsubscribe_url(config: Config) -> int:
    """The length of the longest unsubscribe URL any subscriber can have: a 10-digit id and an
    address of 254 characters, its local part 64 non-ASCII ones (4 bytes each in UTF-8)."""
    payload = len(f"{10**10}:".encode()) + 64 * 4 + 1 + 189
    token = -(-payload * 4 // 3) + 1 + 27  # unpadded base64, '.', the signature
    return len(f"{config.site.base_url}unsubscribe/") + token


def confirm_url(config: Config, secret: str, subject: TokenSubject) -> str:
    return f"{config.site.base_url}confirm/{make_token(secret, 'confirm', subject)}"


def message_id(secret: str, issue_key: str, address: str, domain: str) -> str:
    """The same Message-ID for the same (issue, address) on every attempt, without exposing the address."""
    digest = hmac.new(secret.encode(), f"{issue_key}|{address.lower()}".encode(), hashlib.sha256)
    return f"<{issue_key}.{digest.hexdigest()[:24]}@{domain}>"


def return_path(secret: str, delivery_id: int, domain: str) -> str:
    """VERP envelope sender `bounces+<id>.<mac>@domain`: a bounce names its delivery even when the DSN is
    mangled. Lower-case hex, since relays may fold a local part's case; 64 bits of HMAC, and 64 octets
    at most (RFC 5321's local-part limit) for any id below 10**30."""
    return f"bounces+{delivery_id}.{_return_mac(secret, delivery_id)}@{domain}"


def read_return_path(secret: str, address: str) -> int | None:
    """The delivery id a VERP address names, or None if it isn't one of ours (or was altered)."""
    match = re.fullmatch(r"bounces\+(\d{1,30})\.([0-9a-f]{16})@[^@\s]+", address.strip().strip("<>").lower())
    if match is None:
        return None
    delivery_id = int(match.group(1))
    return delivery_id if hmac.compare_digest(match.group(2), _return_mac(secret, delivery_id)) else None


def _return_mac(secret: str, delivery_id: int) -> str:
    return hmac.new(secret.encode(), f"digest.return|{delivery_id}".encode(), hashlib.sha256).hexdigest()[:16]


def sender_domain(config: Config) -> str:
    return config.sender.address.rsplit("@", 1)[1].lower()


__all__ = [
    "TokenError",
    "TokenSubject",
    "secret_key",
    "make_token",
    "read_token",
    "unsubscribe_url",
    "confirm_url",
    "message_id",
    "return_path",
    "read_return_path",
]
