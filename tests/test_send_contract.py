"""The send loop's contract: the commit gate an adapter passes before a message becomes irrevocable,
and the retry policy that alone decides what a result means for its delivery."""

from __future__ import annotations

from pathlib import Path

import pytest
from delivery_support import write_project
from smtp_sink import SmtpServer

from digest.config import load_config
from digest.delivery.base import NO_WAIT, CommitGate, OutgoingMessage, SendResult, SendStatus
from digest.delivery.dispatch import RetryPolicy
from digest.delivery.smtp import SmtpAdapter
from digest.errors import LeaseLost
from digest.store import DeliveryStatus
from digest.store.deliveries import Claim

RAW = (
    "From: Link Archive <digest@links.example.com>\r\nTo: Zoë Ünï <zoe@example.com>\r\n"
    "Subject: =?utf-8?q?Links_=E2=80=94_=E8=AA=AD=E8=80=85_=D9=82=D8=A7=D8=B1=D8=A6_=F0=9F=93=AC?=\r\n"
    "Message-ID: <2025-02.abc@links.example.com>\r\n\r\n.a line that starts with a dot\r\nthe end\r\n"
).encode()


def message(recipient: str = "zoe@example.com") -> OutgoingMessage:
    return OutgoingMessage(recipient, "digest@links.example.com", "<2025-02.abc@links.example.com>", RAW)


class Gate(CommitGate):
    """A gate that says what it was asked, and whether the message may complete."""

    def __init__(self, is_ready: bool, refuse: BaseException | None = None):
        self.is_ready, self.refuse = is_ready, refuse
        self.calls: list[str] = []

    def ready(self) -> bool:
        self.calls.append("ready")
        return self.is_ready

    def commit(self) -> None:
        self.calls.append("commit")
        if self.refuse is not None:
            raise self.refuse


@pytest.fixture
def adapter(tmp_path: Path, smtp_server: SmtpServer):
    config = load_config(write_project(tmp_path / "site", smtp_port=smtp_server.port) / "digest.toml")
    with SmtpAdapter(config) as smtp:
        yield smtp


@pytest.mark.parametrize("ready", [True, False])  # body and '.' in one write, or the body first
def test_the_gate_is_passed_once_right_before_the_message_completes(adapter, smtp_server, ready):
    gate = Gate(ready)
    result = adapter.send(message(), gate)
    assert result.status == SendStatus.SENT
    assert gate.calls == ["ready", "commit"]
    smtp_server.recorder.wait_for(1)
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["zoe@example.com"]
    assert received.content.replace(b"\r\n", b"\n").endswith(b".a line that starts with a dot\nthe end\n")


def test_a_gate_that_refuses_leaves_the_message_uncompleted_and_says_why(adapter, smtp_server):
    refusal = LeaseLost("worker 7: its lease ran out; stopping before completing another message")
    with pytest.raises(LeaseLost, match="worker 7: its lease ran out"):
        adapter.send(message(), Gate(False, refusal))
    assert smtp_server.messages == []  # the connection was closed before the final '.'
    assert adapter.send(message("second@example.com"), NO_WAIT).status == SendStatus.SENT  # reconnects
    smtp_server.recorder.wait_for(1)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["second@example.com"]]


def claim(attempts: int) -> Claim:
    return Claim(
        id=5, subscriber_id=9, email="zoë@例え.jp", name="Zoë — 读者", attempts=attempts, unknown_outcome=False
    )


def result(status: SendStatus, detail: str = "", bounce: bool = False, retry_after: float | None = None) -> SendResult:
    return SendResult("<2025-02.abc@links.example.com>", status, detail, bounce, retry_after)


def test_the_retry_policy_alone_decides_sent_later_or_failed():
    policy = RetryPolicy(max_attempts=3, backoff=10.0)
    sent = policy.outcome(claim(0), result(SendStatus.SENT))
    assert (sent.status, sent.message_id, sent.detail) == (DeliveryStatus.SENT, "<2025-02.abc@links.example.com>", "")
    first = policy.outcome(claim(0), result(SendStatus.DEFERRED, "451 4.7.1 try later"))
    assert first.status == DeliveryStatus.QUEUED and 8.0 <= first.retry_in <= 12.0  # backoff, ±20 % jitter
    assert first.detail == "451 4.7.1 try later"
    second = policy.outcome(claim(1), result(SendStatus.DEFERRED, "451 4.7.1 try later"))
    assert 16.0 <= second.retry_in <= 24.0  # doubled
    asked = policy.outcome(claim(0), result(SendStatus.DEFERRED, "HTTP 429", retry_after=300.0))
    assert asked.retry_in == 300.0  # never sooner than the service asked
    last = policy.outcome(claim(2), result(SendStatus.DEFERRED, "451 4.7.1 try later"))
    assert (last.status, last.detail, last.bounce) == (
        DeliveryStatus.FAILED, "gave up after 3 attempts: 451 4.7.1 try later", False
    )  # fmt: skip
    bounced = policy.outcome(claim(0), result(SendStatus.REJECTED, "550 5.1.1 no such user", bounce=True))
    assert (bounced.status, bounced.detail, bounced.bounce) == (DeliveryStatus.FAILED, "550 5.1.1 no such user", True)
    refused = policy.outcome(claim(0), result(SendStatus.REJECTED, "554 5.7.1 spam"))
    assert (refused.status, refused.bounce) == (DeliveryStatus.FAILED, False)
