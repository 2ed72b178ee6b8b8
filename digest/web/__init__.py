"""The web front (Starlette): archive, feeds, double opt-in, one-click unsubscribe, admin send."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from digest.config import Config
from digest.web import admin, hooks, pages
from digest.web.security import HEADERS, BodyLimit, CanonicalHost, SecurityHeaders
from digest.web.state import State, page

log = logging.getLogger(__name__)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    if request.url.path.startswith("/admin/"):
        from starlette.responses import JSONResponse

        return JSONResponse({"error": getattr(exc, "detail", "error")}, status_code=status)
    titles = {404: "Not found", 405: "Method not allowed", 413: "Too large"}
    return page(
        request,
        status,
        titles.get(status, "Something went wrong"),
        "There is nothing here." if status == 404 else "That request could not be handled.",
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return HTMLResponse(
        "<!DOCTYPE html><title>Error</title><p>Something went wrong on our side. Please try again later.</p>",
        status_code=500,
        # Starlette's error middleware sits outside SecurityHeaders, so this response adds them itself
        headers={name.decode(): value.decode() for name, value in HEADERS},
    )


class SiteFiles(StaticFiles):
    """The built site. Before the first `digest build` there is no folder: every path is a 404, not a 500."""

    async def check_config(self) -> None:
        if self.directory is not None and not Path(self.directory).is_dir():
            return  # lookups find nothing until the build creates it
        await super().check_config()


class Service(Protocol):
    """Something that runs beside the app (the scheduler, the bounce reader): started and stopped with it."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def create_app(config: Config, scheduler: Service | None = None, services: tuple[Service, ...] = ()) -> Starlette:
    """The ASGI app; `scheduler` (a SchedulerService) and `services` (the bounce reader) start and stop with it."""
    state = State(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if scheduler is not None:
            scheduler.start()
        for service in services:
            service.start()
        try:
            yield
        finally:  # uvicorn's shutdown, on SIGINT or SIGTERM alike
            state.stop.set()  # in-flight messages finish and are recorded
            for service in services:
                service.stop()
            if scheduler is not None:
                scheduler.stop()  # hands the scheduler lease back at once
            admin.wait_for_runs(timeout=30)
            state.store.close()

    routes = [
        Route("/", pages.index, methods=["GET", "HEAD"]),
        Route("/subscribe", pages.subscribe_form, methods=["GET", "HEAD"]),
        Route("/subscribe", pages.subscribe, methods=["POST"]),
        Route("/confirm/{token}", pages.confirm, methods=["GET", "HEAD"]),
        Route("/unsubscribe/{token}", pages.unsubscribe_form, methods=["GET", "HEAD"]),
        Route("/unsubscribe/{token}", pages.unsubscribe, methods=["POST"]),
        Route("/feed.xml", pages.feed("feed.xml", "application/rss+xml; charset=utf-8"), methods=["GET", "HEAD"]),
        Route("/atom.xml", pages.feed("atom.xml", "application/atom+xml; charset=utf-8"), methods=["GET", "HEAD"]),
        Route("/feed.json", pages.feed("feed.json", "application/feed+json; charset=utf-8"), methods=["GET", "HEAD"]),
        Route("/hooks/postmark", hooks.postmark, methods=["POST"]),
        Route("/hooks/ses", hooks.ses, methods=["POST"]),
        Route("/hooks/mailgun", hooks.mailgun, methods=["POST"]),
        Route("/admin/send", admin.send, methods=["POST"]),
        Route("/admin/send", admin.post_only, methods=["GET", "HEAD", "PUT", "PATCH", "DELETE"]),
        Route("/admin/runs", admin.runs, methods=["GET"]),
        Route("/admin/runs/{run_id}", admin.run, methods=["GET"]),
        Mount("/", SiteFiles(directory=Path(state.site_dir), html=True, check_dir=False)),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(CanonicalHost, base_url=config.site.base_url),
            Middleware(SecurityHeaders),
            Middleware(BodyLimit, limit=config.web.max_body_bytes, hooks_limit=config.web.max_hook_bytes),
        ],
        exception_handlers={HTTPException: _http_error, 500: _server_error},
        lifespan=lifespan,
    )
    app.state.digest = state
    return app
