"""Public routes: the archive index, feeds, subscribe (double opt-in), confirm, unsubscribe."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from digest import tokens
from digest.render.site import render_index
from digest.web.security import CSRF_COOKIE, BodyTooLarge, client_address, csrf_ok, csrf_token, new_csrf_cookie
from digest.web.state import State, page, state_of

if TYPE_CHECKING:
    from digest.store.subscribers import Subscriber

log = logging.getLogger(__name__)
CHECK_INBOX = (
    "Check your inbox: if the address can receive mail, a message with a confirmation link is on its way. "
    "Nothing is sent until you confirm."
)


def _form(request: Request, email: str = "", message: str = "", kind: str = "") -> tuple[dict, str]:
    """The subscribe form's fields, and the CSRF cookie value it is bound to."""
    cookie = request.cookies.get(CSRF_COOKIE) or new_csrf_cookie()
    return {
        "csrf_token": csrf_token(state_of(request).secret, cookie),
        "email": email,
        "message": message,
        "kind": kind,
    }, cookie


def _with_cookie(response: Response, request: Request, cookie: str) -> Response:
    if request.cookies.get(CSRF_COOKIE) != cookie:
        response.set_cookie(
            CSRF_COOKIE,
            cookie,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            max_age=30 * 24 * 3600,
        )
    return response


def _published_issues(state: State) -> list:
    """Issues with a built page in the site folder, newest first: the archive shows what is published."""
    from digest.collect import load_archive

    archive = load_archive(state.config, strict=False)
    months = [m for m in archive.months() if (state.site_dir / f"{m:%Y/%m}" / "index.html").is_file()]
    return [archive.issue(m, html=False) for m in reversed(months)]


async def index(request: Request) -> Response:
    state = state_of(request)
    issues = await run_in_threadpool(_published_issues, state)
    form, cookie = _form(request)
    html = render_index(issues, state.config, form=form)
    return _with_cookie(HTMLResponse(html), request, cookie)


async def subscribe_form(request: Request) -> Response:
    form, cookie = _form(request)
    response = page(request, 200, f"Subscribe to {state_of(request).config.site.title}", form=form)
    return _with_cookie(response, request, cookie)


async def subscribe(request: Request) -> Response:
    """Double opt-in; the answer is the same whether or not the address was already subscribed."""
    from digest.store import subscribers

    state = state_of(request)
    try:
        data = await request.form(max_files=0, max_fields=10)
    except BodyTooLarge:  # a streamed body over [web] max_body_bytes: BodyLimit answers 413
        raise
    except Exception:  # noqa: BLE001 - a malformed body is the client's problem, not a 500
        return page(
            request, 400, "That didn't work", "The form could not be read. Please reload the page and try again."
        )
    raw_email = str(data.get("email") or "").strip()[:320]
    if not csrf_ok(state.secret, request.cookies.get(CSRF_COOKIE), str(data.get("csrf_token") or "")):
        form, cookie = _form(request, raw_email, "This form has expired. Please submit it again.", "error")
        return _with_cookie(page(request, 403, "Please try again", form=form), request, cookie)
    try:
        address = subscribers.normalise(raw_email)
    except subscribers.InvalidAddress:
        form, cookie = _form(
            request, raw_email, "That doesn't look like an email address. Please check it and try again.", "error"
        )
        return _with_cookie(page(request, 400, "Please check the address", form=form), request, cookie)
    peer = request.client.host if request.client else None
    client = client_address(peer, request.headers.getlist("x-forwarded-for"), state.proxies)
    if not state.by_client.allow(client) or not state.by_address.allow(address):
        wait = max(state.by_client.retry_after(client), state.by_address.retry_after(address))
        response = page(request, 429, "Too many attempts", "Please wait a while before trying again.")
        response.headers["Retry-After"] = str(wait or 1)
        return response
    subscriber, mail = await run_in_threadpool(subscribers.request_subscription, state.store, address)
    task = BackgroundTask(_send_confirmation, state, subscriber.id, address) if mail else None
    response = page(request, 200, "Almost done", CHECK_INBOX)
    response.background = task
    return response


def _send_confirmation(state: State, subscriber_id: int, address: str) -> None:
    from digest.delivery import make_adapter
    from digest.delivery.base import SendStatus
    from digest.delivery.notices import confirmation

    url = tokens.confirm_url(state.config, state.secret, tokens.TokenSubject(address, subscriber_id))
    try:
        with make_adapter(state.config) as adapter:
            result = adapter.send(confirmation(state.config, address, url))
        if result.status != SendStatus.SENT:
            log.warning("confirmation to %s not sent: %s %s", address, result.status, result.detail)
    except Exception as exc:  # noqa: BLE001 - logged; the visitor can simply subscribe again
        log.error("confirmation to %s failed: %s", address, exc)


