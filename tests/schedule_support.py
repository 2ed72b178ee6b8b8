"""Helpers for the scheduler tests: near-future triggers, a project with subscribers, polling."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

from delivery_support import write_project
from smtp_sink import free_port

from digest.config import load_config
from digest.store import open_store
from digest.store import runs as run_log
from digest.store import subscribers as subs

SITE_TZ = ZoneInfo("America/New_York")  # write_project's [site] timezone
T = TypeVar("T")


def soon(seconds: float) -> datetime:
    """A whole second at least `seconds` from now, in the site's time zone (the unit cron fires on)."""
    when = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0) + timedelta(seconds=1)
    return when.astimezone(SITE_TZ)


def daily_at(fire: datetime, **keys: object) -> str:
    """A [schedule] table that fires every day at `fire`'s local time of day: next at `fire`, then a day later."""
    local = fire.astimezone(SITE_TZ)
    lines = [
        "[schedule]",
        'day = "*"',
        f'hour = "{local.hour}"',
        f'minute = "{local.minute}"',
        f'second = "{local.second}"',
    ]
    return "\n".join(lines + [f"{key} = {_toml(value)}" for key, value in keys.items()]) + "\n"


def schedule_table(**keys: object) -> str:
    return "[schedule]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in keys.items())


def _toml(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def month_key(when: datetime) -> str:
    return f"{when.astimezone(SITE_TZ):%Y-%m}"


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def sleep_until(when: datetime) -> None:
    delay = (when - datetime.now(UTC)).total_seconds()
    if delay > 0:
        time.sleep(delay)


def call_with_timeout(function: Callable[[], T], timeout: float = 5.0) -> T:
    """Run `function` in a thread; fail (rather than hang the suite) if it never returns."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(function()), daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError(
            f"{getattr(function, '__name__', function)} did not return within {timeout:g} s (endless loop?)"
        )
    return result[0]


class Site:
    """A project folder on a real SQLite database, with its subscribers; polled by the tests."""

    def __init__(self, root: Path, *, smtp_port: int | None, schedule: str = "", delivery: str = ""):
        self.root = write_project(root, smtp_port=smtp_port, extra=schedule, delivery=delivery)
        self.config_path = self.root / "digest.toml"
        self._store = None
        self.active: list[str] = []

    @property
    def store(self):
        if self._store is None:  # opened on first use: some tests only ever see an invalid digest.toml
            self._store = open_store(self.config)
        return self._store

    @property
    def config(self):
        return load_config(self.config_path)

    def set_schedule(self, schedule: str) -> None:
        text = self.config_path.read_text()
        head = text.split("[schedule]")[0]
        self.config_path.write_text(head + schedule)

    def add_readers(self, count: int = 4) -> list[str]:
        """`count` active subscribers, plus one who left and one who never confirmed (both get nothing)."""
        self.active = [f"reader{n}@example.com" for n in range(count)]
        for n, address in enumerate(self.active):
            subs.add(self.store, address, f"Reader {n}")
        subs.add(self.store, "left@example.com", status=subs.SubscriberStatus.UNSUBSCRIBED)
        subs.add(self.store, "pending@example.com", status=subs.SubscriberStatus.PENDING)
        return self.active

    def add_entry(self, when: datetime, name: str = "scheduled-link.md", text: str | None = None) -> Path:
        """A valid entry dated `when`'s local day, so that month has something to publish."""
        local = when.astimezone(SITE_TZ)
        path = self.root / "content" / f"{local:%Y}" / f"{local:%m}" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            text
            if text is not None
            else (
                f"---\ntitle: The Link For {local:%B %Y}\nurl: https://example.org/{local:%Y-%m}/link\n"
                f"date: {local:%Y-%m-%d}\nsection: Articles and Blogs\n---\n\nWhy it is worth reading.\n"
            )
        )
        return path

    def runs(self) -> list[run_log.Run]:
        return sorted(run_log.recent(self.store, 100), key=lambda r: r.started_at)

    def scheduled_runs(self, status: str | None = None) -> list[run_log.Run]:
        return [r for r in self.runs() if r.kind == "scheduled" and (status is None or r.status == status)]

    def finished_runs(self) -> list[run_log.Run]:
        return [r for r in self.runs() if r.status != "running"]

    def lease(self) -> tuple[str, datetime] | None:
        return run_log.lease_holder(self.store, "scheduler")

    def stored_jobs(self) -> list[tuple[str, float]]:
        """The APScheduler job store's rows (id, next run as a Unix time), read straight from the database."""
        from sqlalchemy import text

        with self.store.read() as conn:
            return [tuple(row) for row in conn.execute(text("SELECT id, next_run_time FROM apscheduler_jobs"))]

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


class Serve:
    """A real `digest -v serve --port <free>` process in the project folder."""

    def __init__(self, root: Path):
        self.port = free_port()
        env = {**os.environ, "DIGEST_SECRET_KEY": "test-secret"}
        env.pop("DIGEST_CONFIG", None)
        env.pop("DIGEST_DATABASE_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "digest", "-v", "serve", "--port", str(self.port)],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout = self.stderr = ""

    @property
    def holder(self) -> str:
        return f"{socket.gethostname()}:{self.process.pid}"

    def wait_up(self, timeout: float = 15.0) -> Serve:
        def listening() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"digest serve exited {self.process.returncode}: {self.process.communicate()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False

        wait_until(listening, timeout, "digest serve to listen")
        return self

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        self.stdout, self.stderr = self.process.communicate(timeout=timeout)
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=10)
