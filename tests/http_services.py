"""Local stand-ins for the mail services' HTTP APIs, as their documentation specifies them, so the
adapters and webhooks run unchanged against them: real HTTP on loopback, real authentication checks,
the documented request and response shapes, and faults on request (429 with Retry-After, 500, a call
held open so the test can kill the sender while it is in flight)."""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler

from loopback import LoopbackServer


@dataclass
class Call:
    path: str
    status: int
    messages: list[dict]  # Postmark: the JSON messages; Mailgun: {"to", "raw"}
    at: float


@dataclass
class Behaviour:
    postmark_token: str = "pm-token"
    mailgun_key: str = "mg-key"
    mailgun_domain: str = "mg.links.example.com"
    inactive: set[str] = field(default_factory=set)  # Postmark ErrorCode 406 for these recipients
    invalid: set[str] = field(default_factory=set)  # Postmark 300 / Mailgun 400 for these
    once: list[tuple[int, float | None]] = field(default_factory=list)  # next calls answer (status, Retry-After)
    hold_call: int | None = None  # this call (1-based) is accepted, then never answered until `release`
    aws_key_id: str = "AKIDEXAMPLETEST"
    ses_region: str = "eu-west-1"


class Services(LoopbackServer):
    """One ThreadingHTTPServer on 127.0.0.1 serving Postmark's and Mailgun's endpoints."""

    def __init__(self, behaviour: Behaviour | None = None):
        self.behaviour = behaviour or Behaviour()
        self.calls: list[Call] = []
        self.accepted: list[dict] = []  # every message the service took responsibility for
        self.lock = threading.Lock()
        self.held = threading.Event()  # the held call has arrived and its messages are accepted
        self.release = threading.Event()
        self.serve(self._handler())

    def _handler(self):
        services = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path == "/email/batch":
                    services._postmark(self, body)
                elif self.path == f"/v3/{services.behaviour.mailgun_domain}/messages.mime":
                    services._mailgun(self, body)
                elif self.path == "/v2/email/outbound-emails":
                    services._ses(self, body)
                else:
                    services._answer(self, 404, {"message": "not found"})

        return Handler

    def _answer(self, handler, status: int, data, headers: dict | None = None) -> None:
        payload = json.dumps(data).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def _fault(self, handler, path: str) -> bool:
        with self.lock:
            fault = self.behaviour.once.pop(0) if self.behaviour.once else None
        if fault is None:
            return False
        status, wait = fault
        with self.lock:
            self.calls.append(Call(path, status, [], time.monotonic()))
        headers = {"Retry-After": str(int(wait))} if wait is not None else {}
        if path.startswith("/v2/"):  # AWS's restJson protocol names the error in x-amzn-ErrorType
            headers["x-amzn-ErrorType"] = "TooManyRequestsException" if status == 429 else "InternalFailure"
        self._answer(handler, status, {"ErrorCode": 429 if status == 429 else 500, "Message": "try later"}, headers)
        return True

    # -- Postmark: POST /email/batch (https://postmarkapp.com/developer/api/email-api#send-batch-emails)

    def _postmark(self, handler, body: bytes) -> None:
        if handler.headers.get("X-Postmark-Server-Token") != self.behaviour.postmark_token:
            message = "Request does not contain a valid Server token."
            return self._answer(handler, 401, {"ErrorCode": 10, "Message": message})
        if "application/json" not in (handler.headers.get("Accept") or "") or "application/json" not in (
            handler.headers.get("Content-Type") or ""
        ):
            return self._answer(handler, 415, {"ErrorCode": 0, "Message": "JSON only"})
        if self._fault(handler, "/email/batch"):
            return None
        try:
            messages = json.loads(body)
        except ValueError:
            return self._answer(handler, 422, {"ErrorCode": 402, "Message": "Invalid JSON"})
        if not isinstance(messages, list) or not 1 <= len(messages) <= 500:
            return self._answer(handler, 422, {"ErrorCode": 300, "Message": "Batch must hold 1 to 500 messages"})
        answers = [self._postmark_one(m) for m in messages]
        with self.lock:
            self.calls.append(Call("/email/batch", 200, messages, time.monotonic()))
            number = len([c for c in self.calls if c.status == 200])
        if number == self.behaviour.hold_call:
            self.held.set()
            self.release.wait()  # the sender is killed meanwhile: it never learns these were accepted
            return None
        return self._answer(handler, 200, answers)

    def _postmark_one(self, m: dict) -> dict:
        to = m.get("To", "")
        if not m.get("From") or not to or not (m.get("TextBody") or m.get("HtmlBody")):
            return {"ErrorCode": 300, "Message": "Invalid email request", "To": to}
        address = to.rsplit("<", 1)[-1].rstrip(">").strip()
        if address in self.behaviour.invalid:
            return {"ErrorCode": 300, "Message": f"Error parsing 'To': Illegal email address '{address}'."}
        if address in self.behaviour.inactive:
            return {
                "ErrorCode": 406,
                "Message": "You tried to send to recipient(s) that have been marked as inactive.",
                "To": to,
            }
        with self.lock:
            self.accepted.append({**m, "address": address})
        return {"ErrorCode": 0, "Message": "OK", "MessageID": f"pm-{len(self.accepted)}", "To": to}

    # -- Mailgun: POST /v3/<domain>/messages.mime (multipart/form-data: to, message)

    def _mailgun(self, handler, body: bytes) -> None:
        expected = "Basic " + base64.b64encode(f"api:{self.behaviour.mailgun_key}".encode()).decode()
        if handler.headers.get("Authorization") != expected:
            handler.send_response(401)
            handler.send_header("Content-Length", "9")
            handler.end_headers()
            handler.wfile.write(b"Forbidden")
            return None
        if self._fault(handler, handler.path):
            return None
        form = _multipart(handler.headers.get("Content-Type", ""), body)
        to, raw = form.get("to", b"").decode(), form.get("message", b"")
        if not to or not raw:
            return self._answer(handler, 400, {"message": "'to' parameter is missing"})
        if to in self.behaviour.invalid:
            return self._answer(handler, 400, {"message": f"to parameter is not a valid address. please check: {to}"})
        parsed = message_from_bytes(raw, policy=policy.default)
        with self.lock:
            self.calls.append(Call(handler.path, 200, [{"to": to, "raw": raw}], time.monotonic()))
            variables = {k[2:]: v.decode() for k, v in form.items() if k.startswith("v:")}
            self.accepted.append(
                {"address": to, "raw": raw, "Message-ID": str(parsed["Message-ID"]), "variables": variables}
            )
        return self._answer(handler, 200, {"id": str(parsed["Message-ID"]), "message": "Queued. Thank you."})

    # -- SES: API v2 SendEmail

    def _ses(self, handler, body: bytes) -> None:
        """SES API v2 SendEmail (POST /v2/email/outbound-emails), restJson, signed with SigV4."""
        auth = handler.headers.get("Authorization") or ""
        scope = f"Credential={self.behaviour.aws_key_id}/"
        if not auth.startswith("AWS4-HMAC-SHA256 ") or scope not in auth or "/ses/aws4_request" not in auth:
            return _ses_error(self, handler, 403, "UnrecognizedClientException", "The security token is invalid.")
        if f"/{self.behaviour.ses_region}/ses/" not in auth or not handler.headers.get("X-Amz-Date"):
            return _ses_error(
                self, handler, 403, "InvalidSignatureException", "Credential should be scoped to a valid region"
            )
        if self._fault(handler, handler.path):
            return None
        request = json.loads(body)
        raw = base64.b64decode(request["Content"]["Raw"]["Data"])
        to = request["Destination"]["ToAddresses"][0]
        if to in self.behaviour.invalid:
            return _ses_error(self, handler, 400, "MessageRejected", "Email address is not verified.")
        parsed = message_from_bytes(raw, policy=policy.default)
        with self.lock:
            self.calls.append(Call(handler.path, 200, [request], time.monotonic()))
            self.accepted.append(
                {
                    "address": to,
                    "raw": raw,
                    "Message-ID": str(parsed["Message-ID"]),
                    "from": request["FromEmailAddress"],
                }
            )
        return self._answer(handler, 200, {"MessageId": f"0100018f-{len(self.accepted):08d}"})


def _multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    """A multipart/form-data body's fields, read with the email parser (the format is MIME)."""
    message = BytesParser(policy=policy.HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        fields[name] = part.get_payload(decode=True) or b""
    return fields


def _ses_error(services: Services, handler, status: int, kind: str, message: str) -> None:
    services._answer(handler, status, {"message": message}, {"x-amzn-ErrorType": kind})
