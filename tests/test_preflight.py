"""`check --month` predicts `send`: the same sample message is composed and read back before anything is
queued by `send` (and its dry run), `publish`, the monthly job, the admin send and the workers."""

from __future__ import annotations

import shutil
import threading
from datetime import date

import pytest
from delivery_support import REPO, add_subscribers, digest, write_project
from starlette.testclient import TestClient

from digest import publish
from digest.config import load_config
from digest.delivery.dispatch import run_worker
from digest.delivery.preflight import problems
from digest.errors import SendRefused
from digest.store import deliveries as ledger
from digest.store import open_store
from digest.store.runs import RunStatus

DECEMBER = date(2024, 12, 1)
REFUSE = '\n[email]\noverflow = "refuse"\n'


@pytest.fixture
def december(make_project):
    """The shipped December 2024 (too long for one email) and February 2025, with three subscribers."""
    root = make_project(extra=REFUSE)
    shutil.copytree(REPO / "content" / "2024" / "12", root / "content" / "2024" / "12")
    add_subscribers(root, 3)
    return root


def queued(root) -> dict[str, int]:
    store = open_store(load_config(root / "digest.toml"))
    try:
        stored = ledger.get_issue(store, "2024-12")
        return ledger.counts(store, stored.id) if stored else {}
    finally:
        store.close()


def test_the_shipped_months_pass_the_preflight(tmp_path):
    root = write_project(tmp_path / "p")
    shutil.copytree(REPO / "content" / "2024" / "12", root / "content" / "2024" / "12")
    config = load_config(root / "digest.toml")
    for month in (date(2025, 2, 1), DECEMBER):
        assert problems(publish.render(config, month).email, config) == []


@pytest.mark.slow
def test_send_and_its_dry_run_refuse_before_queueing(december):
    for args in (["send", "--month", "2024-12", "--dry-run"], ["send", "--month", "2024-12"]):
        result = digest(december, *args)
        assert result.returncode == 1 and "over [email] max_html_bytes" in result.stderr, result.stderr
        assert "2024-12: nothing was queued or sent" in result.stderr and "Traceback" not in result.stderr
    assert queued(december) == {} and not (december / "outbox").exists()
    status = digest(december, "status").stdout
    assert "crash" not in status


@pytest.mark.slow
def test_publish_refuses_before_writing_the_site(december):
    result = digest(december, "publish", "--month", "2024-12")
    assert result.returncode == 1 and not (december / "output").exists() and queued(december) == {}


def test_the_admin_send_answers_409_and_queues_nothing(december, monkeypatch):
    from digest.web import create_app

    monkeypatch.setenv("DIGEST_SECRET_KEY", "s")
    monkeypatch.setenv("DIGEST_ADMIN_TOKEN", "admin-token")
    app = create_app(load_config(december / "digest.toml"))
    try:
        with TestClient(app, base_url="https://links.example.com") as client:
            answer = client.post(
                "/admin/send", json={"month": "2024-12"}, headers={"authorization": "Bearer admin-token"}
            )
    finally:
        app.state.digest.store.close()
    assert answer.status_code == 409, answer.text
    assert any("max_html_bytes" in p for p in answer.json()["problems"])
    assert queued(december) == {}


def test_the_monthly_job_fails_its_run_and_sends_nothing(december):
    from digest import jobs

    config = load_config(december / "digest.toml")
    store = open_store(config)
    try:
        run = jobs.run_scheduled(store, config, DECEMBER)
        assert run.status == RunStatus.FAILED and "max_html_bytes" in run.detail
        assert ledger.get_issue(store, "2024-12") is None
    finally:
        store.close()
    assert not (december / "outbox").exists()


@pytest.mark.slow
def test_a_worker_does_not_send_an_issue_that_fails_the_preflight(december, caplog):
    link = december / "digest.toml"
    link.write_text(link.read_text().replace(REFUSE, ""))  # queued while the email was cut to fit
    assert digest(december, "send", "--month", "2024-12", "--queue-only").returncode == 0
    assert queued(december)["queued"] == 3
    link.write_text(link.read_text() + '\n[email]\noverflow = "refuse"\nmax_html_bytes = 20000\n')
    config = load_config(link)
    store = open_store(config)
    try:
        stats = run_worker(config, store, stop=threading.Event(), once=True)
    finally:
        store.close()
    assert stats.sent == 0 and queued(december)["queued"] == 3 and not (december / "outbox").exists()
    assert "2024-12 is not sent" in caplog.text and "max_html_bytes" in caplog.text


def test_a_preflight_failure_names_every_problem():
    error = SendRefused("2025-02", [])
    assert str(error) == "2025-02: nothing was queued or sent"
