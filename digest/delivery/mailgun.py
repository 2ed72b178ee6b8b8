"""Mailgun: the MIME endpoint, one message a call (https://documentation.mailgun.com/docs/mailgun/api-reference/).

POST /v3/<domain>/messages.mime with the composed message as it is (our Message-ID, List-* headers
and DKIM signature travel inside it) and the recipient as `to`. 200 is sent; 429 and 5xx are retried
(with Retry-After); 400 refuses this message; 401/403 stop the send.
"""

from __future__ import annotations

from digest.config import Config
from digest.delivery import http
from digest.delivery.base import CommitGate, DeliveryError, OutgoingMessage, Rejected

KEY_ENV = "DIGEST_MAILGUN_API_KEY"
REGIONS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}


class MailgunAdapter(http.HttpAdapter):
    name = "mailgun"
    key_env = KEY_ENV

    def __init__(self, config: Config):
        if config.mailgun is None:
            raise DeliveryError("the mailgun adapter needs a [mailgun] table with domain", "see README")
        self.settings = config.mailgun
        self.base = (self.settings.base_url or REGIONS[self.settings.region]).rstrip("/")
        self.timeout = self.settings.timeout

    def _transmit(self, message: OutgoingMessage, gate: CommitGate) -> None:
        url = f"{self.base}/v3/{self.settings.domain}/messages.mime"
        form = {"to": message.recipient}
        if message.sender.startswith("bounces+"):  # the VERP token: Mailgun's webhooks hand user variables back
            form["v:digest-return"] = message.sender
        files = {"message": ("message.eml", message.raw, "application/octet-stream")}
        gate.commit()
        response = http.post("mailgun", self.client, url, data=form, files=files, auth=("api", self.key))
        http.check_status("mailgun", response)
        if response.status_code == 200:
            return
        detail = f"mailgun: HTTP {response.status_code} {' '.join(response.text.split())[:300]}"
        if 400 <= response.status_code < 500:
            raise Rejected(detail, bounce=False)  # a malformed message or request: not the address's fault
        raise DeliveryError(detail)
