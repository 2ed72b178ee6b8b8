"""The web front's routes through Starlette's test client, every error path included.

Real components throughout: a built project (`digest build` as a subprocess), the real store
(SQLite and PostgreSQL), the outbox adapter for the confirmation and issue mails, real tokens.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import xml.etree.ElementTree as ET
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import formatdate
from html import unescape
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from delivery_support import REPO, digest, write_project
from starlette.testclient import TestClient

from digest import tokens
from digest.config import load_config
from digest.store import SubscriberStatus, open_store
from digest.store import runs as run_log
from digest.store import subscribers as subs
from digest.web import create_app
from digest.web.security import csrf_token

SECRET = "test-secret"  # the same key delivery_support.digest() gives the CLI
ADMIN = "admin-token-for-tests"
BASE = "https://links.example.com"
LIMITS = "\n[web]\nsubscribe_limit = 2\nsubscribe_ip_limit = 3\nmax_body_bytes = 2048\n"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' https: data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
CHECK_INBOX = (
    "Check your inbox: if the address can receive mail, a message with a confirmation link is on its way. "
    "Nothing is sent until you confirm."
)
ALTERED = "This link is not valid: it may have been cut short or altered."


# -- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture
def site(make_project) -> Path:
    """The shipped February 2025 and December 2024 issues, built, with low sign-up limits."""
    root = make_project(extra=LIMITS)
    shutil.copytree(REPO / "content" / "2024" / "12", root / "content" / "2024" / "12")
    digest(root, "build", check=True)
    return root


@pytest.fixture
def app(site, monkeypatch):
    monkeypatch.setenv("DIGEST_SECRET_KEY", SECRET)
    monkeypatch.setenv("DIGEST_ADMIN_TOKEN", ADMIN)
    app = create_app(load_config(site / "digest.toml"))
    yield app
    app.state.digest.store.close()  # (tests that never start the lifespan)


@pytest.fixture
def client(app):
    with TestClient(app, base_url=BASE) as test_client:
        yield test_client


@pytest.fixture
def store(site):
    store = open_store(load_config(site / "digest.toml"))
    yield store
    store.close()


AUTH = {"authorization": f"Bearer {ADMIN}"}


def visitor(app, ip: str) -> TestClient:
    """Another browser, from another client address (its own cookie jar); no lifespan of its own."""
    return TestClient(app, base_url=BASE, client=(ip, 40000))


def form_token(client: TestClient) -> str:
    """The CSRF token of the archive's form (the GET also gives `client` its cookie)."""
    return re.search(r'name="csrf_token" value="([0-9a-f]{64})"', client.get("/").text).group(1)


def subscribe(client: TestClient, email: str, token: str | None = None, **kwargs):
    return client.post("/subscribe", data={"email": email, "csrf_token": token or form_token(client)}, **kwargs)


def heading(response) -> str:
    return unescape(re.search(r"<h1>(.*?)</h1>", response.text, re.S).group(1))


def paragraphs(response) -> list[str]:
    section = re.search(r'<section class="page">(.*?)</section>', response.text, re.S).group(1)
    return [unescape(p) for p in re.findall(r"<p>(.*?)</p>", section, re.S)]


def mails(site: Path, folder: str) -> list[EmailMessage]:
    return [
        message_from_bytes(p.read_bytes(), policy=policy.default)
        for p in sorted((site / "outbox" / folder).glob("*.eml"))
    ]


def confirmations(site: Path, address: str) -> list[EmailMessage]:
    return [m for m in mails(site, "confirm") if m["To"] == address]


def confirm_path(mail: EmailMessage) -> str:
    text = mail.get_body(("plain",)).get_content()
    return re.search(r"^  https://links\.example\.com(/confirm/[A-Za-z0-9_.-]+)\s*$", text, re.M).group(1)


def one_click(app, path: str):
    """What a mail provider does for RFC 8058: one POST, no cookies, no page visited before."""
    provider = TestClient(app, base_url=BASE, client=("192.0.2.99", 443))
    assert not provider.cookies
    return provider.post(
        path, content=b"List-Unsubscribe=One-Click", headers={"content-type": "application/x-www-form-urlencoded"}
    )


