"""The HTTP mail adapters (Postmark, Mailgun) against local servers that implement each service's
documented contract: endpoints, authentication, request and response shapes, per-recipient errors,
429 with Retry-After, 500. The CLI runs unchanged as a subprocess; a SIGKILL in the middle of a
Postmark batch send is rerun and counted at the server.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from delivery_support import add_subscribers, digest, start_digest, write_project
from http_services import Behaviour, Services

from digest import tokens
from digest.config import load_config
from digest.store import deliveries as ledger
from digest.store import open_store
from digest.store import subscribers as subs

SECRET = "test-secret"
ENV = {"DIGEST_POSTMARK_TOKEN": "pm-token", "DIGEST_MAILGUN_API_KEY": "mg-key"}


@pytest.fixture
def services():
    server = Services(Behaviour()).start()
    yield server
    server.stop()


def with_adapter(root: Path, adapter: str) -> Path:
    toml = root / "digest.toml"
    toml.write_text(toml.read_text().replace('adapter = "outbox"', f'adapter = "{adapter}"', 1))
    return root


def postmark_project(tmp_path: Path, services: Services, delivery: str = "") -> Path:
    extra = f'\n[postmark]\nbase_url = "{services.url}"\n'
    return with_adapter(write_project(tmp_path / "p", delivery=delivery, extra=extra), "postmark")


def mailgun_project(tmp_path: Path, services: Services, delivery: str = "") -> Path:
    extra = f'\n[mailgun]\ndomain = "mg.links.example.com"\nregion = "eu"\nbase_url = "{services.url}"\n'
    return with_adapter(write_project(tmp_path / "p", delivery=delivery, extra=extra), "mailgun")


def rows(root: Path) -> dict[str, tuple[str, int, str | None]]:
    """address -> (delivery status, attempts, last error) for February."""
    store = open_store(load_config(root / "digest.toml"))
    try:
        issue = ledger.get_issue(store, "2025-02")
        with store.read() as conn:
            from sqlalchemy import select

            from digest.store.schema import deliveries, subscribers

            query = select(subscribers.c.email, deliveries.c.status, deliveries.c.attempts, deliveries.c.last_error)
            query = query.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            found = conn.execute(query.where(deliveries.c.issue_id == issue.id)).all()
        return {r.email: (r.status, r.attempts, r.last_error) for r in found}
    finally:
        store.close()


def subscriber_status(root: Path, address: str) -> str:
    store = open_store(load_config(root / "digest.toml"))
    try:
        return str(subs.get(store, address).status)
    finally:
        store.close()


# -- Postmark ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_postmark_sends_500_a_call_with_our_message_ids_and_headers(tmp_path, services):
    root = postmark_project(tmp_path, services, "batch_size = 1000")
    addresses = add_subscribers(root, 1003)
    result = digest(root, "send", env=ENV, check=True)
    assert "2025-02: sent 1003, retried 0, failed 0" in result.stdout
    assert [len(c.messages) for c in services.calls] == [500, 500, 3]
    assert Counter(m["address"] for m in services.accepted) == Counter(addresses)
    first = services.accepted[0]
    headers = {h["Name"]: h["Value"] for h in first["Headers"]}
    assert headers["Message-ID"] == tokens.message_id(SECRET, "2025-02", first["address"], "links.example.com")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["List-Unsubscribe"].startswith("<https://links.example.com/unsubscribe/")
    assert headers["List-Id"] == "Link Archive <digest.links.example.com>"
    assert first["MessageStream"] == "broadcast" and first["From"] == "Link Archive <digest@links.example.com>"
    assert first["Subject"] == "Link Archive: February 2025"
    unsubscribe = headers["List-Unsubscribe"].split(">")[0].lstrip("<")
    assert unsubscribe in first["TextBody"] and unsubscribe in first["HtmlBody"]  # personalised, decoded


@pytest.mark.slow
def test_postmark_per_recipient_errors_are_rejections_and_inactive_counts_as_a_bounce(tmp_path, services):
    services.behaviour.inactive = {"reader1@example.com"}
    services.behaviour.invalid = {"reader2@example.com"}
    root = postmark_project(tmp_path, services)
    add_subscribers(root, 4)
    result = digest(root, "send", env=ENV)
    assert result.returncode == 1 and "sent 2, retried 0, failed 2" in result.stdout
    state = rows(root)
    assert state["reader0@example.com"][0] == "sent" and state["reader3@example.com"][0] == "sent"
    assert state["reader1@example.com"][0] == "failed" and "postmark error 406" in state["reader1@example.com"][2]
    assert state["reader2@example.com"][0] == "failed" and "postmark error 300" in state["reader2@example.com"][2]
    assert subscriber_status(root, "reader1@example.com") == "bounced"  # inactive: a hard bounce
    assert subscriber_status(root, "reader2@example.com") == "active"  # a malformed address: not a bounce


@pytest.mark.slow
def test_postmark_429_and_500_are_retried_no_sooner_than_retry_after(tmp_path, services):
    services.behaviour.once = [(429, 1), (500, None)]
    root = postmark_project(tmp_path, services)
    addresses = add_subscribers(root, 3)
    result = digest(root, "send", env=ENV, check=True)
    assert "sent 3, retried 6, failed 0" in result.stdout
    statuses = [c.status for c in services.calls]
    assert statuses[:2] == [429, 500] and set(statuses[2:]) == {200}  # (each row's backoff has its own jitter)
    assert services.calls[1].at - services.calls[0].at >= 1.0  # Retry-After: 1 was honoured
    assert sorted(m["address"] for m in services.accepted) == addresses
    assert {attempts for _, attempts, _ in rows(root).values()} == {3}


@pytest.mark.slow
def test_postmark_without_a_token_or_with_a_wrong_one_stops_with_a_message(tmp_path, services):
    root = postmark_project(tmp_path, services)
    add_subscribers(root, 2)
    missing = digest(root, "send", env={"DIGEST_POSTMARK_TOKEN": ""})
    assert missing.returncode == 1 and "the postmark adapter needs DIGEST_POSTMARK_TOKEN" in missing.stderr
    wrong = digest(root, "send", env={"DIGEST_POSTMARK_TOKEN": "nope"})
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert "postmark refused the credentials: HTTP 401" in wrong.stderr
    assert services.accepted == [] and {s for s, _, _ in rows(root).values()} == {"queued"}
    right = digest(root, "send", env=ENV, check=True)
    assert "sent 2, retried 0, failed 0" in right.stdout and "resent" not in right.stdout  # nothing had gone out


@pytest.mark.slow
def test_a_sigkill_in_the_middle_of_a_postmark_batch_resends_that_batch_only(tmp_path, services, monkeypatch):
    monkeypatch.setenv("DIGEST_POSTMARK_TOKEN", "pm-token")  # start_digest passes the test's environment on
    services.behaviour.hold_call = 2  # the second call is accepted, and the sender killed before it hears so
    root = postmark_project(tmp_path, services, "batch_size = 50")
    addresses = add_subscribers(root, 120)
    process = start_digest(root, "send")
    assert services.held.wait(120), process.communicate(timeout=5)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(30)
    process.stdout.close()
    process.stderr.close()
    services.release.set()

    rerun = digest(root, "send", env=ENV, check=True)

    counts = Counter(m["address"] for m in services.accepted)
    twice = sorted(a for a, n in counts.items() if n == 2)
    assert set(counts) == set(addresses) and set(counts.values()) <= {1, 2}
    assert len(twice) == 50  # exactly the batch in flight, no more
    assert twice == sorted(m["To"].rsplit("<", 1)[-1].rstrip(">") for m in services.calls[1].messages)
    ids = {}
    for message in services.accepted:  # the resend carries the same Message-IDs
        mid = {h["Name"]: h["Value"] for h in message["Headers"]}["Message-ID"]
        assert ids.setdefault(message["address"], mid) == mid
    assert "resent 50 whose outcome was unknown after a crash" in rerun.stdout
    assert {s for s, _, _ in rows(root).values()} == {"sent"}


# -- Mailgun ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_mailgun_sends_the_composed_mime_as_it_is(tmp_path, services):
    root = mailgun_project(tmp_path, services)
    addresses = add_subscribers(root, 3)
    digest(root, "send", env=ENV, check=True)
    assert sorted(m["address"] for m in services.accepted) == addresses
    message = message_from_bytes(services.accepted[0]["raw"], policy=policy.default)
    assert message["Message-ID"] == tokens.message_id(
        SECRET, "2025-02", services.accepted[0]["address"], "links.example.com"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


@pytest.mark.slow
def test_mailgun_answers_map_onto_outcomes(tmp_path, services):
    services.behaviour.invalid = {"reader1@example.com"}
    services.behaviour.once = [(429, 1)]
    root = mailgun_project(tmp_path, services)
    add_subscribers(root, 3)
    result = digest(root, "send", env=ENV)
    assert result.returncode == 1 and "sent 2, retried 1, failed 1" in result.stdout
    state = rows(root)
    assert state["reader1@example.com"][0] == "failed" and "HTTP 400" in state["reader1@example.com"][2]
    assert subscriber_status(root, "reader1@example.com") == "active"
    wrong = digest(root, "send", "--retry-failed", env={"DIGEST_MAILGUN_API_KEY": "wrong"})
    assert wrong.returncode == 1 and "mailgun refused the credentials: HTTP 401" in wrong.stderr


# -- Amazon SES (API v2 SendEmail, raw, through boto3) ----------------------------------------------

AWS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLETEST", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": ""}


def ses_project(tmp_path: Path, services: Services) -> Path:
    extra = f'\n[ses]\nregion = "eu-west-1"\nendpoint_url = "{services.url}"\nconfiguration_set = "digest"\n'
    delivery = 'return_path_domain = "bounces.links.example.com"'
    return with_adapter(write_project(tmp_path / "p", delivery=delivery, extra=extra), "ses")


@pytest.mark.slow
def test_ses_sends_the_raw_message_with_our_return_path_and_message_id(tmp_path, services):
    root = ses_project(tmp_path, services)
    addresses = add_subscribers(root, 3)
    digest(root, "send", env=AWS, check=True)
    assert sorted(m["address"] for m in services.accepted) == addresses
    first = services.accepted[0]
    assert first["from"].startswith("bounces+") and tokens.read_return_path(SECRET, first["from"]) is not None
    assert first["Message-ID"] == tokens.message_id(SECRET, "2025-02", first["address"], "links.example.com")
    assert services.calls[0].messages[0]["ConfigurationSetName"] == "digest"


@pytest.mark.slow
def test_ses_answers_map_onto_outcomes(tmp_path, services):
    services.behaviour.invalid = {"reader1@example.com"}
    services.behaviour.once = [(429, 1), (500, None)]
    root = ses_project(tmp_path, services)
    add_subscribers(root, 3)
    result = digest(root, "send", env=AWS)
    assert result.returncode == 1 and "sent 2, failed 1" in result.stdout.replace("retried 2, ", "")
    state = rows(root)
    assert state["reader1@example.com"][0] == "failed" and "MessageRejected" in state["reader1@example.com"][2]
    assert subscriber_status(root, "reader1@example.com") == "active"
    wrong = digest(root, "send", "--retry-failed", env={**AWS, "AWS_ACCESS_KEY_ID": "AKIDWRONG"})
    assert wrong.returncode == 1 and "ses UnrecognizedClientException" in wrong.stderr
    assert "Traceback" not in wrong.stderr


VERP = 'return_path_domain = "bounces.links.example.com"'


@pytest.mark.slow
def test_the_services_carry_the_verp_token_their_webhooks_hand_back(tmp_path, services):
    """Postmark and Mailgun choose their own envelope sender: the token rides in Metadata / a user variable."""
    postmark = postmark_project(tmp_path / "pm", services, VERP)
    mailgun = mailgun_project(tmp_path / "mg", services, VERP)
    for root in (postmark, mailgun):
        add_subscribers(root, 1)
        digest(root, "send", env=ENV, check=True)
    pm, mg = services.accepted
    for token in (pm["Metadata"]["digest_return"], mg["variables"]["digest-return"]):
        assert token.startswith("bounces+") and tokens.read_return_path(SECRET, token) is not None
