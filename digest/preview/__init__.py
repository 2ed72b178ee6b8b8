"""`digest preview`: the month's email and site served on 127.0.0.1 while the writer edits, rendered again
after every change to content/, the site's templates/ or digest.toml, each open page reloading itself.

Nothing is written to output/ and nothing is sent: every render lives in memory until the next one.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import date
from pathlib import Path

import anyio
import anyio.to_thread
import jinja2
import uvicorn
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from watchfiles import Change, DefaultFilter, awatch

from digest.config import Config, find_config
from digest.errors import DigestError, NothingToDo
from digest.preview.render import Snapshot, force_scheme, render_snapshot

log = logging.getLogger(__name__)

HOST = "127.0.0.1"  # never another interface: the preview has no access control
WIDTHS = {"375": ("375 px (phone)", "375px"), "600": ("600 px", "600px"), "full": ("Full width", "100%")}
POLL = 0.25  # seconds between an open page's checks for a newer render, and how soon a stop lets it go
PING_EVERY = 40  # polls between keep-alive comments: a page that left is noticed within 10 s
NO_STORE = {"Cache-Control": "no-store"}
UNSUBSCRIBE_PATH = "/__preview/unsubscribe"
RELOAD_SCRIPT = """<script>
  (() => {  /* digest preview only: reload when the preview has rendered again */
    const events = new EventSource("/__reload?since=%d");
    events.onmessage = () => { events.close(); location.reload(); };
  })();
</script>
"""
_shell = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).resolve().parent)),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


class PortInUse(DigestError):
    """The preview's port is taken."""


class Previewer:
    """The current Snapshot and its generation (counting renders), rendered again when a watched file changes."""

    def __init__(self, config: Config, config_path: Path, month: date | None, unsubscribe_url: str):
        self.config = config  # the last digest.toml that loaded: where content/ and templates/ are
        self.config_path = config_path  # as the writer named it: errors name it the same way `digest check` does
        self._config_file = config_path.resolve()
        self.month = month
        self.unsubscribe_url = unsubscribe_url
        self.snapshot = Snapshot()
        self.generation = 0
        self.stopping = False  # set by Ctrl-C: open reload streams end, so the server can stop
        self._restart: anyio.Event | None = None  # set when the folders to watch changed (made in the loop)
        self._lock: anyio.Lock | None = None
        self._watched: tuple[Path, ...] = ()  # the folders the watch covers now

    def refresh(self, *, first: bool = False) -> Snapshot:
        """Read digest.toml and render again; a month with no entries is fatal only on the `first` render."""
        try:
            snapshot, config = render_snapshot(self.config_path, self.month, self.unsubscribe_url)
        except NothingToDo as exc:
            if first:
                raise
            snapshot, config = Snapshot(problems=(f"error: {exc}",)), None
        self.config = config or self.config
        if snapshot == self.snapshot:  # a render that changed nothing reloads no page and says nothing
            return snapshot
        self.snapshot, self.generation = snapshot, self.generation + 1
        for line in snapshot.problems:
            log.error("%s", line.removeprefix("error: "))
        if not snapshot.problems:
            log.info("rendered %s", snapshot.month)
        return snapshot

    def folders(self) -> tuple[Path, ...]:
        """content/ and the site's templates/, those that exist (the theme itself is not the writer's to edit)."""
        paths = self.config.paths
        return tuple(folder for folder in (paths.content, paths.templates) if folder.is_dir())

    async def changed(self) -> None:
        """Render again in a worker thread, one render at a time, so pages keep being served meanwhile."""
        assert self._lock is not None, "changed() runs only under watch()"
        async with self._lock:
            await anyio.to_thread.run_sync(self.refresh)
            if self.folders() != self._watched:  # digest.toml moved one, or one appeared or went
                self._restart_watch()

    async def watch(self, stop: anyio.Event) -> None:
        """Watch the folders (again whenever digest.toml moves them or one appears) and digest.toml."""
        self._lock = anyio.Lock()
        async with anyio.create_task_group() as group:
            group.start_soon(self._watch_root, stop)
            while not stop.is_set() and not self.stopping:
                restart = self._restart = anyio.Event()
                folders = self._watched = self.folders()
                if not folders:
                    await restart.wait()
                    continue
                catch_up = True  # the first yield comes once the watch is set up: render what changed before it
                watching = awatch(
                    *folders, watch_filter=DefaultFilter(), stop_event=restart, rust_timeout=1000, yield_on_timeout=True
                )
                try:
                    async for changes in watching:
                        if changes or catch_up:
                            await self.changed()
                        catch_up = False
                except FileNotFoundError:  # a folder went between `folders()` and the watch starting on it
                    await anyio.sleep(0.05)  # list them again; the new watch's first yield renders what changed

    async def _watch_root(self, stop: anyio.Event) -> None:
        """digest.toml, and the content or templates folder appearing, in the config's own folder only."""

        def wanted(change: Change, path: str) -> bool:
            return Path(path) in (self._config_file, self.config.paths.content, self.config.paths.templates)

        async for changes in awatch(self._config_file.parent, watch_filter=wanted, stop_event=stop, recursive=False):
            await self.changed()
            if any(Path(path) != self._config_file for _, path in changes):
                self._restart_watch()  # a folder made again under the same name: the old watch saw it go

    def _restart_watch(self) -> None:
        if self._restart is not None:
            self._restart.set()

    def stop(self) -> None:
        """End the reload streams and the folder watch (from the event loop)."""
        self.stopping = True
        self._restart_watch()


