"""What every request handler shares: the app's `State` (config, store, secret, rate limits) and `page()`."""

from __future__ import annotations

import os
import threading

from starlette.requests import Request
from starlette.responses import HTMLResponse

from digest import tokens
from digest.config import Config
from digest.render import render_template
from digest.web.security import RateLimiter

ADMIN_TOKEN_ENV = "DIGEST_ADMIN_TOKEN"


class State:
    """What every request handler needs, made once per app."""

    def __init__(self, config: Config):
        from digest.store import open_store

        self.config = config
        self.store = open_store(config)
        self.secret = tokens.secret_key(config)
        self.admin_token = os.environ.get(ADMIN_TOKEN_ENV) or None
        window = config.web.subscribe_window_minutes * 60
        self.by_address = RateLimiter(config.web.subscribe_limit, window)
        self.by_client = RateLimiter(config.web.subscribe_ip_limit, window)
        self.proxies = config.web.proxy_networks
        self.stop = threading.Event()  # set on shutdown: background sends stop gracefully
        self.site_dir = config.paths.output / "site"


def state_of(request: Request) -> State:
    """The app's State, set by `create_app`."""
    state: State = request.app.state.digest
    return state


def page(request: Request, status: int, heading: str, *paragraphs: str, **extra: object) -> HTMLResponse:
    """A small HTML page from templates/site/page.html (errors included: never a stack trace)."""
    config = state_of(request).config
    body = render_template(
        config.paths.templates, "site/page.html", site=config.site, heading=heading, paragraphs=paragraphs, **extra
    )
    return HTMLResponse(body, status_code=status)