def wait_for_run(client: TestClient, run_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/admin/runs/{run_id}", headers=AUTH)
        assert response.status_code == 200, response.text
        run = response.json()
        if run["status"] != "running" or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


def assert_secure(response) -> None:
    headers = response.headers
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    assert headers.get("content-security-policy") == CSP, where
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("referrer-policy") == "no-referrer", where
    assert headers.get("x-frame-options") == "DENY", where


# -- the archive and the issue pages -------------------------------------------------------------


def test_the_archive_lists_issues_newest_first_with_feeds_and_a_form(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    assert re.findall(r'<a href="([^"]+)"><time datetime="([^"]+)">([^<]+)</time></a>', html) == [
        (f"{BASE}/2025/02/", "2025-02", "February 2025"),
        (f"{BASE}/2024/12/", "2024-12", "December 2024"),
    ]
    for kind, title in (("rss+xml", "RSS"), ("atom+xml", "Atom"), ("feed+json", "JSON Feed")):
        name = {"rss+xml": "feed.xml", "atom+xml": "atom.xml", "feed+json": "feed.json"}[kind]
        link = f'<link rel="alternate" type="application/{kind}" title="Link Archive ({title})" href="{BASE}/{name}">'
        assert link in html
    assert f'<form method="post" action="{BASE}/subscribe" class="subscribe-form">' in html

    cookie = response.cookies["digest_csrf"]
    token = re.search(r'<input type="hidden" name="csrf_token" value="([^"]+)">', html).group(1)
    assert token == csrf_token(SECRET, cookie)  # bound to this browser's cookie
    set_cookie = response.headers["set-cookie"]
    for attribute in ("HttpOnly", "Max-Age=2592000", "Path=/", "SameSite=strict", "Secure"):
        assert attribute in set_cookie.split("; "), set_cookie

    again = client.get("/")  # the browser sends its cookie back: same token, no new cookie
    assert "set-cookie" not in again.headers
    assert f'name="csrf_token" value="{token}"' in again.text
    head = client.head("/")
    assert head.status_code == 200 and head.content == b""


def test_before_the_first_build_the_archive_is_empty_and_nothing_fails(tmp_path, monkeypatch):
    """`digest serve` started before `digest build`: empty pages and 404s, never a 500; then the build shows."""
    monkeypatch.setenv("DIGEST_SECRET_KEY", SECRET)
    root = write_project(tmp_path / "fresh")
    with TestClient(create_app(load_config(root / "digest.toml")), base_url=BASE) as fresh:
        index = fresh.get("/")
        assert index.status_code == 200 and '<ol class="issue-list" reversed>\n  </ol>' in index.text
        feed = fresh.get("/feed.xml")
        assert feed.status_code == 404 and paragraphs(feed)[0] == "The feeds appear after the first 'digest build'."
        for path in ("/2025/02/", "/style.css", "/nowhere"):
            missing = fresh.get(path)
            assert missing.status_code == 404 and heading(missing) == "Not found", path
        digest(root, "build", check=True)
        assert fresh.get("/2025/02/").status_code == 200
        assert fresh.get("/feed.xml").status_code == 200
        assert '<time datetime="2025-02">February 2025</time>' in fresh.get("/").text


def test_an_issue_page(client, site):
    response = client.get("/2025/02/")
    assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    assert "<h1>February 2025</h1>" in html
    assert f'<link rel="canonical" href="{BASE}/2025/02/">' in html
    shipped = len(list((site / "content" / "2025" / "02").glob("[!_]*.md")))  # not `_issue.md`
    assert html.count('<article class="entry">') == shipped == 8
    assert '<a href="https://jax-ml.github.io/scaling-book/">How to Scale Your Model</a>' in html
    assert f'<a rel="prev" href="{BASE}/2024/12/">← December 2024</a>' in html
    assert '<link rel="stylesheet" href="../../style.css">' in html
    assert client.get("/style.css").headers["content-type"] == "text/css; charset=utf-8"
    bare = client.get("/2025/02", follow_redirects=False)  # a directory without its slash: same site only
    assert bare.status_code == 307 and bare.headers["location"] == f"{BASE}/2025/02/"


# -- feeds ---------------------------------------------------------------------------------------


FEEDS = [
    ("/feed.xml", "application/rss+xml; charset=utf-8"),
    ("/atom.xml", "application/atom+xml; charset=utf-8"),
    ("/feed.json", "application/feed+json; charset=utf-8"),
]


def first_item_link(path: str, body: bytes) -> str:
    if path == "/feed.json":
        return json.loads(body)["items"][0]["url"]
    root = ET.fromstring(body)
    if path == "/feed.xml":
        return root.find("channel/item/link").text
    atom = "{http://www.w3.org/2005/Atom}"
    return root.find(f"{atom}entry/{atom}link").get("href")


@pytest.mark.slow
@pytest.mark.parametrize(("path", "media_type"), FEEDS)
def test_feeds_have_their_types_and_validators(client, site, path, media_type):
    file = site / "output" / "site" / path.lstrip("/")
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.content == file.read_bytes()
    assert first_item_link(path, response.content) == f"{BASE}/2025/02/"
    stat = file.stat()
    etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    assert response.headers["etag"] == etag
    assert response.headers["last-modified"] == formatdate(stat.st_mtime, usegmt=True)
    assert response.headers["cache-control"] == "public, max-age=300"

    def status(**headers: str) -> int:
        return client.get(path, headers={k.replace("_", "-"): v for k, v in headers.items()}).status_code

    not_modified = client.get(path, headers={"if-none-match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert status(if_none_match=f'"other", {etag}') == 304
    assert status(if_none_match=f"W/{etag}") == 304  # If-None-Match compares weakly
    assert status(if_none_match="*") == 304
    assert status(if_modified_since=response.headers["last-modified"]) == 304
    assert status(if_modified_since=formatdate(stat.st_mtime + 3600, usegmt=True)) == 304
    assert status(if_modified_since=formatdate(stat.st_mtime - 3600, usegmt=True)) == 200
    assert status(if_modified_since="not a date") == 200
    assert status(if_none_match='"stale"') == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2)
    assert status(if_none_match='"stale"', if_modified_since=response.headers["last-modified"]) == 200

    head = client.head(path)
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == etag

    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # a rebuild: a new validator
    changed = client.get(path, headers={"if-none-match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


# -- subscribe -----------------------------------------------------------------------------------


def test_subscribe_is_double_opt_in(client, site, store):
    response = subscribe(client, "New.Reader@Example.com")
    assert response.status_code == 200
    assert heading(response) == "Almost done" and paragraphs(response)[0] == CHECK_INBOX
    pending = subs.get(store, "new.reader@example.com")
    assert pending.status == SubscriberStatus.PENDING and pending.confirmed_at is None

    [mail] = confirmations(site, "new.reader@example.com")
    assert mail["Subject"] == "Confirm your subscription to Link Archive"
    assert mail["From"] == "Link Archive <digest@links.example.com>"
    path = confirm_path(mail)
    assert f'href="{BASE}{path}"' in mail.get_body(("html",)).get_content()
    assert tokens.read_token(SECRET, "confirm", path.removeprefix("/confirm/")) == tokens.TokenSubject(
        "new.reader@example.com", pending.id
    )
    assert not (site / "outbox" / "2025-02").exists()  # nothing but the confirmation

    confirmed = client.get(path)
    assert confirmed.status_code == 200 and heading(confirmed) == "You're subscribed"
    assert paragraphs(confirmed)[:2] == [
        "new.reader@example.com will get Link Archive at the end of each month.",
        "Every email has a one-click unsubscribe link.",
    ]
    active = subs.get(store, "new.reader@example.com")
    assert active.status == SubscriberStatus.ACTIVE and active.confirmed_at is not None

    again = client.get(path)  # following the link twice changes nothing
    assert again.status_code == 200 and heading(again) == "You're subscribed"
    assert subs.get(store, "new.reader@example.com").confirmed_at == active.confirmed_at


def test_the_subscribe_page_has_the_form_too(client, store):
    page = client.get("/subscribe")
    assert page.status_code == 200 and heading(page) == "Subscribe to Link Archive"
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert token == csrf_token(SECRET, page.cookies["digest_csrf"])
    assert subscribe(client, "from.the.page@example.com", token).status_code == 200
    assert subs.get(store, "from.the.page@example.com").status == SubscriberStatus.PENDING


def test_the_answer_never_reveals_whether_an_address_is_known(app, site, store):
    subs.add(store, "active@example.com")
    subs.add(store, "pending@example.com", status=SubscriberStatus.PENDING)
    subs.add(store, "left@example.com", status=SubscriberStatus.UNSUBSCRIBED)
    answers = {}
    for n, address in enumerate(
        ("stranger@example.com", "active@example.com", "pending@example.com", "left@example.com")
    ):
        browser = visitor(app, f"198.51.100.{n}")
        token = form_token(browser)
        answers[address] = subscribe(browser, address, token)
    first = answers["stranger@example.com"]
    assert first.status_code == 200 and heading(first) == "Almost done"
    for address, response in answers.items():
        assert response.status_code == first.status_code, address
        assert response.content == first.content, address  # byte for byte
        assert "set-cookie" not in response.headers, address
    assert subs.get(store, "active@example.com").status == SubscriberStatus.ACTIVE  # never changed by a sign-up
    # someone who left comes back only by confirming
    assert subs.get(store, "left@example.com").status == SubscriberStatus.UNSUBSCRIBED
    assert confirmations(site, "active@example.com") == []  # an active reader gets no mail
    for address in ("stranger@example.com", "pending@example.com", "left@example.com"):
        assert len(confirmations(site, address)) == 1, address


BAD_ADDRESSES = [
    "not-an-address",
    "",
    "a@b",
    "two@@example.com",
    "x" * 400 + "@example.com",
    "reader@example.com\r\nBcc: everyone@example.com",
    '"><script>alert(1)</script>@example.com',
    "'; DROP TABLE subscribers; --@example.com",
    "ünicode@@example.com",
]


def test_an_invalid_address_gets_a_message_not_a_500(client, site, store):
    subs.add(store, "reader@example.com")
    token = form_token(client)
    for bad in BAD_ADDRESSES:
        response = subscribe(client, bad, token)
        assert response.status_code == 400, bad
        assert heading(response) == "Please check the address", bad
        notice = re.search(r'<p class="notice error" role="status">(.*?)</p>', response.text).group(1)
        assert unescape(notice) == "That doesn't look like an email address. Please check it and try again."
        assert "<script>" not in response.text, bad  # the address comes back escaped in the form
        assert f'name="csrf_token" value="{token}"' in response.text, bad  # the form can be sent again
    assert subs.counts(store) == {"active": 1}  # the table is there, unchanged
    assert not (site / "outbox").exists()
    assert subscribe(client, "fine@example.com", token).status_code == 200  # invalid tries don't count as attempts
    assert subscribe(client, "fine2@example.com", token).status_code == 200


def test_sql_looking_input_is_just_text(client, app, site, store):
    address = "o'reilly+1=1--@example.com"  # a valid address full of SQL punctuation
    response = subscribe(client, address)
    assert response.status_code == 200 and heading(response) == "Almost done"
    assert subs.get(store, address).email == address
    assert subs.counts(store) == {"pending": 1}
    [mail] = confirmations(site, address)
    assert client.get(confirm_path(mail)).status_code == 200
    assert subs.get(store, address).status == SubscriberStatus.ACTIVE
    for path in (
        "/confirm/' OR '1'='1",
        "/unsubscribe/1 OR 1=1; --",
        "/unsubscribe/x%27%3B%20DROP%20TABLE%20subscribers",
    ):
        assert client.get(path).status_code == 400, path
        if path.startswith("/unsubscribe/"):
            assert one_click(app, path).status_code == 400, path
    assert client.get("/admin/runs/' OR 1=1 --", headers=AUTH).status_code == 404
    assert client.post("/admin/send?month=2025-02' OR 1=1", headers=AUTH).status_code == 400
    assert subs.counts(store) == {"active": 1}
    assert run_log.recent(store) == []


def test_the_form_needs_its_csrf_token_and_cookie(client, app, site, store):
    token = form_token(client)
    other = visitor(app, "198.51.100.7")
    assert form_token(other) != token  # it has a cookie and a token of its own
    cases = {
        "no token": lambda: client.post("/subscribe", data={"email": "a@example.com"}),
        "wrong token": lambda: client.post("/subscribe", data={"email": "a@example.com", "csrf_token": "0" * 64}),
        "an overlong token": lambda: client.post(
            "/subscribe", data={"email": "a@example.com", "csrf_token": "f" * 200}
        ),
        "no cookie": lambda: TestClient(app, base_url=BASE).post(
            "/subscribe", data={"email": "a@example.com", "csrf_token": token}
        ),
        "another browser's token": lambda: subscribe(other, "a@example.com", token),
    }
    for case, post in cases.items():
        response = post()
        assert response.status_code == 403, case
        assert heading(response) == "Please try again", case
        assert "This form has expired. Please submit it again." in response.text, case
        assert 'value="a@example.com"' in response.text, case  # what was typed is kept
    assert subs.get(store, "a@example.com") is None
    assert not (site / "outbox").exists()
    assert subscribe(client, "a@example.com", token).status_code == 200  # the real token still works


def test_the_per_address_limit(app, site, store):
    codes = []
    for n in range(3):  # three browsers, three client addresses: the limit follows the address
        browser = visitor(app, f"203.0.113.{n}")
        codes.append(subscribe(browser, "Same@Example.com" if n else "same@example.com", form_token(browser)))
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert 1 <= int(codes[2].headers["retry-after"]) <= 3600  # the window the limit counts in
    assert heading(codes[2]) == "Too many attempts"
    assert paragraphs(codes[2])[0] == "Please wait a while before trying again."
    assert len(confirmations(site, "same@example.com")) == 2
    assert subs.get(store, "same@example.com").status == SubscriberStatus.PENDING


def test_the_per_client_limit(client, app, site, store):
    token = form_token(client)
    codes = [subscribe(client, f"reader{n}@example.com", token).status_code for n in range(4)]
    assert codes == [200, 200, 200, 429]
    assert subs.get(store, "reader3@example.com") is None and confirmations(site, "reader3@example.com") == []
    other = visitor(app, "198.51.100.20")  # another client is not held back
    assert subscribe(other, "reader3@example.com", form_token(other)).status_code == 200
    assert subs.counts(store) == {"pending": 4}


def test_a_body_over_the_limit_is_refused(client, store):
    token = form_token(client)
    big = {"email": "big@example.com", "csrf_token": token, "pad": "x" * 3000}
    response = client.post("/subscribe", data=big)  # with a Content-Length
    assert response.status_code == 413 and response.text == "Request body too large."
    assert_secure(response)

    def chunks():  # no Content-Length: counted while it streams
        yield f"email=big%40example.com&csrf_token={token}&pad=".encode()
        for _ in range(10):
            yield b"x" * 500

    streamed = client.post(
        "/subscribe", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert streamed.status_code == 413 and streamed.text == "Request body too large."
    garbage = client.post("/subscribe", content=b"x", headers={"content-length": "lots"})
    assert garbage.status_code == 413
    assert subs.get(store, "big@example.com") is None
    assert subscribe(client, "big@example.com", token).status_code == 200  # a normal post still works


def test_a_body_that_is_not_a_form_gets_a_page(client, store):
    token = form_token(client)
    broken = client.post(
        "/subscribe", content=b"\xff\xfe garbage", headers={"content-type": "multipart/form-data; boundary=x"}
    )
    assert broken.status_code == 400 and heading(broken) == "That didn't work"
    with_file = client.post("/subscribe", data={"csrf_token": token}, files={"email": ("a.txt", b"a@example.com")})
    assert with_file.status_code == 400
    assert subs.counts(store) == {}


# -- confirm -------------------------------------------------------------------------------------


def test_a_tampered_confirmation_link_explains_itself(client, site, store):
    subscribe(client, "c@example.com")
    token = confirm_path(confirmations(site, "c@example.com")[0]).removeprefix("/confirm/")
    payload, stamp, signature = token.split(".")
    swap = lambda ch: "A" if ch != "A" else "B"  # noqa: E731
    variants = {
        "signature": f"{payload}.{stamp}.{signature[:-3]}{swap(signature[-3])}{signature[-2:]}",
        "payload": f"{swap(payload[0])}{payload[1:]}.{stamp}.{signature}",
        "cut short": token[:-5],
        "no signature": payload,
        "stray characters": token + "é",
    }
    for case, bad in variants.items():
        response = client.get(f"/confirm/{bad}")
        assert response.status_code == 400, case
        assert heading(response) == "This link doesn't work", case
        assert paragraphs(response)[1] == "Please use the exact link from the email.", case
        assert "Traceback" not in response.text
    assert paragraphs(client.get(f"/confirm/{variants['signature']}"))[0] == ALTERED
    assert subs.get(store, "c@example.com").status == SubscriberStatus.PENDING


def confirm_token_made_ago(monkeypatch, subject: tokens.TokenSubject, seconds: float) -> str:
    """A confirmation token as if mailed `seconds` ago (itsdangerous stamps with time.time())."""
    now = time.time()
    with monkeypatch.context() as past:
        past.setattr(time, "time", lambda: now - seconds)
        return tokens.make_token(SECRET, "confirm", subject)


def test_an_expired_confirmation_link_says_so(client, store, monkeypatch):
    sub, _ = subs.add(store, "late@example.com", status=SubscriberStatus.PENDING)
    subject = tokens.TokenSubject("late@example.com", sub.id)
    expired = confirm_token_made_ago(monkeypatch, subject, 8 * 24 * 3600)
    recent = confirm_token_made_ago(monkeypatch, subject, 6 * 24 * 3600)
    response = client.get(f"/confirm/{expired}")
    assert response.status_code == 400 and heading(response) == "This link doesn't work"
    assert paragraphs(response)[:2] == ["This link has expired.", "Subscribe again to get a fresh one."]
    assert subs.get(store, "late@example.com").status == SubscriberStatus.PENDING
    assert client.get(f"/confirm/{recent}").status_code == 200  # six days old still works
    assert subs.get(store, "late@example.com").status == SubscriberStatus.ACTIVE


def test_a_confirmation_link_older_than_an_unsubscribe_does_not_resubscribe(client, store, monkeypatch):
    sub, _ = subs.add(store, "left@example.com", status=SubscriberStatus.PENDING)
    subject = tokens.TokenSubject("left@example.com", sub.id)
    old = confirm_token_made_ago(monkeypatch, subject, 3600)  # mailed an hour ago
    assert client.get(f"/confirm/{old}").status_code == 200
    subs.unsubscribe(store, sub.id, "left@example.com")
    again = client.get(f"/confirm/{old}")  # the same link, opened again after leaving
    assert again.status_code == 400 and "older than your unsubscribe" in paragraphs(again)[0]
    assert subs.get(store, "left@example.com").status == SubscriberStatus.UNSUBSCRIBED
    fresh = tokens.make_token(SECRET, "confirm", subject)  # a new sign-up's link brings them back
    assert client.get(f"/confirm/{fresh}").status_code == 200
    assert subs.get(store, "left@example.com").status == SubscriberStatus.ACTIVE


def test_a_confirmation_link_names_one_subscription(client, store):
    sub, _ = subs.add(store, "c@example.com", status=SubscriberStatus.PENDING)
    moved = tokens.make_token(SECRET, "confirm", tokens.TokenSubject("someone@example.com", sub.id))
    response = client.get(f"/confirm/{moved}")
    assert response.status_code == 400
    assert paragraphs(response)[0].startswith("This link is not valid: it doesn't match a subscription")
    anonymous = tokens.make_token(SECRET, "confirm", tokens.TokenSubject("c@example.com"))
    assert client.get(f"/confirm/{anonymous}").status_code == 400
    forged = tokens.make_token("another-secret", "confirm", tokens.TokenSubject("c@example.com", sub.id))
    assert client.get(f"/confirm/{forged}").status_code == 400
    assert subs.get(store, "c@example.com").status == SubscriberStatus.PENDING


def test_a_token_only_works_for_its_own_purpose(client, app, store):
    sub, _ = subs.add(store, "both@example.com", status=SubscriberStatus.PENDING)
    subject = tokens.TokenSubject("both@example.com", sub.id)
    confirm = tokens.make_token(SECRET, "confirm", subject)
    unsubscribe = tokens.make_token(SECRET, "unsubscribe", subject)

    for response in (client.get(f"/unsubscribe/{confirm}"), one_click(app, f"/unsubscribe/{confirm}")):
        assert response.status_code == 400 and paragraphs(response)[0] == ALTERED
    assert subs.get(store, "both@example.com").status == SubscriberStatus.PENDING

    as_confirm = client.get(f"/confirm/{unsubscribe}")
    assert as_confirm.status_code == 400 and paragraphs(as_confirm)[0] == ALTERED
    assert subs.get(store, "both@example.com").status == SubscriberStatus.PENDING


# -- unsubscribe ---------------------------------------------------------------------------------


def test_opening_an_unsubscribe_link_only_shows_a_button(client, store):
    sub, _ = subs.add(store, "leaving@example.com")
    token = tokens.make_token(SECRET, "unsubscribe", tokens.TokenSubject("leaving@example.com", sub.id))
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and heading(page) == "Unsubscribe"
    assert paragraphs(page)[0] == "Stop sending Link Archive to leaving@example.com?"
    form = re.search(r'<form method="post" action="([^"]+)">\s*<button type="submit">Unsubscribe</button>', page.text)
    assert form.group(1) == f"/unsubscribe/{token}"
    assert client.head(f"/unsubscribe/{token}").status_code == 200
    assert subs.get(store, "leaving@example.com").status == SubscriberStatus.ACTIVE  # a prefetch does nothing


def test_one_click_unsubscribe_needs_no_cookie_and_is_idempotent(app, store):
    sub, _ = subs.add(store, "leaving@example.com")
    subs.add(store, "staying@example.com")
    path = (
        f"/unsubscribe/{tokens.make_token(SECRET, 'unsubscribe', tokens.TokenSubject('leaving@example.com', sub.id))}"
    )
    done = one_click(app, path)
    assert done.status_code == 200 and heading(done) == "You're unsubscribed"
    assert paragraphs(done)[0] == "leaving@example.com will get no more emails from Link Archive."
    first = subs.get(store, "leaving@example.com")
    assert first.status == SubscriberStatus.UNSUBSCRIBED and first.unsubscribed_at is not None

    again = one_click(app, path)
    assert again.status_code == 200 and again.content == done.content
    assert subs.get(store, "leaving@example.com").unsubscribed_at == first.unsubscribed_at
    assert subs.get(store, "staying@example.com").status == SubscriberStatus.ACTIVE


def test_a_token_for_one_address_cannot_unsubscribe_another(app, store):
    victim, _ = subs.add(store, "victim@example.com")
    other, _ = subs.add(store, "other@example.com")
    attempts = [
        tokens.TokenSubject("other@example.com", victim.id),  # the victim's row, another address
        tokens.TokenSubject("victim@example.com", other.id),  # the victim's address, another row
        tokens.TokenSubject("victim@example.com", 999_999),  # a row that doesn't exist
    ]
    for subject in attempts:
        one_click(app, f"/unsubscribe/{tokens.make_token(SECRET, 'unsubscribe', subject)}")
    forged = tokens.make_token("not-the-secret", "unsubscribe", tokens.TokenSubject("victim@example.com", victim.id))
    assert one_click(app, f"/unsubscribe/{forged}").status_code == 400
    assert subs.get(store, "victim@example.com").status == SubscriberStatus.ACTIVE
    assert subs.get(store, "other@example.com").status == SubscriberStatus.ACTIVE

    own = tokens.make_token(SECRET, "unsubscribe", tokens.TokenSubject("other@example.com", other.id))
    assert one_click(app, f"/unsubscribe/{own}").status_code == 200
    assert subs.get(store, "other@example.com").status == SubscriberStatus.UNSUBSCRIBED
    assert subs.get(store, "victim@example.com").status == SubscriberStatus.ACTIVE


# -- every response: headers, errors, redirects --------------------------------------------------


def test_security_headers_on_every_response(client, app, store):
    sub, _ = subs.add(store, "h@example.com")
    unsubscribe = tokens.make_token(SECRET, "unsubscribe", tokens.TokenSubject("h@example.com", sub.id))
    token = form_token(client)
    etag = client.get("/feed.xml").headers["etag"]
    responses = [
        client.get("/"),
        client.head("/"),
        client.get("/2025/02/"),
        client.get("/2025/02", follow_redirects=False),
        client.get("/style.css"),
        client.get("/feed.json"),
        client.get("/feed.xml", headers={"if-none-match": etag}),
        client.get("/subscribe"),
        subscribe(client, "h2@example.com", token),
        subscribe(client, "nope", token),
        client.post("/subscribe", data={"email": "h3@example.com", "csrf_token": "x"}),
        client.post("/subscribe", data={"email": "h3@example.com", "csrf_token": token, "pad": "x" * 3000}),
        client.get("/confirm/garbage"),
        client.get(f"/unsubscribe/{unsubscribe}"),
        one_click(app, f"/unsubscribe/{unsubscribe}"),
        client.get("/nowhere"),
        client.put("/subscribe"),
        client.post("/admin/send"),
        client.get("/admin/runs", headers=AUTH),
        client.get("/admin/runs/" + "0" * 32, headers=AUTH),
        client.post("/admin/send", json={"month": "2025-13"}, headers=AUTH),
    ]
    responses += [subscribe(client, f"h{n}@example.com", token) for n in range(4, 7)]  # until 429
    statuses = {r.status_code for r in responses}
    assert statuses >= {200, 304, 307, 400, 401, 403, 404, 405, 413, 429}, statuses
    for response in responses:
        assert_secure(response)


def test_a_server_error_is_a_plain_page_with_the_headers_too(site, monkeypatch):
    monkeypatch.setenv("DIGEST_SECRET_KEY", SECRET)
    app = create_app(load_config(site / "digest.toml"))
    (site / "templates" / "site" / "index.html").write_text("{% broken")  # the writer broke a template
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as broken:
        response = broken.get("/")
    assert response.status_code == 500
    assert response.text == (
        "<!DOCTYPE html><title>Error</title><p>Something went wrong on our side. Please try again later.</p>"
    )
    assert_secure(response)


def test_unknown_paths_are_a_404_page_without_a_traceback(client, site):
    for path in ("/nowhere", "/2031/01/", "/feed.rss", "/admin", "/..%2fdigest.toml", "/%2e%2e/digest.toml",
                 "/var/digest.sqlite", "/output/site/index.html", "/<script>alert(1)</script>", "/%00"):  # fmt: skip
        response = client.get(BASE + path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "text/html; charset=utf-8", path
        assert heading(response) == "Not found" and paragraphs(response)[0] == "There is nothing here.", path
        assert "Traceback" not in response.text and str(site) not in response.text, path
        assert "<script>" not in response.text, path


def test_wrong_methods_are_a_405_page(client):
    for response in (client.put("/subscribe"), client.delete("/"), client.post("/feed.xml")):
        assert response.status_code == 405 and heading(response) == "Method not allowed"
    # under /admin/ errors are JSON, and a wrong method says which one is right (only to the admin)
    wrong = client.get("/admin/send", headers=AUTH)
    assert (wrong.status_code, wrong.json(), wrong.headers["allow"]) == (405, {"error": "use POST"}, "POST")
    assert client.get("/admin/send").status_code == 401


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_no_route_redirects_to_a_url_it_is_given(client, method):
    evil = "https://evil.example/"
    paths = [
        f"/?next={evil}",
        f"/subscribe?next={evil}",
        f"/subscribe?redirect={evil}&url={evil}&return_to={evil}",
        f"/confirm/x?next={evil}",
        f"/unsubscribe/x?next={evil}",
        f"/2025/02?next={evil}",
        "//evil.example/",
        "//evil.example/2025/02",
        "//2025/02",
        "///evil.example/2025/02",
        "/%2F%2Fevil.example/2025/02",
        "/\\evil.example/2025/02",
        "/https:/evil.example/",
    ]
    token = form_token(client)
    for path in paths:
        if method == "POST" and path.startswith("/subscribe"):
            response = client.post(path, data={"email": "r@example.com", "csrf_token": token}, follow_redirects=False)
        else:
            response = client.request(method, BASE + path, follow_redirects=False)  # the path exactly as given
        assert response.status_code < 500, path
        if 300 <= response.status_code < 400:
            location = urlsplit(response.headers["location"])
            assert (location.scheme, location.netloc) == ("https", "links.example.com"), (path, location)


# -- admin ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, ""])
def test_admin_routes_do_not_exist_without_a_token(site, store, monkeypatch, token):
    monkeypatch.setenv("DIGEST_SECRET_KEY", SECRET)
    if token is None:
        monkeypatch.delenv("DIGEST_ADMIN_TOKEN", raising=False)
    else:
        monkeypatch.setenv("DIGEST_ADMIN_TOKEN", token)
    subs.add(store, "reader@example.com")
    with TestClient(create_app(load_config(site / "digest.toml")), base_url=BASE) as off:
        for response in (
            off.post("/admin/send", json={"month": "2025-02"}, headers=AUTH),
            off.post("/admin/send", headers={"authorization": "Bearer "}),
            off.get("/admin/runs", headers=AUTH),
            off.get("/admin/runs/" + "0" * 32, headers=AUTH),
        ):
            assert response.status_code == 404 and response.json() == {"error": "not found"}
            assert "www-authenticate" not in response.headers
    assert run_log.recent(store) == []
    assert not (site / "outbox").exists()


def test_admin_needs_the_right_bearer_token(client, store, site):
    subs.add(store, "reader@example.com")
    wrong = [
        {},
        {"authorization": ""},
        {"authorization": "Bearer"},
        {"authorization": "Bearer wrong"},
        {"authorization": f"Bearer {ADMIN}x"},
        {"authorization": f"Bearer {ADMIN[:-1]}"},
        {"authorization": f"Basic {ADMIN}"},
        {"authorization": ADMIN},
        {"x-admin-token": ADMIN},
    ]
    for headers in wrong:
        for response in (
            client.post("/admin/send", json={"month": "2025-02"}, headers=headers),
            client.post(f"/admin/send?month=2025-02&token={ADMIN}", headers=headers),
            client.get("/admin/runs", headers=headers),
            client.get("/admin/runs/" + "0" * 32, headers=headers),
        ):
            assert response.status_code == 401, headers
            assert response.headers["www-authenticate"] == 'Bearer realm="digest"'
            assert response.json() == {"error": "a valid 'Authorization: Bearer <token>' header is required"}
    assert run_log.recent(store) == []
    assert not (site / "outbox").exists()
    assert client.get("/admin/runs", headers={"authorization": f"bearer {ADMIN}"}).json() == {"runs": []}


def test_admin_send_runs_in_the_background_and_reports(client, app, store, site):
    active = [f"reader{n}@example.com" for n in range(3)]
    for address in active:
        subs.add(store, address)
    subs.add(store, "pending@example.com", status=SubscriberStatus.PENDING)
    subs.add(store, "left@example.com", status=SubscriberStatus.UNSUBSCRIBED)
    subs.add(store, "bounced@example.com", status=SubscriberStatus.BOUNCED)

    started = client.post("/admin/send", json={"month": "2025-02"}, headers=AUTH)
    assert started.status_code == 202
    body = started.json()
    assert re.fullmatch(r"[0-9a-f]{32}", body["run_id"])
    assert body == {
        "run_id": body["run_id"],
        "month": "2025-02",
        "status": "running",
        "url": f"/admin/runs/{body['run_id']}",
    }

    run = wait_for_run(client, body["run_id"])
    assert run["status"] == "succeeded", run
    assert (run["kind"], run["month"], run["sent"], run["retried"], run["failed"]) == ("manual", "2025-02", 3, 0, 0)
    assert run["detail"] == "sent 3, retried 0, failed 0, skipped 0 already sent"
    assert run["finished_at"] is not None
    issue = mails(site, "2025-02")
    assert sorted(m["To"] for m in issue) == active  # the active readers, each once
    assert client.get("/admin/runs", headers=AUTH).json()["runs"][0]["id"] == body["run_id"]

    again = wait_for_run(client, client.post("/admin/send?month=2025-02", headers=AUTH).json()["run_id"])
    assert (again["status"], again["sent"]) == ("succeeded", 0)
    assert again["detail"] == "sent 0, retried 0, failed 0, skipped 3 already sent"
    assert len(mails(site, "2025-02")) == 3

    # the issue's own one-click link (List-Unsubscribe, RFC 8058) unsubscribes its reader
    mail = next(m for m in issue if m["To"] == "reader1@example.com")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = re.search(r"<(https://links\.example\.com/unsubscribe/[^>]+)>", mail["List-Unsubscribe"]).group(1)
    assert one_click(app, link.removeprefix(BASE)).status_code == 200
    assert subs.get(store, "reader1@example.com").status == SubscriberStatus.UNSUBSCRIBED
    assert [subs.get(store, a).status for a in (active[0], active[2])] == [SubscriberStatus.ACTIVE] * 2


@pytest.mark.slow
def test_admin_send_reads_the_month_from_the_query_json_or_a_form(client):
    ways = [
        ({"params": {"month": "2024-12"}}, "2024-12"),
        ({"json": {"month": "2024-12"}}, "2024-12"),
        ({"data": {"month": "2024-12"}}, "2024-12"),
        ({"files": {"month": (None, "2024-12")}}, "2024-12"),  # multipart, as `curl -F month=2024-12`
        ({"json": {}}, "2025-02"),  # the latest
        ({"json": {"month": ""}}, "2025-02"),
        ({}, "2025-02"),
    ]
    for options, month in ways:
        started = client.post("/admin/send", headers=AUTH, **options)
        assert started.status_code == 202 and started.json()["month"] == month, (options, started.text)
        run = wait_for_run(client, started.json()["run_id"])
        assert (run["status"], run["month"], run["sent"]) == ("succeeded", month, 0), options  # nobody is active


def test_admin_send_refuses_a_bad_month(client, store, site):
    subs.add(store, "reader@example.com")
    bad = [
        {"json": {"month": "2025-13"}},
        {"json": {"month": "2025-00"}},
        {"json": {"month": "2025-2"}},
        {"json": {"month": "25-02"}},
        {"json": {"month": "2025-02-01"}},
        {"json": {"month": "February"}},
        {"json": {"month": "0000-01"}},
        {"json": {"month": 202502}},
        {"params": {"month": "2025-02' OR 1=1"}},
        {"data": {"month": "2025/02"}},
        # a body the month can't be read from never falls back to sending the latest month
        {"json": ["2024-12"]},
        {"json": {"month": "2024-12", "dry_run": True}},
        {"data": {"mnth": "2024-12"}},
        {"content": b'{"month": "2024-12"}', "headers": {"content-type": "application/x-www-form-urlencoded"}},
        {"content": b"2024-12", "headers": {"content-type": "text/plain"}},
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        {"content": b"\xff", "headers": {"content-type": "application/json"}},
    ]
    for options in bad:
        headers = {**AUTH, **options.pop("headers", {})}
        response = client.post("/admin/send", headers=headers, **options)
        assert response.status_code == 400, (options, response.text)
        assert response.json()["error"], options
    assert run_log.recent(store) == []
    assert not (site / "outbox").exists()


def test_admin_send_of_an_empty_month_is_a_conflict(client, store, site):
    subs.add(store, "reader@example.com")
    response = client.post("/admin/send", json={"month": "2020-01"}, headers=AUTH)
    assert response.status_code == 409
    assert response.json() == {"error": "no entries for 2020-01: nothing to build or send"}
    assert run_log.recent(store) == []
    assert not (site / "outbox").exists()


def test_admin_send_refuses_invalid_content(client, store, site):
    (site / "content" / "2025" / "02" / "bad.md").write_text("---\ntitle: ''\ndate: 2025-02-01\n---\n")
    subs.add(store, "reader@example.com")
    response = client.post("/admin/send", json={"month": "2025-02"}, headers=AUTH)
    assert response.status_code == 409
    assert response.json() == {
        "error": "content is invalid; nothing was sent",
        "problems": ["content/2025/02/bad.md:2: missing or empty title (add a line such as 'title: \"What I read\"')"],
    }
    assert run_log.recent(store) == []
    assert not (site / "outbox").exists()


def test_an_unknown_run_is_a_404(client):
    for run_id in ("0" * 32, "f" * 32, "A" * 32, "abc", "0" * 33, "' OR 1=1 --"):
        response = client.get(f"/admin/runs/{run_id}", headers=AUTH)
        assert response.status_code == 404, run_id
        assert response.json() == {"error": "no such run"}, run_id
    escape = client.get("/admin/runs/..%2F..%2Fetc%2Fpasswd", headers=AUTH)
    assert escape.status_code == 404 and escape.json() == {"error": "Not Found"}


# -- hostile edges: Host header, forwarded addresses, the admin month ------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8443", "links.example.com.evil.example", ""])
def test_a_redirect_takes_its_host_from_base_url_never_the_host_header(client, host):
    response = client.get("/2025/02", headers={"host": host}, follow_redirects=False)
    assert response.status_code in (301, 302, 307, 308), response.text
    assert response.headers["location"] == "https://links.example.com/2025/02/"
    forwarded = client.get("/2025/02", headers={"x-forwarded-host": "evil.example"}, follow_redirects=False)
    assert forwarded.headers["location"] == "https://links.example.com/2025/02/"


def test_without_trusted_proxies_x_forwarded_for_is_ignored(app, store):
    browser = visitor(app, "203.0.113.5")
    token = form_token(browser)
    codes = [
        subscribe(browser, f"r{n}@example.com", token, headers={"x-forwarded-for": f"198.51.100.{n}"}).status_code
        for n in range(4)
    ]
    assert codes == [200, 200, 200, 429]  # a fresh X-Forwarded-For each time changes nothing


@pytest.fixture
def proxied_app(site, monkeypatch):
    """The site behind a reverse proxy on 10.0.0.0/8 ([web] is the last table of its digest.toml)."""
    toml = site / "digest.toml"
    toml.write_text(toml.read_text() + 'trusted_proxies = ["10.0.0.0/8", "2001:db8::/32"]\n')
    monkeypatch.setenv("DIGEST_SECRET_KEY", SECRET)
    app = create_app(load_config(toml))
    yield app
    app.state.digest.store.close()


def test_behind_a_trusted_proxy_the_last_untrusted_hop_is_the_client(proxied_app, store):
    proxy = visitor(proxied_app, "10.0.0.1")
    token = form_token(proxy)
    # the client makes up the left part; the proxy appends the address it saw
    spoofed = [f"192.0.2.{n}, 198.51.100.7" for n in range(4)]
    codes = [
        subscribe(proxy, f"p{n}@example.com", token, headers={"x-forwarded-for": hops}).status_code
        for n, hops in enumerate(spoofed)
    ]
    assert codes == [200, 200, 200, 429]
    # two proxies of ours in a row: still the hop left of them
    chained = ["192.0.2.9, 198.51.100.8, 10.0.0.2" for _ in range(4)]
    codes = [
        subscribe(proxy, f"q{n}@example.com", token, headers={"x-forwarded-for": hops}).status_code
        for n, hops in enumerate(chained)
    ]
    assert codes == [200, 200, 200, 429]
    # someone not on the list can't pick their own address by sending the header
    direct = visitor(proxied_app, "203.0.113.9")
    direct_token = form_token(direct)
    codes = [
        subscribe(
            direct, f"d{n}@example.com", direct_token, headers={"x-forwarded-for": f"192.0.2.{50 + n}"}
        ).status_code
        for n in range(4)
    ]
    assert codes == [200, 200, 200, 429]


def test_client_address_walks_x_forwarded_for_from_the_right():
    import ipaddress

    from digest.web.security import client_address

    proxies = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))
    assert client_address("203.0.113.1", ["1.2.3.4"], ()) == "203.0.113.1"
    assert client_address("203.0.113.1", ["1.2.3.4"], proxies) == "203.0.113.1"
    assert client_address("10.1.1.1", ["1.2.3.4, 5.6.7.8"], proxies) == "5.6.7.8"
    assert client_address("10.1.1.1", ["1.2.3.4", "5.6.7.8, 10.9.9.9"], proxies) == "5.6.7.8"  # several headers
    assert client_address("2001:db8::1", ["2001:db8::2, 10.0.0.3"], proxies) == "2001:db8::1"  # all ours
    assert client_address("10.1.1.1", [], proxies) == "10.1.1.1"
    assert client_address("10.1.1.1", ["garbage"], proxies) == "garbage"
    assert client_address(None, ["1.2.3.4"], proxies) == "unknown"


def test_admin_send_refuses_a_month_that_is_not_a_string(client, store, site):
    subs.add(store, "reader@example.com")
    for month in [None, 202502, 2025.02, True, False, ["2024-12"], {"year": 2024, "month": 12}, "２０２５-０２"]:
        response = client.post("/admin/send", json={"month": month}, headers=AUTH)
        assert response.status_code == 400, (month, response.text)
        assert "month" in response.json()["error"], month
    null = client.post("/admin/send", json={"month": None}, headers=AUTH)
    assert null.json() == {"error": "month must be a string YYYY-MM, not null"}
    upload = client.post("/admin/send", files={"month": ("month.txt", b"2024-12")}, headers=AUTH)
    assert upload.status_code == 400
    assert run_log.recent(store) == []
    assert not (site / "outbox").exists()


def test_the_real_server_takes_neither_x_forwarded_for_nor_the_host_header_from_a_client(site):
    """Through uvicorn, as deployed: its own proxy-header handling would believe a local peer."""
    import subprocess
    import sys

    import httpx
    from smtp_sink import free_port

    port = free_port()
    env = {**os.environ, "DIGEST_SECRET_KEY": SECRET}
    env.pop("DIGEST_CONFIG", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "digest", "serve", "--no-scheduler", "--port", str(port)],
        cwd=site, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as browser:
            deadline = time.monotonic() + 30
            while True:
                try:
                    page = browser.get("/")
                    break
                except httpx.TransportError:
                    assert server.poll() is None and time.monotonic() < deadline, "digest serve did not start"
                    time.sleep(0.1)
            token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text).group(1)
            cookie = f"digest_csrf={page.cookies['digest_csrf']}"  # a Secure cookie (base_url is https): sent by hand
            codes = [
                browser.post(
                    "/subscribe",
                    data={"email": f"x{n}@example.com", "csrf_token": token},
                    headers={"x-forwarded-for": f"198.51.100.{n}", "x-forwarded-proto": "https", "cookie": cookie},
                ).status_code
                for n in range(4)
            ]
            assert codes == [200, 200, 200, 429]  # [web] subscribe_ip_limit = 3, whatever the header says
            moved = browser.get("/2025/02", headers={"host": "evil.example"}, follow_redirects=False)
            assert moved.headers["location"] == "https://links.example.com/2025/02/"
    finally:
        server.terminate()
        server.wait(timeout=30)
