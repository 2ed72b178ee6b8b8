"""Faults beyond a flaky recipient: hangs, cut connections, a server that refuses everything, TLS
failures, a full disk, a locked database. After each, the delivery log is consistent and the next
run completes the send."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from delivery_support import add_subscribers, digest
from smtp_sink import CuttingServer

from digest import publish
from digest.config import load_config
from digest.errors import StoreError
from digest.store import deliveries as ledger
from digest.store import open_store
from digest.store import subscribers as subs


def ledger_counts(root: Path) -> dict[str, int]:
    store = open_store(load_config(root / "digest.toml"))
    try:
        issue = ledger.get_issue(store, "2025-02")
        return ledger.counts(store, issue.id) if issue else {}
    finally:
        store.close()


def consistent(root: Path, received: Counter) -> dict[str, int]:
    """No delivery is left claimed, and every recorded send reached the server."""
    counts = ledger_counts(root)
    assert counts["sending"] == 0
    assert counts["sent"] == len(received)
    return counts


@pytest.mark.slow
def test_a_server_that_hangs_after_data(make_project, smtp_server):
    root = make_project(smtp_port=smtp_server.port, smtp="timeout = 1")
    addresses = add_subscribers(root, 6)
    smtp_server.recorder.faults.hang_once = {addresses[2]}
    result = digest(root, "send")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "retried 1" in result.stdout
    received = smtp_server.recorder.by_recipient()
    assert received == Counter({a: 1 for a in addresses})
    consistent(root, received)


@pytest.mark.slow
def test_a_server_that_closes_in_the_middle_of_a_message(make_project):
    server = CuttingServer(cut_once={"reader1@example.com", "reader4@example.com"})
    try:
        root = make_project(smtp_port=server.port)
        addresses = add_subscribers(root, 6)
        result = digest(root, "send")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "retried 2" in result.stdout
        received = server.by_recipient()
        assert received == Counter({a: 1 for a in addresses})
        consistent(root, received)
    finally:
        server.stop()


@pytest.mark.slow
def test_a_server_that_answers_421_to_everything(make_project, smtp_server):
    root = make_project(smtp_port=smtp_server.port, delivery="max_attempts = 3")
    addresses = add_subscribers(root, 4)
    smtp_server.recorder.faults.mail_reply = "421 4.3.2 System shutting down"
    result = digest(root, "send")
    assert result.returncode == 1 and "sent 0" in result.stdout and "failed 4" in result.stdout
    status = digest(root, "status", "--month", "2025-02", check=True).stdout
    assert status.count("gave up after 3 attempts: 421 4.3.2 System shutting down") == 4
    store = open_store(load_config(root / "digest.toml"))
    assert {subs.get(store, a).status for a in addresses} == {"active"}  # a busy server is nobody's bounce
    store.close()
    consistent(root, Counter())
    smtp_server.recorder.faults.mail_reply = None
    healed = digest(root, "send", "--retry-failed")
    assert healed.returncode == 0 and "sent 4" in healed.stdout
    consistent(root, smtp_server.recorder.by_recipient())


@pytest.mark.slow
def test_a_tls_handshake_failure_is_a_clear_error_and_sends_nothing(make_project, smtp_server):
    root = make_project(smtp_port=smtp_server.port, smtp='security = "tls"')
    add_subscribers(root, 3)
    result = digest(root, "send")
    assert result.returncode == 1
    assert f"error: SMTP server 127.0.0.1:{smtp_server.port}: TLS handshake failed" in result.stderr
    assert "Traceback" not in result.stderr
    counts = ledger_counts(root)
    assert counts["sent"] == 0 and counts["sending"] == 0 and counts["queued"] == 3
    toml = root / "digest.toml"
    toml.write_text(toml.read_text().replace('security = "tls"', 'security = "none"'))
    assert digest(root, "send").returncode == 0
    consistent(root, smtp_server.recorder.by_recipient())


@pytest.mark.slow
def test_a_write_failure_under_the_outbox(make_project, monkeypatch):
    root = make_project(delivery="max_attempts = 2")
    add_subscribers(root, 6)
    config = load_config(root / "digest.toml")
    import digest.delivery.outbox as outbox

    real_write, written = outbox.write_atomic, []

    def failing_write(path, data, **kwargs):
        if len(written) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(path)
        return real_write(path, data, **kwargs)

    monkeypatch.setattr(outbox, "write_atomic", failing_write)
    monkeypatch.setenv("DIGEST_SECRET_KEY", "test-secret")
    report = publish.send(config, publish.render(config))
    assert (report.stats.sent, report.stats.failed) == (3, 3)
    files = sorted((root / "outbox").rglob("*.eml"))
    assert len(files) == 3 and report.after["sent"] == 3 and report.after["sending"] == 0
    status = digest(root, "status", "--month", "2025-02", check=True).stdout
    assert status.count("No space left on device") == 3
    monkeypatch.setattr(outbox, "write_atomic", real_write)
    again = publish.send(config, publish.render(config), retry_failed=True)
    assert again.stats.sent == 3 and again.after["sent"] == 6
    assert len(sorted((root / "outbox").rglob("*.eml"))) == 6


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_really_full_disk_under_the_outbox(make_project):
    root = make_project(delivery="max_attempts = 2")
    add_subscribers(root, 8)
    outbox = root / "outbox"
    outbox.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(outbox)], check=True)
    try:
        result = digest(root, "send")
        assert result.returncode == 1
        files = list(outbox.rglob("*.eml"))
        assert 0 < len(files) < 8
        assert all(f.stat().st_size > 20_000 for f in files)  # whole messages only: the rest never appeared
        assert not [f for f in outbox.rglob("*") if f.is_file() and not f.name.endswith(".eml")]  # no temp files left
        counts = ledger_counts(root)
        assert counts["sent"] == len(files) and counts["failed"] == 8 - len(files) and counts["sending"] == 0
        subprocess.run(["mount", "-o", "remount,size=1m", str(outbox)], check=True)
        healed = digest(root, "send", "--retry-failed")
        assert healed.returncode == 0
        assert len(list(outbox.rglob("*.eml"))) == 8
    finally:
        subprocess.run(["umount", str(outbox)], check=False)


@pytest.mark.slow
def test_a_locked_database_is_waited_for(tmp_path, smtp_server):
    from delivery_support import write_project

    root = write_project(tmp_path / "p", smtp_port=smtp_server.port)
    addresses = add_subscribers(root, 5)
    database = root / "var" / "digest.sqlite"
    locker = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN IMMEDIATE")
    threading.Timer(2.0, lambda: locker.execute("ROLLBACK")).start()
    started = time.monotonic()
    result = digest(root, "send")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 1.5
    assert smtp_server.recorder.by_recipient() == Counter({a: 1 for a in addresses})
    locker.close()


@pytest.mark.slow
def test_a_database_locked_too_long_is_a_clear_error_and_the_next_run_completes(tmp_path, smtp_server, monkeypatch):
    from delivery_support import write_project

    import digest.store as store_module

    root = write_project(tmp_path / "p", smtp_port=smtp_server.port)
    addresses = add_subscribers(root, 5)
    monkeypatch.setenv("DIGEST_SECRET_KEY", "test-secret")
    config = load_config(root / "digest.toml")
    rendered = publish.render(config)
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 300)
    locker = sqlite3.connect(root / "var" / "digest.sqlite", isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreError, match="database is locked"):
        publish.send(config, rendered)
    locker.execute("ROLLBACK")
    locker.close()
    assert smtp_server.messages == []
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 30_000)
    result = digest(root, "send")
    assert result.returncode == 0, result.stderr
    assert smtp_server.recorder.by_recipient() == Counter({a: 1 for a in addresses})
    consistent(root, smtp_server.recorder.by_recipient())
