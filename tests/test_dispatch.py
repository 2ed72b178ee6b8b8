"""Every active subscriber gets each issue exactly once: faults, reruns, concurrency, kill -9."""

from __future__ import annotations

import os
import signal
from collections import Counter

import pytest
from delivery_support import add_subscribers, digest, issue_counts, send_stopped_midway, start_digest

from digest.config import load_config
from digest.store import open_store
from digest.store import subscribers as subs


def test_each_active_subscriber_receives_exactly_one_message(smtp_project, smtp_server):
    addresses = add_subscribers(smtp_project, 30)
    result = digest(smtp_project, "send", "--month", "2025-02")
    assert result.returncode == 0, result.stderr
    assert smtp_server.recorder.by_recipient() == Counter({a: 1 for a in addresses})
    assert "sent 30, retried 0, failed 0, skipped 0 already sent" in result.stdout
    ids = {m.message_id for m in smtp_server.messages}
    assert len(ids) == 30


@pytest.mark.slow
def test_a_second_send_sends_nothing_and_says_so(smtp_project, smtp_server):
    add_subscribers(smtp_project, 5)
    digest(smtp_project, "send", check=True)
    again = digest(smtp_project, "send", check=True)
    assert "sent 0, retried 0, failed 0, skipped 5 already sent" in again.stdout
    assert len(smtp_server.messages) == 5


@pytest.mark.slow
def test_temporary_failures_are_retried_and_permanent_ones_bounce(smtp_project, smtp_server):
    addresses = add_subscribers(smtp_project, 12)
    smtp_server.recorder.faults.rcpt_once = {
        addresses[1]: "451 4.7.1 try again later",
        addresses[2]: "421 4.3.2 closing",
    }
    smtp_server.recorder.faults.rcpt = {addresses[3]: "550 5.1.1 no such user"}
    result = digest(smtp_project, "send")
    assert result.returncode == 1  # a permanent failure is a non-zero exit
    received = smtp_server.recorder.by_recipient()
    assert received == Counter({a: 1 for a in addresses if a != addresses[3]})
    assert "sent 11, retried 2, failed 1" in result.stdout
    store = open_store(load_config(smtp_project / "digest.toml"))
    assert subs.get(store, addresses[3]).status == "bounced"
    assert subs.get(store, addresses[1]).status == "active"
    status = digest(smtp_project, "status", "--month", "2025-02", check=True).stdout
    assert f"failed: {addresses[3]}: 550 5.1.1 no such user" in status


@pytest.mark.slow
def test_a_dropped_connection_mid_batch_loses_and_duplicates_nothing(smtp_project, smtp_server):
    addresses = add_subscribers(smtp_project, 20)
    smtp_server.recorder.faults.drop_after = 7  # the 8th DATA gets no reply: the socket just closes
    result = digest(smtp_project, "send")
    assert result.returncode == 0, result.stdout + result.stderr
    assert smtp_server.recorder.by_recipient() == Counter({a: 1 for a in addresses})
    assert "retried 1" in result.stdout


@pytest.mark.slow
def test_a_slow_server_still_gets_everything_once(make_project, smtp_server):
    project = make_project(smtp_port=smtp_server.port, smtp="connections = 3")
    addresses = add_subscribers(project, 9)
    smtp_server.recorder.faults.delay = 0.3
    result = digest(project, "send")
    assert result.returncode == 0, result.stderr
    assert smtp_server.recorder.by_recipient() == Counter({a: 1 for a in addresses})


@pytest.mark.slow
def test_temporary_failures_give_up_after_max_attempts(make_project, smtp_server):
    project = make_project(smtp_port=smtp_server.port, delivery="max_attempts = 3")
    addresses = add_subscribers(project, 3)
    smtp_server.recorder.faults.rcpt = {addresses[0]: "452 4.2.2 mailbox full"}
    result = digest(project, "send")
    assert result.returncode == 1
    assert smtp_server.recorder.attempts[addresses[0]] == 3
    assert issue_counts(project)["failed"] == 1
    store = open_store(load_config(project / "digest.toml"))
    assert subs.get(store, addresses[0]).status == "active"  # a full mailbox is not a hard bounce
    # --retry-failed tries the permanent failures on purpose
    smtp_server.recorder.faults.rcpt = {}
    retried = digest(project, "send", "--retry-failed")
    assert retried.returncode == 0, retried.stdout
    assert smtp_server.recorder.by_recipient()[addresses[0]] == 1


