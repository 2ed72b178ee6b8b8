"""A real browser (Debian's headless Chromium, driven by Playwright) against a real `digest serve`
that mails through a real SMTP server: open the archive, subscribe through the form, confirm from
the captured mail, trigger a send, read the issue in the captured mail at phone and desktop widths,
and unsubscribe with its link. Screenshots go to tests/artifacts/ (gitignored)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from delivery_support import REQUIRE_ALL, digest, write_project
from smtp_sink import free_port

from digest.config import load_config
from digest.store import SubscriberStatus, open_store
from digest.store import subscribers as subs

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
ADMIN = "browser-test-admin"
SECRET = "browser-test-secret"
READER = "browser.reader@example.com"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def missing(reason: str) -> None:
    """Skip, unless DIGEST_REQUIRE_ALL_TESTS=1 asks for every test to run: then fail."""
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (DIGEST_REQUIRE_ALL_TESTS=1: this test may not be skipped)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        missing(
            f"{CHROMIUM} is missing: Chromium is the one thing the browser tests take from the system, not from pip "
            "(apt-get install chromium)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing('the playwright Python package is not installed (pip install -e ".[test]")')
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def served(tmp_path, smtp_server):
    """`digest serve --no-scheduler` on a free port, mailing through the test's SMTP server; stopped at the end."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    root = write_project(tmp_path / "site", smtp_port=smtp_server.port)
    toml = root / "digest.toml"
    toml.write_text(toml.read_text().replace('base_url = "https://links.example.com/"', f'base_url = "{base}/"'))
    env = {"DIGEST_SECRET_KEY": SECRET, "DIGEST_ADMIN_TOKEN": ADMIN}
    digest(root, "build", check=True, env=env)
    log = (tmp_path / "serve.log").open("w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "digest", "serve", "--no-scheduler", "--port", str(port)],
        cwd=root,
        env={**{k: v for k, v in os.environ.items() if k != "DIGEST_CONFIG"}, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def output() -> str:
        return (tmp_path / "serve.log").read_text()  # the server writes to the file itself

    try:
        deadline = time.monotonic() + 30
        while True:
            if server.poll() is not None:
                pytest.fail(f"digest serve exited with {server.returncode}:\n{output()}", pytrace=False)
            try:
                if httpx.get(base + "/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"digest serve did not answer within 30 s:\n{output()}", pytrace=False)
            time.sleep(0.1)
        yield root, base
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)  # uvicorn's graceful shutdown
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
                pytest.fail(f"digest serve ignored SIGTERM:\n{output()}", pytrace=False)
        log.close()
    assert server.returncode in (0, -signal.SIGTERM), output()  # uvicorn re-raises the signal once it is done
    assert "Application shutdown complete." in output() and "Traceback" not in output(), output()


def mail_to(smtp_server, address: str, subject: str, timeout: float = 30):
    """The one message to `address` whose subject contains `subject`, once the SMTP server has it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [
            r.message
            for r in list(smtp_server.messages)
            if r.rcpt_tos == [address] and subject in str(r.message["Subject"])
        ]
        if found:
            assert len(found) == 1, f"{len(found)} messages to {address} about {subject!r}"
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no mail to {address} about {subject!r}; the server has {len(smtp_server.messages)}")


def watch(page) -> list[str]:
    """Console errors, page errors (a CSP violation shows up here) and failed loads while `page` is used."""
    problems: list[str] = []

    def console(message) -> None:
        where = message.location.get("url", "")
        if message.type == "error" and not where.endswith("/favicon.ico"):  # the site has no icon: that 404 is fine
            problems.append(f"console: {message.text} ({where})")

    page.on("console", console)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("response", lambda r: problems.append(f"{r.status} for {r.url}") if r.status >= 400 else None)
    return problems


def test_subscribe_confirm_receive_and_unsubscribe_in_a_browser(browser, served, smtp_server):
    root, base = served
    ARTIFACTS.mkdir(exist_ok=True)
    store = open_store(load_config(root / "digest.toml"))
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    problems = watch(page)

    # the archive lists the issue and is styled by its own stylesheet (allowed by the CSP)
    page.goto(base + "/")
    issues = page.locator("ol.issue-list li")
    assert issues.count() == 1
    assert issues.first.locator("a").inner_text() == "February 2025"
    assert issues.first.locator("a").get_attribute("href") == f"{base}/2025/02/"
    assert page.evaluate("document.styleSheets.length") == 1
    assert page.evaluate("getComputedStyle(document.body).maxWidth") == "672px"  # style.css: 42rem
    page.screenshot(path=str(ARTIFACTS / "archive.png"), full_page=True)

    page.click("ol.issue-list a")
    page.wait_for_url(f"{base}/2025/02/")
    assert page.inner_text("h1") == "February 2025"
    assert page.locator("article.entry").count() == 8
    assert page.evaluate("document.styleSheets[0].cssRules.length") > 10  # ../../style.css loaded

    # subscribe through the form: a pending subscriber and a confirmation mail, nothing else
    page.goto(base + "/")
    page.fill("#email", READER)
    page.click("form.subscribe-form button[type=submit]")
    page.wait_for_url(f"{base}/subscribe")
    assert page.inner_text("h1") == "Almost done"
    assert subs.get(store, READER).status == SubscriberStatus.PENDING

    confirmation = mail_to(smtp_server, READER, "Confirm your subscription")
    assert confirmation["Subject"] == "Confirm your subscription to Link Archive"
    text = confirmation.get_body(("plain",)).get_content()
    link = re.search(rf"{re.escape(base)}/confirm/[A-Za-z0-9_.-]+", text).group(0)
    page.goto(link)
    assert page.inner_text("h1") == "You're subscribed"
    assert subs.get(store, READER).status == SubscriberStatus.ACTIVE

    # the admin trigger sends the month; the run is followed to its end
    auth = {"authorization": f"Bearer {ADMIN}"}
    started = httpx.post(base + "/admin/send", json={"month": "2025-02"}, headers=auth, timeout=30)
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 60
    while (run := httpx.get(base + started.json()["url"], headers=auth).json())["status"] == "running":
        assert time.monotonic() < deadline, run
        time.sleep(0.2)
    assert (run["status"], run["sent"], run["failed"]) == ("succeeded", 1, 0), run

    # the issue as the reader's mail client shows it, on a phone and on a desktop
    issue = mail_to(smtp_server, READER, "February 2025")
    assert issue["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = issue.get_body(("html",)).get_content()
    email_file = ARTIFACTS / "email.html"
    email_file.write_text(html)
    for width in (375, 800):
        view = browser.new_page(viewport={"width": width, "height": 900})
        view.goto(email_file.as_uri())
        assert view.get_by_role("link", name="How to Scale Your Model").is_visible()
        overflow = view.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the email scrolls sideways by {overflow} px at {width} px"
        link_box = view.get_by_role("link", name="How to Scale Your Model").bounding_box()
        assert link_box["x"] > 0 and link_box["x"] + link_box["width"] <= width, (width, link_box)
        if width == 800:  # a centred column, not text from edge to edge
            assert 80 <= link_box["x"] <= 200, link_box
        view.screenshot(path=str(ARTIFACTS / f"email-{width}.png"), full_page=True)
        view.close()

    # unsubscribe with the mail's own link: opening it changes nothing, the button does
    unsubscribe = re.search(rf"<({re.escape(base)}/unsubscribe/[^>]+)>", issue["List-Unsubscribe"]).group(1)
    assert f'href="{unsubscribe}"' in html
    page.goto(unsubscribe)
    assert page.inner_text("h1") == "Unsubscribe"
    assert subs.get(store, READER).status == SubscriberStatus.ACTIVE
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert page.inner_text("h1") == "You're unsubscribed"
    assert subs.get(store, READER).status == SubscriberStatus.UNSUBSCRIBED
    assert problems == []
    store.close()
