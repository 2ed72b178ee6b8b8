"""Fenced worker leases: a worker paused past its lease while another takes its claims over completes
nothing more once it wakes, and two live workers that share a host name (containers) never take each
other for dead. Duplicates are counted at a real aiosmtpd server and compared with `status`; on
SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from delivery_support import add_subscribers, digest, issue_counts, wait_for, write_project

pytestmark = pytest.mark.slow

LEASE = 3  # seconds: renewed every 0.5 s; a worker stops completing messages 2.7 s after its last renewal
COUNT = 150


@pytest.fixture
def queued(tmp_path, database_url, smtp_server):
    root = write_project(
        tmp_path / "p", smtp_port=smtp_server.port, database_url=database_url,
        delivery=f'mode = "queue"\nbatch_size = 10\nlease_seconds = {LEASE}',
    )  # fmt: skip
    addresses = add_subscribers(root, COUNT)
    assert "queued for" in digest(root, "send", check=True).stdout
    smtp_server.recorder.faults.delay = 0.02
    return root, addresses


def start_worker(root, *args: str, prefix: list[str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "DIGEST_SECRET_KEY": "test-secret"}
    return subprocess.Popen(
        [*(prefix or []), sys.executable, "-m", "digest", "worker", *args],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def pause(worker: subprocess.Popen, root) -> None:
    """SIGSTOP the worker outside a write transaction. On SQLite a process stopped inside one holds the
    database's write lock, so no other process can write until it runs again: nobody takes its claims over,
    and there is nothing to fence (the other worker waits, then says the database is locked)."""
    import sqlite3

    database = root / "var" / "digest.sqlite"
    for _ in range(200):
        worker.send_signal(signal.SIGSTOP)
        if not database.exists():  # PostgreSQL: a stopped transaction holds row locks only
            return
        probe = sqlite3.connect(database, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:  # stopped inside a write: let it finish, stop it again
            worker.send_signal(signal.SIGCONT)
            time.sleep(0.005)
        finally:
            probe.close()
    raise AssertionError("the worker was inside a write transaction every time it was stopped")


def assert_exactly_once_but_for_in_flight(root, addresses, server, bound: int) -> Counter:
    received = server.recorder.by_recipient()
    assert set(received) == set(addresses)  # nobody skipped
    duplicates = {a: n for a, n in received.items() if n > 1}
    assert all(n == 2 for n in duplicates.values()) and len(duplicates) <= bound, duplicates
    for address in duplicates:  # a resend carries the same Message-ID
        assert len({m.message_id for m in server.messages if address in m.rcpt_tos}) == 1
    final = issue_counts(root)
    assert final["sent"] == len(addresses) and final["sending"] == 0 and final["queued"] == 0
    assert len(duplicates) <= final["resent_unknown"]  # `status` counts every resend
    return received


def test_a_worker_paused_past_its_lease_completes_nothing_after_a_takeover(queued, smtp_server):
    root, addresses = queued
    first = start_worker(root)
    try:
        wait_for(lambda: len(smtp_server.messages) >= 20, 60, "the first messages")
        pause(first, root)
        paused_at = len(smtp_server.messages)
        time.sleep(LEASE + 1)  # past its lease
        second = start_worker(root, "--once")  # reaps the silent worker and takes its claims over
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        first.send_signal(signal.SIGCONT)
        _, first_err = first.communicate(timeout=60)  # it notices at once and stops
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode is not None and "lease" in first_err, first_err
    assert paused_at < COUNT
    received = assert_exactly_once_but_for_in_flight(root, addresses, smtp_server, bound=1)  # one connection
    assert sum(received.values()) <= COUNT + 1
    status = digest(root, "status", "--month", "2025-02", check=True).stdout
    assert "sent 150" in status


@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is needed for a PID namespace")
def test_two_live_workers_sharing_a_host_name_never_take_each_other_for_dead(queued, smtp_server):
    root, addresses = queued
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a PID namespace here: {probe.stderr.decode().strip()}")
    # the second worker in its own PID namespace with its own /proc: same host name and kernel, as two
    # containers are; long enough that each reaps (every lease) while the other is still sending
    smtp_server.recorder.faults.delay = 0.08
    alone = ["unshare", "--pid", "--fork", "--mount-proc"]
    pool = [start_worker(root, "--once"), start_worker(root, "--once", prefix=alone)]
    try:
        results = [p.communicate(timeout=120) for p in pool]
    finally:
        for process in pool:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [p.returncode for p in pool] == [0, 0], [err for _, err in results]
    received = assert_exactly_once_but_for_in_flight(root, addresses, smtp_server, bound=0)
    assert all(n == 1 for n in received.values())  # no takeover at all: nobody was resent
    assert issue_counts(root)["resent_unknown"] == 0
