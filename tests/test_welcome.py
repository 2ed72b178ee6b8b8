"""The welcome mail after a confirmation: its own templates through the issue's MJML path, sent
through the configured adapter with an issue's headers; once per confirmation; never undoing it.

Real parts: the web app through Starlette's test client, the real store, the outbox adapter and a
real SMTP server (aiosmtpd), real tokens.
"""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from delivery_support import digest, write_project
from smtp_sink import SmtpServer, free_port
from starlette.testclient import TestClient

from digest import tokens
from digest.config import load_config
from digest.store import SubscriberStatus, open_store
from digest.store import subscribers as subs
from digest.web import create_app

SECRET = "test-secret"
BASE = "https://links.example.com"


def pending(root: Path, address: str) -> str:
    """A pending sign-up and its confirmation path, as the confirmation mail carries it."""
    store = open_store(load_config(root / "digest.toml"))
    sub, _ = subs.add(store, address, "Ada Reader", status=SubscriberStatus.PENDING)
    store.close()
    return "/confirm/" + tokens.make_token(SECRET, "confirm", tokens.TokenSubject(address, sub.id))


def confirm(root: Path, path: str, clicks: int = 1) -> list[int]:
    app = create_app(load_config(root / "digest.toml"))
    with TestClient(app, base_url=BASE) as client:  # background tasks run before the call returns
        return [client.get(path).status_code for _ in range(clicks)]


def status(root: Path, address: str) -> SubscriberStatus:
    store = open_store(load_config(root / "digest.toml"))
    try:
        return subs.get(store, address).status
    finally:
        store.close()


def welcomes(root: Path):
    return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in (root / "outbox").rglob("welcome.*")]


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv("DIGEST_SECRET_KEY", SECRET)


def test_a_confirmed_reader_gets_a_welcome_with_the_latest_issue_and_a_one_click_unsubscribe(tmp_path):
    root = write_project(tmp_path / "p")
    digest(root, "subscribers", "add", "writer@example.com", check=True)
    digest(root, "send", check=True)  # February 2025 goes out: the latest issue
    path = pending(root, "ada@example.com")

    assert confirm(root, path) == [200]

    [mail] = welcomes(root)
    assert mail["To"] == "Ada Reader <ada@example.com>"
    assert mail["Subject"] == "Welcome to Link Archive"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["List-Id"] == "Link Archive <digest.links.example.com>"
    assert mail["Message-ID"] == tokens.message_id(SECRET, "welcome", "ada@example.com", "links.example.com")
    links = re.findall(r"<([^>]+)>", mail["List-Unsubscribe"])
    assert links[1] == "mailto:digest@links.example.com?subject=unsubscribe"
    assert tokens.read_token(SECRET, "unsubscribe", links[0].rsplit("/", 1)[1]).address == "ada@example.com"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    for part in (text, html):
        assert "https://links.example.com/2025/02/" in part  # the latest issue
        assert links[0] in part  # how to leave: their own link, in the body too
    assert "February 2025" in text and "%%UNSUBSCRIBE" not in text + html
    assert all(len(line) <= 76 or line.startswith("https://") for line in text.splitlines())  # a URL stands alone
    assert 'lang="en"' in html and "color-scheme" in html  # the MJML path: the issue's head and dark mode

    # the link works: one POST and the reader is gone
    provider = TestClient(create_app(load_config(root / "digest.toml")), base_url=BASE)
    assert provider.post(links[0].removeprefix(BASE)).status_code == 200
    assert status(root, "ada@example.com") == SubscriberStatus.UNSUBSCRIBED


def test_before_any_issue_the_welcome_says_the_first_is_coming(tmp_path):
    root = write_project(tmp_path / "p")
    confirm(root, pending(root, "ada@example.com"))
    [mail] = welcomes(root)
    assert "The first issue is on its way" in mail.get_body(("plain",)).get_content()
    assert "2025/02" not in mail.get_body(("html",)).get_content()


def test_one_welcome_per_confirmation_however_often_the_link_is_followed(tmp_path):
    server = SmtpServer().start()
    try:
        root = write_project(tmp_path / "p", smtp_port=server.port)
        assert confirm(root, pending(root, "ada@example.com"), clicks=3) == [200, 200, 200]
        assert [m.rcpt_tos for m in server.messages] == [["ada@example.com"]]
        assert server.messages[0].message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    finally:
        server.stop()


def test_welcome_false_sends_nothing(tmp_path):
    root = write_project(tmp_path / "p", extra="\n[subscribe]\nwelcome = false\n")
    assert confirm(root, pending(root, "ada@example.com")) == [200]
    assert welcomes(root) == [] and status(root, "ada@example.com") == SubscriberStatus.ACTIVE


def test_a_failed_welcome_never_undoes_the_confirmation(tmp_path, caplog):
    root = write_project(tmp_path / "p", smtp_port=free_port())  # nothing listens there
    assert confirm(root, pending(root, "ada@example.com")) == [200]
    assert status(root, "ada@example.com") == SubscriberStatus.ACTIVE
    assert any("welcome to ada@example.com failed" in r.getMessage() for r in caplog.records)


def test_a_broken_welcome_template_is_logged_and_the_reader_stays_subscribed(tmp_path, caplog):
    root = write_project(tmp_path / "p")
    (root / "templates" / "welcome.mjml").write_text("<mjml>{% if %}</mjml>\n")  # the writer's override, broken
    assert confirm(root, pending(root, "ada@example.com")) == [200]
    assert status(root, "ada@example.com") == SubscriberStatus.ACTIVE
    assert any("welcome.mjml:1: template syntax error" in r.getMessage() for r in caplog.records)


def test_without_a_welcome_override_the_theme_welcomes(tmp_path):
    root = write_project(tmp_path / "p")
    (root / "templates" / "welcome.mjml").unlink()  # a site overrides only what it changes
    assert confirm(root, pending(root, "ada@example.com")) == [200]
    assert status(root, "ada@example.com") == SubscriberStatus.ACTIVE
