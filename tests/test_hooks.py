"""Bounce and complaint webhooks: Postmark (Basic credentials), Mailgun (HMAC signature) and Amazon SES
through SNS (RSA signature checked against the certificate at SigningCertURL, here a test certificate
served by a local HTTP server; subscription confirmation). Valid, invalid and replayed calls; each
recorded exactly as `digest bounces` records a report.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from delivery_support import add_subscribers, digest
from sqlalchemy import select
from starlette.testclient import TestClient

from digest import tokens
from digest.config import load_config
from digest.store import open_store
from digest.store.schema import deliveries, mail_events, subscribers
from digest.web import create_app

SECRET = "test-secret"
BASE = "https://links.example.com"
MAILGUN_KEY = "key-mailgun-webhook-signing"
POSTMARK_AUTH = "hooks:s3cret-pass"
TOPIC = "arn:aws:sns:us-east-1:123456789012:digest-bounces"
VERP_DOMAIN = "bounces.links.example.com"


# -- a certificate authority of our own, and a server for SNS's certificate and confirmation URLs ----


class CertServer:
    """Serves the signing certificate (PEM) and records GETs of the subscription confirmation URL."""

    def __init__(self, pem: bytes):
        self.confirmed: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.startswith("/confirm"):
                    outer.confirmed.append(self.path)
                    body = b"<ConfirmSubscriptionResponse/>"
                else:
                    body = pem
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CertServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def test_certificate():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.us-east-1.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


test_certificate.__test__ = False  # (a helper, not a test)


def sns(key, cert_url: str, kind: str, version: str = "2", **fields) -> dict:
    """An SNS message signed as SNS signs it: the canonical 'Name\\nvalue\\n' string, SHA1 or SHA256."""
    data = {
        "Type": kind,
        "MessageId": fields.pop("MessageId", "b3c5f0e2-1111-2222-3333-444455556666"),
        "TopicArn": TOPIC,
        "Timestamp": "2025-03-03T10:00:00.000Z",
        "SignatureVersion": version,
        "SigningCertURL": f"{cert_url}SimpleNotificationService-test.pem",
        **fields,
    }
    names = (
        ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
        if kind == "Notification"
        else ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
    )
    canonical = "".join(f"{n}\n{data[n]}\n" for n in names if n in data)
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    data["Signature"] = base64.b64encode(key.sign(canonical.encode(), padding.PKCS1v15(), algorithm)).decode()
    return data


# -- a project that has sent February to three readers ----------------------------------------------


@pytest.fixture
def sent(make_project, monkeypatch):
    """On SQLite and on PostgreSQL (make_project)."""
    monkeypatch.setenv("DIGEST_SECRET_KEY", SECRET)
    monkeypatch.setenv("DIGEST_MAILGUN_WEBHOOK_KEY", MAILGUN_KEY)
    monkeypatch.setenv("DIGEST_POSTMARK_WEBHOOK_AUTH", POSTMARK_AUTH)
    key, pem = test_certificate()
    with CertServer(pem) as certs:
        ses = f'\n[ses]\ntopic_arns = ["{TOPIC}"]\nsns_certificate_url = "{certs.url}"\n'
        root = make_project(delivery=f'return_path_domain = "{VERP_DOMAIN}"', extra=ses)
        add_subscribers(root, 3)
        digest(root, "send", check=True)
        yield root, key, certs


def client(root: Path) -> TestClient:
    return TestClient(create_app(load_config(root / "digest.toml")), base_url=BASE)


def ledger(root: Path) -> dict[str, dict]:
    """address -> its delivery of February (id, Message-ID, VERP return path) and its subscriber state."""
    store = open_store(load_config(root / "digest.toml"))
    try:
        with store.read() as conn:
            rows = conn.execute(
                select(deliveries.c.id, deliveries.c.message_id, subscribers).join(
                    subscribers, subscribers.c.id == deliveries.c.subscriber_id
                )
            ).all()
        return {
            r.email: {
                "delivery": r.id,
                "message_id": r.message_id,
                "verp": tokens.return_path(SECRET, r.id, VERP_DOMAIN),
                "state": (r.status, r.hard_bounces, r.soft_bounces, r.complaints),
            }
            for r in rows
        }
    finally:
        store.close()


def events(root: Path) -> list[tuple]:
    store = open_store(load_config(root / "digest.toml"))
    try:
        with store.read() as conn:
            query = select(mail_events.c.kind, mail_events.c.source, mail_events.c.delivery_id, mail_events.c.issue_id)
            return [tuple(r) for r in conn.execute(query.order_by(mail_events.c.id))]
    finally:
        store.close()


def states(root: Path) -> dict[str, tuple]:
    return {address: row["state"] for address, row in ledger(root).items()}


# -- Mailgun ---------------------------------------------------------------------------------------


def mailgun_body(event: dict, key: str = MAILGUN_KEY, timestamp: int | None = None, token: str = "a" * 50) -> bytes:
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {"signature": {"timestamp": stamp, "token": token, "signature": signature}, "event-data": event}
    ).encode()


def mailgun_failed(row: dict, address: str, severity: str = "permanent", event_id: str = "ev-1") -> dict:
    return {
        "id": event_id,
        "event": "failed",
        "severity": severity,
        "recipient": address,
        "envelope": {"sender": row["verp"]},
        "message": {"headers": {"message-id": row["message_id"].strip("<>")}},
        "delivery-status": {"code": 550, "description": "5.1.1 mailbox does not exist"},
    }


def test_mailgun_signed_events_are_recorded_once_and_bad_signatures_change_nothing(sent):
    root, _, _ = sent
    rows = ledger(root)
    before = states(root)
    body = mailgun_body(mailgun_failed(rows["reader0@example.com"], "reader0@example.com"))
    with client(root) as http:
        for bad in (
            json.dumps({"event-data": json.loads(body)["event-data"]}).encode(),  # unsigned
            mailgun_body(json.loads(body)["event-data"], key="not-the-key"),  # wrongly signed
            mailgun_body(json.loads(body)["event-data"], timestamp=int(time.time()) - 3600),  # stale: a replay
        ):
            assert http.post("/hooks/mailgun", content=bad).status_code == 401
        assert states(root) == before and events(root) == []

        first = http.post("/hooks/mailgun", content=body)
        replay = http.post("/hooks/mailgun", content=body)
        complaint = {"id": "ev-2", "event": "complained", "recipient": "reader1@example.com"}
        complained = http.post("/hooks/mailgun", content=mailgun_body(complaint, token="b" * 50))
    assert first.json() == {"recorded": 1, "events": 1} and replay.json() == {"recorded": 0, "events": 1}
    assert complained.status_code == 200
    after = states(root)
    assert after["reader0@example.com"] == ("bounced", 1, 0, 0)
    assert after["reader1@example.com"] == ("unsubscribed", 0, 0, 1)
    assert after["reader2@example.com"] == before["reader2@example.com"]
    issue_id = events(root)[0][3]
    assert events(root) == [
        ("hard_bounce", "mailgun", rows["reader0@example.com"]["delivery"], issue_id),
        ("complaint", "mailgun", None, issue_id),  # found by address: the last issue sent to them
    ]


def test_a_temporary_mailgun_failure_is_a_soft_bounce(sent):
    root, _, _ = sent
    row = ledger(root)["reader2@example.com"]
    with client(root) as http:
        event = mailgun_failed(row, "reader2@example.com", severity="temporary", event_id="ev-9")
        assert http.post("/hooks/mailgun", content=mailgun_body(event)).status_code == 200
    assert states(root)["reader2@example.com"] == ("active", 0, 1, 0)


# -- Postmark --------------------------------------------------------------------------------------


def postmark_auth(credentials: str = POSTMARK_AUTH) -> dict:
    return {"authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def test_postmark_bounces_and_complaints_with_the_webhook_credentials(sent):
    root, _, _ = sent
    rows = ledger(root)
    bounce = {
        "RecordType": "Bounce",
        "ID": 4323372036,
        "Type": "HardBounce",
        "TypeCode": 1,
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",  # Postmark's own id
        "Email": "reader0@example.com",
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Metadata": {"digest_return": rows["reader0@example.com"]["verp"]},
        "MessageStream": "broadcast",
    }
    complaint = {"RecordType": "SpamComplaint", "ID": 42, "Type": "SpamComplaint", "Email": "reader1@example.com"}
    before = states(root)
    with client(root) as http:
        assert http.post("/hooks/postmark", json=bounce).status_code == 401  # no credentials
        assert http.post("/hooks/postmark", json=bounce, headers=postmark_auth("hooks:wrong")).status_code == 401
        assert states(root) == before
        assert http.post("/hooks/postmark", json=bounce, headers=postmark_auth()).json()["recorded"] == 1
        assert http.post("/hooks/postmark", json=bounce, headers=postmark_auth()).json()["recorded"] == 0
        assert http.post("/hooks/postmark", json=complaint, headers=postmark_auth()).json()["recorded"] == 1
    after = states(root)
    assert after["reader0@example.com"] == ("bounced", 1, 0, 0)
    assert after["reader1@example.com"] == ("unsubscribed", 0, 0, 1)
    assert events(root)[0][:3] == ("hard_bounce", "postmark", rows["reader0@example.com"]["delivery"])


# -- Amazon SES through SNS ------------------------------------------------------------------------


def ses_bounce(row: dict, address: str, feedback: str = "0100018f-fb") -> str:
    return json.dumps(
        {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": "Permanent",
                "bounceSubType": "General",
                "bouncedRecipients": [{"emailAddress": address, "status": "5.1.1", "action": "failed"}],
                "feedbackId": feedback,
            },
            "mail": {
                "messageId": "0100018f-ses-id",
                "source": row["verp"],
                "commonHeaders": {"messageId": row["message_id"]},
            },
        }
    )


def test_ses_notifications_are_verified_against_the_certificate(sent):
    root, key, certs = sent
    rows = ledger(root)
    bounce = sns(key, certs.url, "Notification", Message=ses_bounce(rows["reader0@example.com"], "reader0@example.com"))
    complaint_message = json.dumps(
        {
            "notificationType": "Complaint",
            "complaint": {
                "complainedRecipients": [{"emailAddress": "reader1@example.com"}],
                "feedbackId": "c-1",
                "complaintFeedbackType": "abuse",
            },
            "mail": {"source": rows["reader1@example.com"]["verp"], "commonHeaders": {}},
        }
    )
    complaint = sns(key, certs.url, "Notification", version="1", MessageId="m-2", Message=complaint_message)
    tampered = {**bounce, "Message": bounce["Message"].replace("reader0@", "reader2@")}
    other_key, _ = test_certificate()
    forged = sns(other_key, certs.url, "Notification", Message=bounce["Message"])
    elsewhere = {**bounce, "SigningCertURL": "https://evil.example.com/cert.pem"}
    other_topic = sns(key, certs.url, "Notification", TopicArn="arn:aws:sns:us-east-1:999:x", Message="{}")
    before = states(root)
    with client(root) as http:
        for bad in (tampered, forged, elsewhere, other_topic, {"Type": "Notification"}):
            assert http.post("/hooks/ses", json=bad).status_code == 401
        assert states(root) == before and events(root) == []
        assert http.post("/hooks/ses", json=bounce).json() == {"recorded": 1, "events": 1}
        assert http.post("/hooks/ses", json=bounce).json() == {"recorded": 0, "events": 1}  # SNS retries
        assert http.post("/hooks/ses", json=complaint).json() == {"recorded": 1, "events": 1}
    after = states(root)
    assert after["reader0@example.com"] == ("bounced", 1, 0, 0)
    assert after["reader1@example.com"] == ("unsubscribed", 0, 0, 1)
    assert after["reader2@example.com"] == before["reader2@example.com"]
    assert [e[:3] for e in events(root)] == [
        ("hard_bounce", "ses", rows["reader0@example.com"]["delivery"]),
        ("complaint", "ses", rows["reader1@example.com"]["delivery"]),
    ]


def test_ses_subscription_confirmation_is_followed_only_when_signed(sent):
    root, key, certs = sent
    confirm = sns(
        key,
        certs.url,
        "SubscriptionConfirmation",
        Message="You have chosen to subscribe to the topic.",
        Token="2336412f37fb687f5d51e6e2425c464de12884",
        SubscribeURL=f"{certs.url}confirm?Action=ConfirmSubscription&Token=2336412f",
    )
    with client(root) as http:
        forged = {**confirm, "Token": "other"}
        assert http.post("/hooks/ses", json=forged).status_code == 401
        assert certs.confirmed == []
        answer = http.post("/hooks/ses", json=confirm)
    assert answer.status_code == 200 and answer.json() == {"confirmed": TOPIC}
    assert certs.confirmed == ["/confirm?Action=ConfirmSubscription&Token=2336412f"]


def test_a_large_ses_notification_fits_and_an_oversized_call_gets_413(sent):
    root, key, certs = sent
    rows = ledger(root)
    message = json.loads(ses_bounce(rows["reader2@example.com"], "reader2@example.com", feedback="big"))
    # SES includes the bounced message's headers: a long Received chain is tens of kilobytes
    message["mail"]["headers"] = [
        {"name": "Received", "value": f"from relay{n}.example.net " + "x" * 400} for n in range(150)
    ]
    big = sns(key, certs.url, "Notification", MessageId="m-big", Message=json.dumps(message))
    assert len(json.dumps(big)) > 16_384  # over [web] max_body_bytes, under max_hook_bytes
    with client(root) as http:
        assert http.post("/hooks/ses", json=big).json() == {"recorded": 1, "events": 1}
        huge = http.post(
            "/hooks/ses", content=b"{" + b" " * 1_100_000 + b"}", headers={"content-type": "application/json"}
        )
        assert huge.status_code == 413
    assert states(root)["reader2@example.com"] == ("bounced", 1, 0, 0)