def _token(request: Request, purpose: str, max_age: int | None = None) -> tokens.TokenSubject | Response:
    """The token's subject, or a 400 page that says what is wrong with the link."""
    try:
        return tokens.read_token(state_of(request).secret, purpose, request.path_params["token"], max_age)
    except tokens.TokenError as exc:
        hint = "Subscribe again to get a fresh one." if exc.expired else "Please use the exact link from the email."
        return page(request, 400, "This link doesn't work", f"{str(exc)[:1].upper()}{str(exc)[1:]}.", hint)


async def confirm(request: Request) -> Response:
    from digest.store import subscribers

    subject = _token(request, "confirm", tokens.CONFIRM_MAX_AGE)
    if isinstance(subject, Response):
        return subject
    if subject.subscriber_id is None:
        return page(request, 400, "This link doesn't work", "This link is not valid.")
    before = await run_in_threadpool(subscribers.get_by_id, state_of(request).store, subject.subscriber_id)
    sub = await run_in_threadpool(
        subscribers.confirm, state_of(request).store, subject.subscriber_id, subject.address, subject.issued_at
    )
    if sub is None:
        return page(
            request,
            400,
            "This link doesn't work",
            "This link is not valid: it doesn't match a subscription, or it is older than your unsubscribe. "
            "Subscribe again to get a new one.",
        )
    title = state_of(request).config.site.title
    response = page(
        request,
        200,
        "You're subscribed",
        f"{sub.email} will get {title} at the end of each month.",
        "Every email has a one-click unsubscribe link.",
    )
    newly = before is not None and before.status != subscribers.SubscriberStatus.ACTIVE
    if newly and state_of(request).config.subscribe.welcome:  # once per confirmation, not per click
        response.background = BackgroundTask(_send_welcome, state_of(request), sub)
    return response


def _send_welcome(state: State, sub: Subscriber) -> None:
    """After the confirmation is recorded and answered: a failure here never undoes it, only logs."""
    from digest.delivery import make_adapter
    from digest.delivery.base import SendStatus
    from digest.delivery.notices import welcome
    from digest.store import deliveries

    try:
        sent = [i.key for i in deliveries.list_issues(state.store) if i.sending_started_at is not None]
        message = welcome(state.config, state.secret, sub.id, sub.email, sub.name, sent[0] if sent else None)
        with make_adapter(state.config) as adapter:
            result = adapter.send(message)
        if result.status != SendStatus.SENT:
            log.warning("welcome to %s not sent: %s %s", sub.email, result.status, result.detail)
    except Exception as exc:  # noqa: BLE001 - the reader is subscribed whatever happens to this mail
        log.error("welcome to %s failed: %s", sub.email, exc)


async def unsubscribe_form(request: Request) -> Response:
    """GET only shows a button: mail scanners prefetch links, and a prefetch must not unsubscribe."""
    subject = _token(request, "unsubscribe")
    if isinstance(subject, Response):
        return subject
    action = {"url": str(request.url.path), "label": "Unsubscribe", "fields": []}
    return page(
        request,
        200,
        "Unsubscribe",
        f"Stop sending {state_of(request).config.site.title} to {subject.address}?",
        action=action,
    )


async def unsubscribe(request: Request) -> Response:
    """RFC 8058 one-click: a POST with the signed token unsubscribes at once, no cookies needed."""
    from digest.store import subscribers

    subject = _token(request, "unsubscribe")
    if isinstance(subject, Response):
        return subject
    await run_in_threadpool(subscribers.unsubscribe, state_of(request).store, subject.subscriber_id, subject.address)
    return page(
        request,
        200,
        "You're unsubscribed",
        f"{subject.address} will get no more emails from {state_of(request).config.site.title}.",
    )


def feed(name: str, media_type: str) -> Callable[[Request], Awaitable[Response]]:
    """A route serving one feed file with validators, so readers can poll with conditional GETs."""

    async def serve(request: Request) -> Response:
        path: Path = state_of(request).site_dir / name
        try:
            stat = path.stat()
        except FileNotFoundError:
            return page(request, 404, "Not found", "The feeds appear after the first 'digest build'.")
        etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
        headers = {
            "ETag": etag,
            "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
            "Cache-Control": "public, max-age=300",
        }
        if _not_modified(request, etag, stat.st_mtime):
            return Response(status_code=304, headers=headers)
        return FileResponse(path, media_type=media_type, headers=headers, stat_result=os.stat(path))

    return serve


def _not_modified(request: Request, etag: str, mtime: float) -> bool:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        # If-None-Match compares weakly (RFC 9110 13.1.2): W/"x" matches "x" (proxies that compress weaken tags)
        return etag in [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")] or (
            if_none_match.strip() == "*"
        )
    since = request.headers.get("if-modified-since")
    if since:
        try:
            return int(mtime) <= parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError):
            return False
    return False
