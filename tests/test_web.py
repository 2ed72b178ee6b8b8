"""The web front's routes through Starlette's test client, every error path included."""

from __future__ import annotations

import re
import time
from html import unescape
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from delivery_support import database_url, digest, make_project, postgres  # noqa: F401
from starlette.testclient import TestClient

from digest import tokens
from digest.config import load_config
from digest.publish import open_store
from digest.store import runs as run_log
from digest.store import subscribers as subs
from digest.web import create_app

SECRET = "test-secret"
ADMIN = "admin-token-for-tests"


@pytest.fixture
def site(make_project) -> Path:
    root = make_project(extra="\n[web]\nsubscribe_limit = 3\nsubscribe_ip_limit = 6\nmax_body_bytes = 2048\n")
    digest(root, "build", check=True)
    return root


@pytest.fixture
def app(site, monkeypatch):
    monkeypatch.setenv("DIGEST_SECRET_KEY", SECRET)
    monkeypatch.setenv("DIGEST_ADMIN_TOKEN", ADMIN)
    return create_app(load_config(site / "digest.toml"))


@pytest.fixture
def client(app):
    with TestClient(app, base_url="https://links.example.com") as test_client:
        yield test_client


@pytest.fixture
def store(site):
    store = open_store(load_config(site / "digest.toml"))
    yield store
    store.close()


def form_token(client: TestClient) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text).group(1)


def subscribe(client: TestClient, email: str, token: str | None = None):
    return client.post("/subscribe", data={"email": email, "csrf_token": token or form_token(client)})


def outbox_mails(site: Path) -> list:
    return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted((site / "outbox").rglob("*.eml"))]


def confirm_link(site: Path, address: str) -> str:
    mail = next(m for m in outbox_mails(site) if m["To"] == address)
    return re.search(r"https://links\.example\.com(/confirm/\S+)", mail.get_body(("plain",)).get_content()).group(1)


