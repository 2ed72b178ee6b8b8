"""Postmark: the batch endpoint, up to 500 messages a call (https://postmarkapp.com/developer/api/email-api).

Each message's result comes back in order: ErrorCode 0 is sent; 406 (the address is marked inactive
after a hard bounce or a spam complaint) a rejection that counts as a bounce; other codes a rejection
of the message. A 429 or 5xx for the whole call defers every message in it, with Retry-After.
"""

from __future__ import annotations

from digest.config import Config
from digest.delivery import http
from digest.delivery.base import (
    CommitGate,
    Deferred,
    DeliveryError,
    OutgoingMessage,
    Rejected,
    SendResult,
    SendStatus,
)

TOKEN_ENV = "DIGEST_POSTMARK_TOKEN"
BATCH_LIMIT = 500  # Postmark's limit per /email/batch call
INACTIVE = 406  # "You tried to send to a recipient that has been marked as inactive."


class PostmarkAdapter(http.HttpAdapter):
    name = "postmark"
    key_env = TOKEN_ENV
    batch_limit = BATCH_LIMIT

    def __init__(self, config: Config):
        self.settings = config.postmark
        self.timeout = self.settings.timeout

    def _transmit(self, message: OutgoingMessage, gate: CommitGate) -> None:
        [result] = self.send_batch([message], gate)
        if result.status == SendStatus.DEFERRED:
            raise Deferred(result.detail, result.retry_after)
        if result.status == SendStatus.REJECTED:
            raise Rejected(result.detail, result.bounce)

    def send_batch(self, messages: list[OutgoingMessage], gate: CommitGate) -> list[SendResult]:
        body = [self._fields(m) for m in messages]
        gate.commit()
        try:
            response = http.post(
                "postmark",
                self.client,
                f"{self.settings.base_url}/email/batch",
                json=body,
                headers={"X-Postmark-Server-Token": self.key, "Accept": "application/json"},
            )
            http.check_status("postmark", response)
        except Deferred as exc:
            return [
                SendResult(m.message_id, SendStatus.DEFERRED, str(exc), retry_after=exc.retry_after) for m in messages
            ]
        if response.status_code == 422:  # the whole call refused (e.g. malformed JSON): nothing was sent
            detail = f"postmark refused the batch: {_error(response)}"
            return [SendResult(m.message_id, SendStatus.REJECTED, detail) for m in messages]
        if response.status_code != 200:
            raise DeliveryError(f"postmark: unexpected HTTP {response.status_code}: {response.text[:200]}")
        answers = response.json()
        if not isinstance(answers, list) or len(answers) != len(messages):
            raise DeliveryError(f"postmark: expected {len(messages)} results, got {str(answers)[:200]}")
        return [_result(m, a) for m, a in zip(messages, answers, strict=True)]

    def _fields(self, message: OutgoingMessage) -> dict:
        p = http.parts(message)
        fields = {
            "From": p.sender,
            "To": p.to,
            "Subject": p.subject,
            "TextBody": p.text,
            "HtmlBody": p.html,
            "MessageStream": self.settings.message_stream,
            "TrackOpens": False,
            "TrackLinks": "None",
            "Headers": [{"Name": name, "Value": value} for name, value in p.headers],  # Message-ID kept
        }
        if p.reply_to:
            fields["ReplyTo"] = p.reply_to
        if message.sender.startswith("bounces+"):  # the VERP token: Postmark's bounce webhook hands it back
            fields["Metadata"] = {"digest_return": message.sender}
        return fields


def _result(message: OutgoingMessage, answer: dict) -> SendResult:
    code = answer.get("ErrorCode")
    if code == 0:
        return SendResult(message.message_id, SendStatus.SENT)
    detail = f"postmark error {code}: {answer.get('Message', '')}"
    return SendResult(message.message_id, SendStatus.REJECTED, detail, bounce=code == INACTIVE)


def _error(response) -> str:
    try:
        data = response.json()
        return f"{data.get('ErrorCode')}: {data.get('Message')}"
    except ValueError:
        return response.text[:200]