def create_app(previewer: Previewer) -> Starlette:
    """The preview's pages: the email (`/`, `/email.html`, `/email.txt`), the site (`/site/...`), `/__reload`."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = anyio.Event()
        watcher = asyncio.create_task(previewer.watch(stop))
        try:
            yield
        finally:
            stop.set()
            previewer.stop()
            with suppress(TimeoutError, asyncio.CancelledError):  # the watcher thread can be slow to notice
                await asyncio.wait_for(watcher, timeout=5)

    async def email_page(request: Request) -> Response:
        width = request.query_params.get("width", "600")
        scheme = request.query_params.get("scheme", "light")
        width = width if width in WIDTHS else "600"
        scheme = scheme if scheme in ("light", "dark") else "light"
        return _shell_page(previewer, "email", width=width, scheme=scheme)

    async def email_html(request: Request) -> Response:
        snapshot = previewer.snapshot
        if snapshot.problems:
            return PlainTextResponse("\n".join(snapshot.problems), status_code=503, headers=NO_STORE)
        scheme = "dark" if request.query_params.get("scheme") == "dark" else "light"
        return HTMLResponse(force_scheme(snapshot.html, scheme), headers=NO_STORE)

    async def email_text(request: Request) -> Response:
        snapshot = previewer.snapshot
        if snapshot.problems:
            return PlainTextResponse("\n".join(snapshot.problems), status_code=503, headers=NO_STORE)
        return PlainTextResponse(snapshot.text, headers=NO_STORE)

    async def site(request: Request) -> Response:
        snapshot = previewer.snapshot
        if snapshot.problems:
            return _shell_page(previewer, "site")
        path = request.path_params["path"]
        path = path + "index.html" if path == "" or path.endswith("/") else path
        body = snapshot.pages.get(path)
        if body is None:
            return HTMLResponse(
                "<!DOCTYPE html><title>Not in the preview</title><p>The preview shows this month's issue page, "
                f'the index and the stylesheet. <a href="/">Back to the email</a></p>{_reload(previewer)}',
                status_code=404,
                headers=NO_STORE,
            )
        if path.endswith(".css"):
            return Response(body, media_type="text/css; charset=utf-8", headers=NO_STORE)
        return HTMLResponse(_with_reload(body, previewer), headers=NO_STORE)

    async def unsubscribe(request: Request) -> Response:
        return HTMLResponse(
            "<!DOCTYPE html><title>Unsubscribe (preview)</title><p>In a sent email, each reader's own unsubscribe "
            'link goes here. The preview unsubscribes nobody. <a href="/">Back to the email</a></p>',
            headers=NO_STORE,
        )

    async def reload(request: Request) -> Response:
        since = request.query_params.get("since", "")

        async def events() -> AsyncIterator[str]:
            yield "retry: 1000\n\n"
            polls = 0
            while not previewer.stopping:
                if str(previewer.generation) != since:
                    yield f"data: {previewer.generation}\n\n"
                    return  # the page reloads and opens a new stream
                polls += 1
                if polls % PING_EVERY == 0:
                    yield ": ping\n\n"  # writing to a page that left ends this stream
                await asyncio.sleep(POLL)

        return StreamingResponse(events(), media_type="text/event-stream", headers=NO_STORE)

    routes = [
        Route("/", email_page, methods=["GET", "HEAD"]),
        Route("/email.html", email_html, methods=["GET", "HEAD"]),
        Route("/email.txt", email_text, methods=["GET", "HEAD"]),
        Route("/site/{path:path}", site, methods=["GET", "HEAD"]),
        Route(UNSUBSCRIBE_PATH, unsubscribe, methods=["GET", "HEAD"]),
        Route("/__reload", reload, methods=["GET"]),
    ]
    # only the names of this machine: a page elsewhere can't rebind its own name to 127.0.0.1 and read the drafts
    hosts = Middleware(TrustedHostMiddleware, allowed_hosts=[HOST, "localhost"])
    return Starlette(routes=routes, middleware=[hosts], lifespan=lifespan)


def _shell_page(previewer: Previewer, view: str, *, width: str = "600", scheme: str = "light") -> HTMLResponse:
    snapshot = previewer.snapshot
    html = _shell.get_template("shell.html").render(
        snapshot=snapshot,
        view=view,
        widths=[(name, label) for name, (label, _) in WIDTHS.items()],
        width=width,
        frame_width=WIDTHS[width][1],
        scheme=scheme,
        reload_script=Markup(_reload(previewer)),
    )
    return HTMLResponse(html, headers=NO_STORE)


def _reload(previewer: Previewer) -> str:
    return RELOAD_SCRIPT % previewer.generation


def _with_reload(body: bytes, previewer: Previewer) -> bytes:
    """A site page as built, plus the reload script (served copies only: built output never has it)."""
    script = _reload(previewer).encode()
    end = body.lower().rfind(b"</body>")
    return body[:end] + script + body[end:] if end >= 0 else body + script


class _Server(uvicorn.Server):
    """Ctrl-C first lets go of the open reload streams; uvicorn waits for open responses before it stops."""

    def __init__(self, config: uvicorn.Config, previewer: Previewer):
        super().__init__(config)
        self.previewer = previewer

    def handle_exit(self, sig: int, frame: object) -> None:
        self.previewer.stopping = True  # a plain flag: safe to set from a signal handler
        super().handle_exit(sig, frame)  # type: ignore[arg-type]


class PreviewServer:
    """A bound socket and the first render: made before serving, so a bad port or an empty archive is an
    error at once, and the URL (with the port `--port 0` picked) can be printed."""

    def __init__(self, config: Config, config_path: Path | None, month: date | None, port: int | None):
        """`config_path`: --config as given (None: $DIGEST_CONFIG or ./digest.toml), read again on each change."""
        self.socket = _listen(config.web.port + 1 if port is None else port)
        self.port = self.socket.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}/"
        unsubscribe_url = f"http://{HOST}:{self.port}{UNSUBSCRIBE_PATH}"
        self.previewer = Previewer(config, find_config(config_path), month, unsubscribe_url)
        try:
            self.first = self.previewer.refresh(first=True)
        except BaseException:
            self.socket.close()
            raise

    def run(self) -> None:
        """Serve until Ctrl-C (or SIGTERM), then stop cleanly."""
        config = uvicorn.Config(
            create_app(self.previewer),
            log_config=None,  # the CLI's logging stays as it is
            log_level="warning",
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=5,
        )
        try:
            _Server(config, self.previewer).run(sockets=[self.socket])
        except KeyboardInterrupt:  # uvicorn raises the captured SIGINT again once it has stopped
            pass
        finally:
            self.socket.close()


def _listen(port: int) -> socket.socket:
    try:
        return socket.create_server((HOST, port))
    except OSError as exc:
        raise PortInUse(
            f"{HOST}:{port}: cannot listen there: {exc.strerror or exc} (pass --port N, or --port 0 for a free one)"
        ) from None
