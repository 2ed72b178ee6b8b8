"""Sender workers on PostgreSQL: four processes, one killed mid-run, one started later; exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

import pytest
from delivery_support import add_subscribers, digest, issue_counts, wait_for, write_project

from digest.config import load_config
from digest.store import open_store, workers

pytestmark = pytest.mark.slow

CONNECTIONS = 2


@pytest.fixture
def queued(tmp_path, postgres, smtp_server):
    """A project on PostgreSQL in queue mode with 400 subscribers and February queued."""
    root = write_project(
        tmp_path / "p", smtp_port=smtp_server.port, database_url=postgres.new_database(),
        delivery='mode = "queue"\nbatch_size = 20', smtp=f"connections = {CONNECTIONS}",
    )  # fmt: skip
    addresses = add_subscribers(root, 400)
    queued = digest(root, "send", check=True)
    assert "queued for 400 subscriber(s)" in queued.stdout
    smtp_server.recorder.faults.delay = 0.01
    return root, addresses


class Workers:
    def __init__(self, root):
        self.root = root
        self.processes: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        env = {**os.environ, "DIGEST_SECRET_KEY": "test-secret"}
        process = subprocess.Popen(
            [sys.executable, "-m", "digest", "worker"],
            cwd=self.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.processes.append(process)
        return process

    def stop_all(self) -> list[str]:
        outputs = []
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            out, _ = process.communicate(timeout=60)
            outputs.append(out)
        return outputs


@pytest.fixture
def pool(queued):
    pool = Workers(queued[0])
    yield pool
    for process in pool.processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_four_workers_one_killed_another_started_later_deliver_exactly_once(queued, pool, smtp_server):
    root, addresses = queued
    started = [pool.start() for _ in range(4)]
    wait_for(lambda: len(smtp_server.messages) >= 60, 60, "the first messages")
    victim = started[1]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    at_kill = len(smtp_server.messages)
    assert at_kill < 400
    late = pool.start()
    wait_for(lambda: issue_counts(root)["sent"] == 400, 120, "every delivery recorded")
    outputs = pool.stop_all()
    received = smtp_server.recorder.by_recipient()
    assert set(received) == set(addresses)  # nobody skipped
    duplicates = {address: n for address, n in received.items() if n > 1}
    assert (
        all(n == 2 for n in duplicates.values()) and len(duplicates) <= CONNECTIONS
    )  # at most the dead worker's in-flight
    for address in duplicates:
        assert (
            len({m.message_id for m in smtp_server.messages if address in m.rcpt_tos}) == 1
        )  # resent with the same Message-ID
    final = issue_counts(root)
    assert final["sent"] == 400 and final["sending"] == 0 and final["queued"] == 0
    assert len(duplicates) <= final["resent_unknown"] <= CONNECTIONS  # the resends are reported
    reported = sum(int(out.split("resent ")[1].split(" ")[0]) for out in outputs if "resent " in out)
    assert reported == final["resent_unknown"]
    assert late in pool.processes


def test_status_shows_workers_leases_and_throughput(queued, pool, smtp_server):
    root, _ = queued
    pool.start()
    pool.start()
    wait_for(lambda: len(smtp_server.messages) >= 30, 60, "sending to start")

    def two_running() -> str | None:
        text = digest(root, "status", check=True).stdout
        return text if "workers: 2 running" in text else None

    status = wait_for(two_running, 30, "two workers in status")
    lines = [line for line in status.splitlines() if line.strip().startswith("#")]
    assert len(lines) == 2 and all("claimed" in line and "msg/s" in line and "lease until" in line for line in lines)
    pool.stop_all()


def test_sigterm_gives_claims_back_at_once(queued, pool, smtp_server):
    root, addresses = queued
    smtp_server.recorder.faults.delay = 0.05
    worker = pool.start()
    wait_for(lambda: len(smtp_server.messages) >= 10, 60, "sending to start")
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    state = issue_counts(root)
    assert state["sending"] == 0 and state["sent"] == len(smtp_server.messages)  # nothing held, nothing unrecorded
    store = open_store(load_config(root / "digest.toml"))
    assert all(not w.alive for w in workers.listing(store, include_stopped=True))
    store.close()
    smtp_server.recorder.faults.delay = 0
    drain = digest(root, "worker", "--once", check=True)  # no waiting for a lease to expire
    assert "sent" in drain.stdout
    assert smtp_server.recorder.by_recipient() == Counter({a: 1 for a in addresses})