def test_index_lists_issues_with_feeds_and_a_form(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.text
    assert html.index("February 2025") > 0
    assert 'rel="alternate" type="application/rss+xml"' in html and 'type="application/feed+json"' in html
    assert 'name="csrf_token"' in html and "digest_csrf" in response.headers["set-cookie"]
    assert "httponly" in response.headers["set-cookie"].lower() and "samesite=strict" in response.headers["set-cookie"].lower()


def test_issue_page_and_static_files(client):
    page = client.get("/2025/02/")
    assert page.status_code == 200 and "How to Scale Your Model" in page.text
    assert client.get("/style.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize(("path", "media"), [("/feed.xml", "application/rss+xml"), ("/atom.xml", "application/atom+xml"), ("/feed.json", "application/feed+json")])
def test_feeds_have_types_and_validators(client, path, media):
    response = client.get(path)
    assert response.status_code == 200 and response.headers["content-type"].startswith(media)
    etag, modified = response.headers["etag"], response.headers["last-modified"]
    assert client.get(path, headers={"if-none-match": etag}).status_code == 304
    assert client.get(path, headers={"if-modified-since": modified}).status_code == 304
    assert client.get(path, headers={"if-none-match": '"stale"'}).status_code == 200
    assert "max-age" in response.headers["cache-control"]


def test_subscribe_is_double_opt_in(client, site, store):
    response = subscribe(client, "New.Reader@Example.com")
    assert response.status_code == 200 and "Almost done" in response.text
    assert subs.get(store, "new.reader@example.com").status == "pending"
    link = confirm_link(site, "new.reader@example.com")
    confirmed = client.get(link)
    assert confirmed.status_code == 200 and "You're subscribed" in unescape(confirmed.text)
    assert subs.get(store, "new.reader@example.com").status == "active"


def test_the_answer_never_reveals_whether_an_address_is_known(client, store):
    subs.add(store, "known@example.com")
    known = subscribe(client, "known@example.com")
    unknown = subscribe(client, "stranger@example.com")
    assert known.status_code == unknown.status_code == 200
    strip = lambda html: re.sub(r'value="[^"]*"', "", html)  # noqa: E731
    assert strip(known.text) == strip(unknown.text)
    assert subs.get(store, "known@example.com").status == "active"


def test_an_invalid_address_gets_a_message_not_a_500(client, store):
    for bad in ("not-an-address", "", "a@b", "x" * 400 + "@example.com", "' OR 1=1; --@example.com"):
        response = subscribe(client, bad)
        assert response.status_code == 400, bad
        assert "doesn't look like an email address" in unescape(response.text)
    assert subs.counts(store) == {}


def test_csrf_is_required(client, app, store):
    assert client.post("/subscribe", data={"email": "a@example.com", "csrf_token": "forged"}).status_code == 403
    with TestClient(app, base_url="https://links.example.com") as fresh:  # no cookie at all
        assert fresh.post("/subscribe", data={"email": "a@example.com", "csrf_token": form_token(client)}).status_code == 403
    assert subs.get(store, "a@example.com") is None


def test_rate_limits_per_address_and_per_client(client):
    token = form_token(client)
    codes = [subscribe(client, "same@example.com", token).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    codes = [subscribe(client, f"other{n}@example.com", token).status_code for n in range(4)]
    assert codes[-1] == 429  # 3 + 3 attempts from this client so far; the 7th is refused


def test_large_bodies_are_refused(client):
    token = form_token(client)
    response = client.post("/subscribe", data={"email": "a@example.com", "csrf_token": token, "pad": "x" * 5000})
    assert response.status_code == 413


def test_confirmation_tokens_are_checked(client, site, store):
    subscribe(client, "c@example.com")
    link = confirm_link(site, "c@example.com")
    token = link.rsplit("/", 1)[1]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    response = client.get(f"/confirm/{tampered}")
    assert response.status_code == 400 and "This link doesn't work" in unescape(response.text) and "Traceback" not in response.text
    sub = subs.get(store, "c@example.com")
    as_unsubscribe = tokens.make_token(SECRET, "unsubscribe", tokens.TokenSubject("c@example.com", sub.id))
    assert client.get(f"/confirm/{as_unsubscribe}").status_code == 400  # a token for another purpose
    other = tokens.make_token(SECRET, "confirm", tokens.TokenSubject("someone@example.com", sub.id))
    assert client.get(f"/confirm/{other}").status_code == 400  # moved to another address
    assert subs.get(store, "c@example.com").status == "pending"


def test_an_expired_confirmation_says_so(client, store, monkeypatch):
    sub, _ = subs.add(store, "late@example.com", status=subs.SubscriberStatus.PENDING)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 8 * 24 * 3600)
    old = tokens.make_token(SECRET, "confirm", tokens.TokenSubject("late@example.com", sub.id))
    monkeypatch.setattr(time, "time", real_time)
    response = client.get(f"/confirm/{old}")
    assert response.status_code == 400 and "This link has expired" in response.text and "Subscribe again" in response.text


def test_unsubscribe_get_shows_a_button_and_post_unsubscribes(client, app, store):
    sub, _ = subs.add(store, "leaving@example.com")
    token = tokens.make_token(SECRET, "unsubscribe", tokens.TokenSubject("leaving@example.com", sub.id))
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and '<form method="post"' in page.text and ">Unsubscribe</button>" in page.text
    assert subs.get(store, "leaving@example.com").status == "active"  # a prefetch does nothing
    with TestClient(app, base_url="https://links.example.com") as provider:  # RFC 8058: no cookies, one POST
        done = provider.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click", headers={"content-type": "application/x-www-form-urlencoded"})
        again = provider.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click", headers={"content-type": "application/x-www-form-urlencoded"})
    assert done.status_code == again.status_code == 200
    assert subs.get(store, "leaving@example.com").status == "unsubscribed"


def test_an_unsubscribe_token_cannot_be_moved_to_another_subscriber(client, store):
    victim, _ = subs.add(store, "victim@example.com")
    attacker, _ = subs.add(store, "attacker@example.com")
    moved = tokens.make_token(SECRET, "unsubscribe", tokens.TokenSubject("attacker@example.com", victim.id))
    client.post(f"/unsubscribe/{moved}")
    assert subs.get(store, "victim@example.com").status == "active"
    forged = tokens.make_token("wrong-secret", "unsubscribe", tokens.TokenSubject("victim@example.com", victim.id))
    assert client.post(f"/unsubscribe/{forged}").status_code == 400
    assert client.post("/unsubscribe/' OR 1=1 --").status_code == 400
    assert subs.get(store, "victim@example.com").status == "active"


def test_security_headers_everywhere(client):
    for path in ("/", "/2025/02/", "/feed.xml", "/subscribe", "/nope", "/unsubscribe/garbage"):
        headers = client.get(path).headers
        assert "default-src 'none'" in headers["content-security-policy"], path
        assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer", path


def test_errors_are_pages_not_tracebacks(client):
    missing = client.get("/2031/01/")
    assert missing.status_code == 404 and "Not found" in missing.text and "Traceback" not in missing.text
    assert client.put("/subscribe").status_code == 405
    assert client.post("/subscribe", content=b"\xff\xfe garbage", headers={"content-type": "multipart/form-data; boundary=x"}).status_code in (400, 403)


def test_no_open_redirects(client):
    for path in ("/subscribe?next=https://evil.example/", "/confirm/x?next=https://evil.example/", "//evil.example/", "/%2F%2Fevil.example"):
        response = client.get(path, follow_redirects=False)
        assert not (300 <= response.status_code < 400 and "evil.example" in response.headers.get("location", "")), path


def test_admin_is_off_without_a_token(site, monkeypatch):
    monkeypatch.setenv("DIGEST_SECRET_KEY", SECRET)
    monkeypatch.delenv("DIGEST_ADMIN_TOKEN", raising=False)
    with TestClient(create_app(load_config(site / "digest.toml")), base_url="https://links.example.com") as c:
        assert c.post("/admin/send", headers={"authorization": f"Bearer {ADMIN}"}).status_code == 404
        assert c.get("/admin/runs").status_code == 404


def test_admin_needs_the_right_bearer_token(client, store, site):
    subs.add(store, "reader@example.com")
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {ADMIN}"}, {"authorization": ADMIN}):
        response = client.post("/admin/send", json={"month": "2025-02"}, headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
    assert run_log.recent(store) == []
    assert not list((site / "outbox").rglob("*.eml"))


def test_admin_send_runs_in_the_background_and_reports(client, store, site):
    for n in range(3):
        subs.add(store, f"reader{n}@example.com")
    auth = {"authorization": f"Bearer {ADMIN}"}
    started = client.post("/admin/send", json={"month": "2025-02"}, headers=auth)
    assert started.status_code == 202
    run_id = started.json()["run_id"]
    deadline = time.monotonic() + 30
    while (run := client.get(f"/admin/runs/{run_id}", headers=auth).json())["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run["status"] == "succeeded" and run["sent"] == 3 and run["month"] == "2025-02", run
    assert len(list((site / "outbox" / "2025-02").glob("*.eml"))) == 3
    assert client.get("/admin/runs", headers=auth).json()["runs"][0]["id"] == run_id


def test_admin_send_errors(client):
    auth = {"authorization": f"Bearer {ADMIN}"}
    assert client.post("/admin/send", json={"month": "2025-13"}, headers=auth).status_code == 400
    assert client.post("/admin/send", content=b"{not json", headers={**auth, "content-type": "application/json"}).status_code == 400
    empty = client.post("/admin/send?month=2020-01", headers=auth)
    assert empty.status_code == 409 and "no entries for 2020-01" in empty.json()["error"]
    assert client.get("/admin/runs/" + "0" * 32, headers=auth).status_code == 404
    assert client.get("/admin/runs/../../etc", headers=auth).status_code == 404


def test_admin_send_refuses_invalid_content(client, site):
    (site / "content" / "2025" / "02" / "bad.md").write_text("---\ntitle: ''\ndate: 2025-02-01\n---\n")
    response = client.post("/admin/send", headers={"authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 409 and response.json()["problems"] == ["content/2025/02/bad.md:2: missing or empty title (add a line such as 'title: \"What I read\"')"]