@pytest.mark.slow
def test_unsubscribed_and_bounced_subscribers_get_nothing(smtp_project, smtp_server):
    addresses = add_subscribers(smtp_project, 6)
    digest(smtp_project, "subscribers", "remove", addresses[0], check=True)
    store = open_store(load_config(smtp_project / "digest.toml"))
    subs.set_status(store, subs.get(store, addresses[1]).id, subs.SubscriberStatus.BOUNCED)
    digest(smtp_project, "subscribers", "add", "pending@example.com", "--pending", check=True)
    digest(smtp_project, "send", check=True)
    assert set(smtp_server.recorder.by_recipient()) == set(addresses[2:])


@pytest.mark.slow
def test_test_copies_and_dry_runs_record_nothing(smtp_project, smtp_server):
    add_subscribers(smtp_project, 4)
    dry = digest(smtp_project, "send", "--dry-run", check=True)
    assert "would go to 4 subscriber(s)" in dry.stdout
    digest(smtp_project, "send", "--to", "me@example.com", check=True)
    digest(smtp_project, "send", "--preview", check=True)
    assert smtp_server.recorder.by_recipient() == Counter({"me@example.com": 1, "writer@example.com": 1})
    real = digest(smtp_project, "send", check=True)
    assert "sent 4" in real.stdout and "skipped 0 already sent" in real.stdout


@pytest.mark.slow
def test_two_concurrent_sends_deliver_once(make_project, smtp_server):
    """Each subscriber gets one message, however the two runs interleave: which run sends whom, and whether
    the second starts before the first is done, is up to the scheduler and asserted nowhere."""
    project = make_project(smtp_port=smtp_server.port, smtp="connections = 2", delivery="batch_size = 5")
    addresses = add_subscribers(project, 120)
    smtp_server.recorder.faults.delay = 0.005  # a slower server makes the runs more likely to overlap
    runs = [start_digest(project, "send") for _ in range(2)]
    outputs = [r.communicate(timeout=120) for r in runs]
    assert all(r.returncode == 0 for r in runs), outputs
    assert smtp_server.recorder.by_recipient() == Counter({a: 1 for a in addresses})
    assert issue_counts(project)["sent"] == 120


@pytest.mark.slow
def test_kill_9_mid_send_then_rerun_serves_everyone_with_at_most_connections_duplicates(make_project, smtp_server):
    connections = 3
    project = make_project(smtp_port=smtp_server.port, smtp=f"connections = {connections}", delivery="batch_size = 10")
    addresses = add_subscribers(project, 150)
    smtp_server.recorder.faults.delay = 0.01
    victim = start_digest(project, "send")
    smtp_server.recorder.wait_for(40, timeout=60)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    before = len(smtp_server.messages)
    assert 40 <= before < 150
    rerun = digest(project, "send")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    received = smtp_server.recorder.by_recipient()
    assert set(received) == set(addresses)  # nobody skipped
    duplicates = {a: n for a, n in received.items() if n > 1}
    assert all(n == 2 for n in duplicates.values())
    assert len(duplicates) <= connections
    for address in duplicates:  # a resend carries the same Message-ID
        ids = {m.message_id for m in smtp_server.messages if address in m.rcpt_tos}
        assert len(ids) == 1
    reported = int(rerun.stdout.split("resent ")[1].split(" ")[0]) if "resent " in rerun.stdout else 0
    assert len(duplicates) <= reported <= connections
    assert issue_counts(project)["sent"] == 150


@pytest.mark.slow
def test_sigterm_stops_gracefully_and_a_rerun_finishes(make_project, smtp_server):
    project = make_project(smtp_port=smtp_server.port, delivery="batch_size = 10")
    addresses = add_subscribers(project, 80)
    smtp_server.recorder.faults.delay = 0.02
    send_stopped_midway(project, smtp_server, after=10)
    counts = issue_counts(project)
    assert counts["sending"] == 0  # everything in flight was recorded or given back
    assert counts["sent"] == len(smtp_server.messages)
    digest(project, "send", check=True)
    assert smtp_server.recorder.by_recipient() == Counter({a: 1 for a in addresses})


@pytest.mark.slow
def test_status_shows_the_figures(smtp_project, smtp_server):
    add_subscribers(smtp_project, 3)
    digest(smtp_project, "send", check=True)
    status = digest(smtp_project, "status", check=True).stdout
    assert "subscribers: 3 active" in status
    assert "2025-02: finished; sent 3, queued 0, in flight 0, failed 0" in status


@pytest.mark.slow
@pytest.mark.parametrize("adapter", ["outbox", "console"])
def test_other_adapters_record_deliveries_too(make_project, adapter):
    project = make_project()
    add_subscribers(project, 3)
    result = digest(project, "send", "--adapter", adapter, check=True)
    assert "sent 3" in result.stdout
    if adapter == "outbox":
        assert len(list((project / "outbox" / "2025-02").glob("*.eml"))) == 3
    else:
        assert result.stdout.count("To: reader") == 3
