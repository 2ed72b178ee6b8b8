"""POST /hooks/postmark, /hooks/ses, /hooks/mailgun: bounce and complaint webhooks (see digest.hooks)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from digest import hooks
from digest.config import Config
from digest.web.state import state_of

log = logging.getLogger(__name__)


def _refused(service: str, exc: hooks.Unauthorized) -> Response:
    log.warning("%s webhook refused: %s", service, exc)
    return JSONResponse({"error": "unauthorized"}, status_code=401)


async def _record(request: Request, source: str, events: list[hooks.Event]) -> Response:
    state = state_of(request)
    new = await run_in_threadpool(hooks.record, state.config, state.store, state.secret, source, events)
    return JSONResponse({"recorded": new, "events": len(events)})


async def postmark(request: Request) -> Response:
    body = await request.body()
    try:
        events = hooks.postmark_events(request.headers.get("authorization"), body)
    except hooks.Unauthorized as exc:
        return _refused("postmark", exc)
    return await _record(request, "postmark", events)


async def mailgun(request: Request) -> Response:
    body = await request.body()
    try:
        events = hooks.mailgun_events(body)
    except hooks.Unauthorized as exc:
        return _refused("mailgun", exc)
    return await _record(request, "mailgun", events)


async def ses(request: Request) -> Response:
    body = await request.body()
    config = state_of(request).config
    try:
        message = await run_in_threadpool(hooks.sns_message, config, body, _fetch(config))
    except hooks.Unauthorized as exc:
        return _refused("ses", exc)
    if message["Type"] == "SubscriptionConfirmation":
        url = str(message.get("SubscribeURL") or "")
        if not re.match(config.ses.sns_certificate_url, url):  # only SNS itself is ever called back
            return _refused("ses", hooks.Unauthorized("the SubscribeURL is not Amazon SNS's"))
        await run_in_threadpool(_fetch(config), url)
        log.info("confirmed the SNS subscription to %s", message.get("TopicArn"))
        return JSONResponse({"confirmed": message.get("TopicArn")})
    if message["Type"] != "Notification":
        return JSONResponse({"ignored": message["Type"]})
    return await _record(request, "ses", hooks.ses_events(message))


def _fetch(config: Config) -> Callable[[str], bytes]:
    def fetch(url: str) -> bytes:
        import httpx

        try:
            response = httpx.get(url, timeout=config.ses.timeout, follow_redirects=False)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise hooks.Unauthorized(f"can't fetch {url}: {exc}") from None
        return response.content

    return fetch
