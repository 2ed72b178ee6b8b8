"""Amazon SES: API v2 SendEmail with the raw message, through boto3 (credentials from the usual AWS
environment: variables, a profile, an instance role).

The composed message goes as it is (our Message-ID, List-* headers, DKIM signature); the envelope
sender is our return path. boto3's own retries are off: dispatch owns retrying. MessageRejected
refuses this message; throttling and 5xx answers are retried later; an unverified sender, a paused
or suspended account, or bad credentials stop the send.
"""

from __future__ import annotations

from typing import Any

from digest.config import Config
from digest.delivery import http
from digest.delivery.base import CommitGate, Deferred, DeliveryError, MailAdapter, OutgoingMessage, Rejected

STOPPERS = {  # the account or identity can't send at all: no point going on with the next message
    "AccountSuspendedException",
    "SendingPausedException",
    "MailFromDomainNotVerifiedException",
    "NotFoundException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "AccessDeniedException",
}
LATER = {"TooManyRequestsException", "LimitExceededException", "Throttling", "ThrottlingException"}


class SesAdapter(MailAdapter):
    name = "ses"

    def __init__(self, config: Config):
        self.settings = config.ses
        self.client: Any = None  # boto3's sesv2 client once open (boto3 is untyped)

    def open(self) -> None:
        try:
            import boto3
        except ImportError:
            raise DeliveryError("the ses adapter needs boto3, which is not installed", 'pip install ".[ses]"') from None
        from botocore.config import Config as BotoConfig
        from botocore.exceptions import BotoCoreError

        s = self.settings
        options = BotoConfig(
            retries={"total_max_attempts": 1}, connect_timeout=s.timeout, read_timeout=s.timeout, region_name=s.region
        )
        try:
            self.client = boto3.client("sesv2", endpoint_url=s.endpoint_url, config=options)
        except BotoCoreError as exc:
            raise DeliveryError(f"ses: {exc}", "check [ses] region and the AWS credentials") from None

    def close(self) -> None:
        self.client = None

    def _transmit(self, message: OutgoingMessage, gate: CommitGate) -> None:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        request = {
            "FromEmailAddress": message.sender,
            "Destination": {"ToAddresses": [message.recipient]},
            "Content": {"Raw": {"Data": message.raw}},
        }
        if self.settings.configuration_set:
            request["ConfigurationSetName"] = self.settings.configuration_set
        gate.commit()
        try:
            self.client.send_email(**request)
        except NoCredentialsError:
            raise DeliveryError("ses: no AWS credentials found", "set AWS_ACCESS_KEY_ID or a profile") from None
        except ClientError as exc:
            self._refused(exc)
        except BotoCoreError as exc:  # connection errors, timeouts
            raise Deferred(f"ses: {exc}") from None

    def _refused(self, exc) -> None:
        error = exc.response.get("Error", {})
        code, text = error.get("Code", ""), error.get("Message", "")
        meta = exc.response.get("ResponseMetadata", {})
        status = meta.get("HTTPStatusCode", 0)
        detail = f"ses {code}: {text}"
        if code in STOPPERS or status in (401, 403):
            raise DeliveryError(detail, "check the SES identity, the account and the AWS credentials")
        if code in LATER or status == 429 or status >= 500:
            raise Deferred(detail, http.retry_after(meta.get("HTTPHeaders") or {}))
        raise Rejected(detail, bounce=False)  # MessageRejected, BadRequestException: this message, not the address
