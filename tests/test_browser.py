"""A real browser (Debian's headless Chromium, driven by Playwright) against a real `digest serve`:
open the archive, subscribe through the form, confirm from the captured mail, trigger a send,
read the issue in the captured mail, and unsubscribe with its link. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from delivery_support import REQUIRE_ALL, digest, smtp_server, write_project  # noqa: F401

from digest.config import load_config
from digest.publish import open_store
from digest.store import subscribers as subs

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
ADMIN = "browser-test-admin"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

if not Path(CHROMIUM).exists():
    if REQUIRE_ALL:
        pytest.fail("chromium is not installed (apt-get install chromium)", pytrace=False)
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(tmp_path, smtp_server):
    """`digest serve` on a free port, mailing through the test's SMTP server; stopped afterwards."""
    port = free_port()
    root = write_project(tmp_path / "site", smtp_port=smtp_server.port)
    toml = root / "digest.toml"
    toml.write_text(toml.read_text().replace("https://links.example.com/", f"http://127.0.0.1:{port}/"))
    digest(root, "build", check=True)
    env = {**os.environ, "DIGEST_SECRET_KEY": "browser-secret", "DIGEST_ADMIN_TOKEN": ADMIN}
    server = subprocess.Popen([sys.executable, "-m", "digest", "serve", "--no-scheduler", "--port", str(port)], cwd=root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield root, base
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def mail_to(smtp_server, address: str, subject_part: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for received in list(smtp_server.messages):
            message = received.message
            if address in received.rcpt_tos and subject_part in str(message["Subject"]):
                return message
        time.sleep(0.1)
    raise AssertionError(f"no mail to {address} about {subject_part!r}")


def test_subscribe_confirm_receive_and_unsubscribe_in_a_browser(served, browser, smtp_server):
    root, base = served
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1000, "height": 900})

    page.goto(base + "/")
    assert page.locator("ol.issue-list li").count() == 1
    assert "February 2025" in page.locator("ol.issue-list li").first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "archive.png"), full_page=True)

    page.fill("#email", "browser.reader@example.com")
    page.click("form.subscribe-form button[type=submit]")
    page.wait_for_load_state()
    assert "Almost done" in page.inner_text("h1")

    confirmation = mail_to(smtp_server, "browser.reader@example.com", "Confirm your subscription")
    link = re.search(r"http://127\.0\.0\.1:\d+/confirm/\S+", confirmation.get_body(("plain",)).get_content()).group(0)
    page.goto(link)
    assert "You're subscribed" in page.inner_text("h1")
    store = open_store(load_config(root / "digest.toml"))
    assert subs.get(store, "browser.reader@example.com").status == "active"

    started = httpx.post(base + "/admin/send", json={"month": "2025-02"}, headers={"authorization": f"Bearer {ADMIN}"})
    assert started.status_code == 202
    run_url = base + started.json()["url"]
    deadline = time.monotonic() + 60
    while (run := httpx.get(run_url, headers={"authorization": f"Bearer {ADMIN}"}).json())["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run["status"] == "succeeded" and run["sent"] == 1, run

    issue = mail_to(smtp_server, "browser.reader@example.com", "February 2025")
    html = issue.get_body(("html",)).get_content()
    email_file = ARTIFACTS / "email.html"
    email_file.write_text(html)
    for width in (375, 800):
        view = browser.new_page(viewport={"width": width, "height": 1200})
        view.goto(email_file.as_uri())
        assert view.get_by_role("link", name="How to Scale Your Model").is_visible()
        overflow = view.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"the email scrolls sideways at {width} px"
        view.screenshot(path=str(ARTIFACTS / f"email-{width}.png"), full_page=True)
        view.close()

    unsubscribe = re.search(r"<(http://127\.0\.0\.1:\d+/unsubscribe/[^>]+)>", issue["List-Unsubscribe"]).group(1)
    assert unsubscribe in html
    page.goto(unsubscribe)
    assert subs.get(store, "browser.reader@example.com").status == "active"  # opening the link alone does nothing
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "You're unsubscribed" in page.inner_text("h1")
    assert subs.get(store, "browser.reader@example.com").status == "unsubscribed"
    store.close()
