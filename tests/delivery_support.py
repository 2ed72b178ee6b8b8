"""Shared helpers for the store and delivery tests: a throwaway project and a real SMTP server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from smtp_sink import Faults, SmtpServer

REPO = Path(__file__).resolve().parent.parent
FEBRUARY = REPO / "content" / "2025" / "02"


def write_project(
    root: Path,
    *,
    smtp_port: int | None = None,
    delivery: str = "",
    smtp: str = "",
    extra: str = "",
    database_url: str | None = None,
) -> Path:
    """A project folder: the shipped February 2025 content and templates, and a digest.toml."""
    shutil.copytree(REPO / "digest" / "theme", root / "templates")
    shutil.copytree(FEBRUARY, root / "content" / "2025" / "02")
    adapter = "smtp" if smtp_port else "outbox"
    config = f"""
[site]
title = "Link Archive"
description = "Monthly links."
author = "A Writer"
base_url = "https://links.example.com/"
timezone = "America/New_York"
sections = ["Articles and Blogs", "Substack", "Papers and Reports", "YouTube and Podcasts", "News"]

[sender]
name = "Link Archive"
address = "digest@links.example.com"

[delivery]
adapter = "{adapter}"
recipients = ["writer@example.com"]
retry_backoff = 0.05
{delivery}
"""
    if database_url:
        config += f'\n[store]\nurl = "{database_url}"\n'
    if smtp_port:
        given = {line.split("=")[0].strip() for line in smtp.splitlines() if "=" in line}
        defaults = {"host": '"127.0.0.1"', "port": str(smtp_port), "security": '"none"', "timeout": "5"}
        table = "".join(f"{k} = {v}\n" for k, v in defaults.items() if k not in given)
        config += f"\n[smtp]\n{table}{smtp}\n"
    (root / "digest.toml").write_text(config + extra)
    return root


def _env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DIGEST_CONFIG"}
    return {**env, "DIGEST_SECRET_KEY": "test-secret", **(extra or {})}


def digest(
    root: Path, *args: str, check: bool = False, env: dict | None = None, **kwargs
) -> subprocess.CompletedProcess:
    """Run the real CLI in `root`, as a user would."""
    kwargs.setdefault("timeout", 120)
    result = subprocess.run(
        [sys.executable, "-m", "digest", *args], cwd=root, env=_env(env), capture_output=True, text=True, **kwargs
    )
    if check and result.returncode != 0:
        raise AssertionError(f"digest {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def start_digest(root: Path, *args: str) -> subprocess.Popen:
    """Start the real CLI in `root` without waiting: for tests that signal or race it."""
    return subprocess.Popen(
        [sys.executable, "-m", "digest", *args],
        cwd=root,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def send_stopped_midway(root: Path, server: SmtpServer, after: int) -> None:
    """`digest send`, stopped with SIGTERM once the server has `after` messages: it must stop gracefully."""
    run = start_digest(root, "send")
    server.recorder.wait_for(after, timeout=60)
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 1 and "stopped:" in out, out + err


def add_subscribers(root: Path, count: int, prefix: str = "reader") -> list[str]:
    addresses = [f"{prefix}{n}@example.com" for n in range(count)]
    csv = root / "subscribers.csv"
    csv.write_text("email,name\n" + "".join(f"{a},Reader {n}\n" for n, a in enumerate(addresses)))
    digest(root, "subscribers", "import", str(csv), check=True)
    return addresses


REQUIRE_ALL = os.environ.get("DIGEST_REQUIRE_ALL_TESTS") == "1"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request) -> str | None:
    """Each store and delivery test runs on SQLite (the default, None here) and on PostgreSQL."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def smtp_server():
    """A real aiosmtpd server on loopback; set `server.recorder.faults` to inject failures."""
    server = SmtpServer(Faults()).start()
    yield server
    server.stop()


@pytest.fixture
def make_project(tmp_path: Path, database_url: str | None):
    """write_project on this test's database (SQLite or PostgreSQL)."""
    count = iter(range(1000))

    def make(**options) -> Path:
        return write_project(tmp_path / f"p{next(count)}", database_url=database_url, **options)

    return make


@pytest.fixture
def smtp_project(make_project, smtp_server: SmtpServer) -> Path:
    return make_project(smtp_port=smtp_server.port)


def issue_counts(root: Path, key: str = "2025-02") -> dict[str, int]:
    """The issue's delivery figures, read from the project's own store."""
    from digest.config import load_config
    from digest.store import deliveries, open_store

    store = open_store(load_config(root / "digest.toml"))
    try:
        return deliveries.counts(store, deliveries.get_issue(store, key).id)
    finally:
        store.close()


def wait_for(predicate, timeout: float, what: str):
    """Poll `predicate` until it is true (returning its value); fail naming `what` after `timeout`."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
