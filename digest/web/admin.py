"""Admin routes: trigger a send, follow a run. Off unless DIGEST_ADMIN_TOKEN is set."""

from __future__ import annotations

import hmac
import re
import threading
import time
from datetime import date

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from digest.errors import ContentError, DigestError, NothingToDo, SendRefused
from digest.web.state import state_of


def _authorised(request: Request) -> Response | None:
    """None if the bearer token is right; else the response to return (404 when admin is off)."""
    expected = state_of(request).admin_token
    if expected is None:
        return JSONResponse({"error": "not found"}, status_code=404)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        return JSONResponse(
            {"error": "a valid 'Authorization: Bearer <token>' header is required"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="digest"'},
        )
    return None


async def post_only(request: Request) -> Response:
    """GET /admin/send and the like: the route exists, the method doesn't (405, not the site's 404)."""
    denied = _authorised(request)
    if denied is not None:
        return denied
    return JSONResponse({"error": "use POST"}, status_code=405, headers={"Allow": "POST"})


MONTH_HINT = 'give the month as ?month=YYYY-MM, a JSON body {"month": "YYYY-MM"} or a form field month'


async def _month(request: Request) -> date | None:
    """The month from ?month=, a JSON body or a form; None means the latest. ValueError if malformed.

    A body that carries anything but the month is refused: a send to every subscriber never
    falls back to the latest month because the month was spelled in a way not read here.
    """
    value = request.query_params.get("month")
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if value is None and content_type == "application/json":
        body = await request.json()
        if not isinstance(body, dict) or set(body) - {"month"}:
            raise ValueError(f"unexpected JSON body: {MONTH_HINT}")
        if not isinstance(body.get("month", ""), str):  # null, 202502, [..], true: never "the latest" by accident
            raise ValueError(f"month must be a string YYYY-MM, not {_json_kind(body['month'])}")
        value = body.get("month")
    elif value is None and content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        if set(form.keys()) - {"month"}:
            raise ValueError(f"unexpected form fields: {MONTH_HINT}")
        field = form.get("month")
        if not isinstance(field, str | None):  # an uploaded file
            raise ValueError(f"month must be a plain field YYYY-MM: {MONTH_HINT}")
        value = field
    elif value is None and await request.body():
        raise ValueError(f"unexpected {content_type or 'untyped'} body: {MONTH_HINT}")
    if value in (None, ""):
        return None
    match = re.fullmatch(r"([0-9]{4})-([0-9]{2})", str(value))  # ASCII digits: \d would take "２０２５" too
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"month {str(value)[:20]!r} is not YYYY-MM")
    return date(int(match.group(1)), int(match.group(2)), 1)


def _json_kind(value: object) -> str:
    kinds = {
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        list: "a list",
        dict: "an object",
    }
    return kinds.get(type(value), type(value).__name__)


async def send(request: Request) -> Response:
    """Start a send of the given (or latest) month in the background; 202 with the run's id."""
    from digest import jobs

    denied = _authorised(request)
    if denied:
        return denied
    state = state_of(request)
    try:
        month = await _month(request)
        run = await run_in_threadpool(jobs.start_send, state.store, state.config, month, state.stop)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    except ContentError as exc:
        return JSONResponse(
            {"error": "content is invalid; nothing was sent", "problems": [str(p) for p in exc.problems]},
            status_code=409,
        )
    except SendRefused as exc:
        return JSONResponse(
            {
                "error": "this email can't be sent as it is; nothing was queued",
                "problems": [str(p) for p in exc.problems],
            },
            status_code=409,
        )
    except NothingToDo as exc:
        return JSONResponse({"error": str(exc)}, status_code=409)
    except DigestError as exc:
        return JSONResponse({"error": str(exc)}, status_code=500)
    return JSONResponse(
        {"run_id": run.id, "month": run.month, "status": run.status, "url": f"/admin/runs/{run.id}"}, status_code=202
    )


async def run(request: Request) -> Response:
    from digest.store import runs

    denied = _authorised(request)
    if denied:
        return denied
    run_id = request.path_params["run_id"]
    found = (
        await run_in_threadpool(runs.get, state_of(request).store, run_id[:32])
        if re.fullmatch(r"[0-9a-f]{32}", run_id)
        else None
    )
    if found is None:
        return JSONResponse({"error": "no such run"}, status_code=404)
    return JSONResponse(found.as_json())


async def runs(request: Request) -> Response:
    from digest.store import runs as run_log

    denied = _authorised(request)
    if denied:
        return denied
    recent = await run_in_threadpool(run_log.recent, state_of(request).store)
    return JSONResponse({"runs": [r.as_json() for r in recent]})


def wait_for_runs(timeout: float) -> None:
    """On shutdown: let background sends finish their in-flight messages."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread.name.startswith("digest-run-"):
            thread.join(max(0.0, deadline - time.monotonic()))
