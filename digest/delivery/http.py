"""What the HTTP mail services share: one reused httpx client, status codes mapped onto outcomes,
Retry-After read, and a message's parts for services that take fields rather than raw MIME."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from digest.delivery.base import Deferred, DeliveryError, MailAdapter, NotSent, OutgoingMessage

if TYPE_CHECKING:
    import httpx  # loaded only when an HTTP adapter opens

PASSED_HEADERS = ("Message-ID", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post")


def secret(variable: str, service: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise DeliveryError(f"the {service} adapter needs {variable}", f"export {variable}=...")
    return value


class HttpAdapter(MailAdapter):
    """A mail service reached over HTTPS: its key from the environment, one pooled client per adapter."""

    key_env: str  # the environment variable holding the service's key
    timeout: float = 30.0
    client: httpx.Client | None = None

    def open(self) -> None:
        self.key = secret(self.key_env, self.name)
        self.client = client(self.timeout)

    def close(self) -> None:
        used, self.client = self.client, None
        if used is not None:
            used.close()


def client(timeout: float) -> httpx.Client:
    import httpx

    return httpx.Client(timeout=timeout, follow_redirects=False)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds (RFC 9110: delay-seconds or an HTTP date); None if absent or unreadable."""
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def check_status(service: str, response: httpx.Response) -> None:
    """Whole-call failures: 401/403 stop the send (a wrong key); 429 and 5xx are retried later."""
    code = response.status_code
    if code in (401, 403):
        raise NotSent(f"{service} refused the credentials: HTTP {code} {_text(response)}", "check the API key")
    if code == 429 or code >= 500:
        raise Deferred(f"{service}: HTTP {code} {_text(response)}", retry_after(response.headers))


def post(service: str, http: httpx.Client | None, url: str, **kwargs: Any) -> httpx.Response:
    """POST, with a dropped connection or a timeout as a temporary failure."""
    import httpx

    if http is None:
        raise DeliveryError(f"the {service} adapter is used before it was opened")
    try:
        return http.post(url, **kwargs)
    except httpx.TimeoutException as exc:
        raise Deferred(f"{service}: no answer in time ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise Deferred(f"{service}: connection failed: {exc}") from None


def _text(response: httpx.Response) -> str:
    return " ".join(response.text.split())[:300]


@dataclass(frozen=True)
class Parts:
    sender: str  # the From header as written
    to: str
    subject: str
    reply_to: str | None
    text: str
    html: str
    headers: tuple[tuple[str, str], ...]  # Message-ID and the List-* headers, passed through unchanged


def parts(message: OutgoingMessage) -> Parts:
    """A composed message split back into the fields an API such as Postmark's takes."""
    parsed = message_from_bytes(message.raw, policy=policy.default)
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    passed = tuple((name, " ".join(str(parsed[name]).split())) for name in PASSED_HEADERS if parsed[name])
    return Parts(
        str(parsed["From"]),
        str(parsed["To"]),
        str(parsed["Subject"]),
        str(parsed["Reply-To"]) if parsed["Reply-To"] else None,
        text.get_content() if text else "",
        html.get_content() if html else "",
        passed,
    )
