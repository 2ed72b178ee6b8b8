"""Bounce and complaint webhooks from the mail services, verified and recorded as `digest bounces` does.

Each service authenticates its calls its own way: Mailgun signs (HMAC-SHA256 of timestamp and
token with the webhook signing key), Amazon SNS signs with an RSA key whose certificate it serves
from an amazonaws.com URL, Postmark sends the Basic credentials written into the webhook's URL.
A call that fails its check changes nothing. Every event is recorded under the service's own
event id, so a replayed or retried call changes nothing either.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from dataclasses import dataclass

from digest import tokens
from digest.config import Config
from digest.errors import DigestError
from digest.store import Store, reports
from digest.store.reports import EventKind, Target

MAILGUN_KEY_ENV = "DIGEST_MAILGUN_WEBHOOK_KEY"
POSTMARK_AUTH_ENV = "DIGEST_POSTMARK_WEBHOOK_AUTH"  # "user:password", as written in the webhook URL
MAILGUN_MAX_AGE = 15 * 60  # seconds a Mailgun signature stays valid (its timestamp is signed)
SNS_TYPES = {"Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"}


class Unauthorized(DigestError):
    """The call is unsigned, wrongly signed, or stale: answer 401 and change nothing."""


@dataclass(frozen=True)
class Event:
    key: str  # the service's id for this event
    kind: EventKind
    address: str
    message_id: str | None = None  # our Message-ID, as the service reports it
    return_path: str | None = None  # the VERP envelope sender it reports
    detail: str = ""


def record(config: Config, store: Store, secret: str, source: str, events: list[Event]) -> int:
    """Record each event once, exactly as a bounce read from the mailbox; returns how many were new."""
    limits = reports.Thresholds(config.delivery.bounce_after, config.delivery.soft_bounce_after)
    new = 0
    for event in events:
        target = _target(store, secret, event)
        if target is not None:
            new += reports.record(store, event.key, event.kind, target, source, event.detail, limits)
    return new


def _target(store: Store, secret: str, event: Event) -> Target | None:
    delivery = tokens.read_return_path(secret, event.return_path) if event.return_path else None
    if delivery is not None and (found := reports.by_delivery(store, delivery)) is not None:
        return found
    if event.message_id:
        bare = event.message_id.strip().strip("<>")
        if (found := reports.by_message_id(store, f"<{bare}>")) is not None:
            return found
    return reports.by_address(store, event.address.strip().lower()) if event.address else None


# -- Postmark: Basic credentials in the webhook URL; bounce and spam complaint records --------------


def postmark_events(authorization: str | None, body: bytes) -> list[Event]:
    expected = os.environ.get(POSTMARK_AUTH_ENV)
    if not expected:
        raise Unauthorized(f"{POSTMARK_AUTH_ENV} is not set: Postmark webhooks are refused")
    given = authorization or ""
    wanted = "Basic " + base64.b64encode(expected.encode()).decode()
    if not hmac.compare_digest(given.encode(), wanted.encode()):
        raise Unauthorized("wrong or missing credentials")
    data = _json(body)
    record_type, kind_name = data.get("RecordType"), str(data.get("Type") or "")
    kind: EventKind | None
    if record_type == "SpamComplaint":
        kind = EventKind.COMPLAINT
    elif record_type == "Bounce" and kind_name in ("HardBounce", "BadEmailAddress", "ManuallyDeactivated"):
        kind = EventKind.HARD_BOUNCE
    elif record_type == "Bounce" and kind_name in ("SoftBounce", "Transient", "DnsError", "AutoResponder"):
        kind = EventKind.SOFT_BOUNCE if kind_name != "AutoResponder" else None
    else:
        kind = None
    if kind is None:
        return []
    metadata = data.get("Metadata") or {}
    return [
        Event(
            f"postmark:{record_type}:{data.get('ID')}",
            kind,
            str(data.get("Email") or ""),
            None,
            metadata.get("digest_return") if isinstance(metadata, dict) else None,
            f"postmark {kind_name}: {data.get('Description') or ''}"[:300],
        )
    ]


# -- Mailgun: HMAC-SHA256(signing key, timestamp + token) ------------------------------------------


def mailgun_events(body: bytes, now: float | None = None) -> list[Event]:
    key = os.environ.get(MAILGUN_KEY_ENV)
    if not key:
        raise Unauthorized(f"{MAILGUN_KEY_ENV} is not set: Mailgun webhooks are refused")
    data = _json(body)
    signature = data.get("signature") or {}
    timestamp, token, given = (str(signature.get(k) or "") for k in ("timestamp", "token", "signature"))
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not (timestamp.isdigit() and token and hmac.compare_digest(given.encode(), expected.encode())):
        raise Unauthorized("wrong or missing signature")
    if abs((now or time.time()) - int(timestamp)) > MAILGUN_MAX_AGE:
        raise Unauthorized("the signature's timestamp is too old (a replayed call?)")
    event = data.get("event-data") or {}
    name, severity = str(event.get("event") or ""), str(event.get("severity") or "")
    kinds = {"complained": EventKind.COMPLAINT, "unsubscribed": EventKind.UNSUBSCRIBE}
    kind = kinds.get(name) or (
        {"permanent": EventKind.HARD_BOUNCE, "temporary": EventKind.SOFT_BOUNCE}.get(severity)
        if name == "failed"
        else None
    )
    if kind is None:
        return []
    headers = (event.get("message") or {}).get("headers") or {}
    status = (event.get("delivery-status") or {}).get("description") or event.get("reason") or ""
    return [
        Event(
            f"mailgun:{event.get('id')}",
            kind,
            str(event.get("recipient") or ""),
            headers.get("message-id"),
            (event.get("user-variables") or {}).get("digest-return") or (event.get("envelope") or {}).get("sender"),
            f"mailgun {name} {severity or ''}: {status}"[:300],
        )
    ]


# -- Amazon SES through SNS: the certificate-based signature, subscription confirmation -------------


def sns_message(config: Config, body: bytes, fetch) -> dict:
    """The verified SNS message; Unauthorized unless its signature checks out against the certificate
    at its SigningCertURL (which must be one of SNS's own). `fetch(url) -> bytes` gets the certificate."""
    data = _json(body)
    settings = config.ses
    if data.get("Type") not in SNS_TYPES:
        raise Unauthorized("not an SNS message")
    if settings.topic_arns and data.get("TopicArn") not in settings.topic_arns:
        raise Unauthorized("from a topic not listed in [ses] topic_arns")
    cert_url = str(data.get("SigningCertURL") or data.get("SigningCertUrl") or "")
    if not re.match(settings.sns_certificate_url, cert_url):
        raise Unauthorized("the signing certificate is not one of Amazon SNS's")
    _verify_sns(data, _certificate(cert_url, fetch))
    return data


def _verify_sns(data: dict, certificate) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    fields = (
        ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
        if data["Type"] == "Notification"
        else ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
    )
    canonical = "".join(f"{f}\n{data[f]}\n" for f in fields if f in data and data[f] is not None)
    algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(str(data.get("SignatureVersion")))
    if algorithm is None:
        raise Unauthorized("unknown SNS SignatureVersion")
    try:
        signature = base64.b64decode(str(data.get("Signature") or ""), validate=True)
        certificate.public_key().verify(signature, canonical.encode(), padding.PKCS1v15(), algorithm)
    except (InvalidSignature, ValueError, TypeError):
        raise Unauthorized("the SNS signature does not match") from None


_CERTIFICATES: dict[str, object] = {}


def _certificate(url: str, fetch):
    from cryptography import x509

    if url not in _CERTIFICATES:
        try:
            _CERTIFICATES[url] = x509.load_pem_x509_certificate(fetch(url))
        except ValueError:
            raise Unauthorized("the signing certificate can't be read") from None
    return _CERTIFICATES[url]


def ses_events(message: dict) -> list[Event]:
    """Events from an SES notification (identity notifications or configuration set event publishing)."""
    try:
        ses = json.loads(message.get("Message") or "{}")
    except ValueError:
        return []
    kind_name = ses.get("notificationType") or ses.get("eventType")
    mail = ses.get("mail") or {}
    message_id = (mail.get("commonHeaders") or {}).get("messageId")
    source = mail.get("source")
    if kind_name == "Bounce":
        bounce = ses.get("bounce") or {}
        kind = EventKind.HARD_BOUNCE if bounce.get("bounceType") == "Permanent" else EventKind.SOFT_BOUNCE
        people, feedback = bounce.get("bouncedRecipients") or [], bounce.get("feedbackId")
        detail = f"ses {bounce.get('bounceType')}/{bounce.get('bounceSubType')}"
    elif kind_name == "Complaint":
        complaint = ses.get("complaint") or {}
        kind, people, feedback = (
            EventKind.COMPLAINT,
            complaint.get("complainedRecipients") or [],
            complaint.get("feedbackId"),
        )
        detail = f"ses complaint {complaint.get('complaintFeedbackType') or ''}"
    else:
        return []
    key = f"ses:{feedback or message.get('MessageId')}"
    return [
        Event(f"{key}:{n}", kind, str(p.get("emailAddress") or ""), message_id, source, detail.strip())
        for n, p in enumerate(people)
    ]


def _json(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except ValueError:
        raise Unauthorized("the body is not JSON") from None
    if not isinstance(data, dict):
        raise Unauthorized("the body is not a JSON object")
    return data
