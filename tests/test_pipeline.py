"""The whole pipeline on the shipped content, escaping, feeds, and the month boundary."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date
from email import message_from_bytes, policy
from html.parser import HTMLParser
from pathlib import Path

import feedparser
import pytest
from delivery_support import REPO, digest

from digest.checks import html_links
from digest.collect import load_archive
from digest.config import load_config
from digest.render.email import UNSUBSCRIBE_TOKEN

FEBRUARY_LINKS = [
    "https://youtube.com/watch?v=_1f-o0nqpEI",
    "https://jax-ml.github.io/scaling-book/",
    "https://huggingface.co/spaces/nanotron/ultrascale-playbook",
    "https://srush.github.io/raspy/",
    "https://www.youtube.com/watch?v=a42key59cZQ&list=WL&index=2",
    "https://gwern.net/subculture",
    "https://zhengdongwang.com/2024/12/29/2024-letter.html",
    "https://www.sesame.com/research/crossing_the_uncanny_valley_of_voice#demo",
]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    """A copy of the repository's project (config, content, templates) with one subscriber, published."""
    root = tmp_path_factory.mktemp("shipped")
    for name in ("content", "templates"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "digest.toml", root / "digest.toml")
    digest(root, "subscribers", "add", "writer@example.com", check=True)
    result = digest(root, "publish", check=True)
    assert "built 2025-02: 8 entries" in result.stdout and "sent 1" in result.stdout
    return root


def test_every_february_link_is_in_the_email_the_text_and_the_feeds(shipped):
    html = (shipped / "output" / "email" / "2025-02.html").read_text()
    text = (shipped / "output" / "email" / "2025-02.txt").read_text()
    site = shipped / "output" / "site"
    rss, atom = (site / "feed.xml").read_text(), (site / "atom.xml").read_text()
    feed_json = json.loads((site / "feed.json").read_text())
    february = next(i for i in feed_json["items"] if i["url"].endswith("/2025/02/"))
    contents = [
        next(e for e in feedparser.parse(xml, sanitize_html=False, resolve_relative_uris=False).entries if e.link.endswith("/2025/02/")).content[0].value
        for xml in (rss, atom)
    ]
    for link in FEBRUARY_LINKS:
        escaped = link.replace("&", "&amp;")
        assert escaped in html and link in text, link
        assert all(escaped in content for content in contents) and escaped in february["content_html"], link


def test_the_eml_parses_into_text_then_html_with_the_headers(shipped):
    [eml] = list((shipped / "outbox" / "2025-02").glob("*.eml"))
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message.get_content_type() == "multipart/alternative" and not message.defects
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    for header in ("Subject", "From", "To", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"):
        assert message[header], header
    assert message["Subject"] == "Link Archive: February 2025"
    assert message["To"] == "writer@example.com"
    unsubscribe = re.match(r"<(https://links\.example\.com/unsubscribe/[^>]+)>, <mailto:", message["List-Unsubscribe"]).group(1)
    assert unsubscribe in parts[0].get_content() and unsubscribe in parts[1].get_content()
    assert UNSUBSCRIBE_TOKEN not in eml.read_text()


def test_the_email_keeps_what_mail_clients_need(shipped):
    html = (shipped / "output" / "email" / "2025-02.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert '<html lang="en"' in html
    assert "@media only screen and (min-width:480px)" in html and "!important" in html  # responsive rules survive inlining
    assert "<!--[if mso" in html  # Outlook conditional comments survive
    assert "prefers-color-scheme: dark" in html and '<meta name="color-scheme" content="light dark"' in html
    assert 'role="presentation"' in html
    assert re.search(r'<div style="display:none;[^"]*">8 links this month: How to Scale Your Model;', html)  # hidden preheader
    assert 'href="https://links.example.com/2025/02/"' in html  # view in browser
    assert len(html.encode()) < 100_000


def test_the_text_part_is_written_for_reading(shipped):
    text = (shipped / "output" / "email" / "2025-02.txt").read_text()
    assert text.startswith("Link Archive: February 2025\n===")
    assert "ARTICLES AND BLOGS\n------------------" in text
    assert "* How to Scale Your Model\n  https://jax-ml.github.io/scaling-book/\n\n  - This is published" in text
    assert "extensive blog called gwern.net [1]." in text and "[1] http://gwern.net/" in text  # links as footnotes
    assert "<" not in text.replace("<http", "")  # no HTML tags
    assert all(len(line) <= 78 for line in text.splitlines() if "http" not in line)


def test_feeds_are_valid_absolute_and_stable(shipped):
    site = shipped / "output" / "site"
    before = {name: (site / name).read_bytes() for name in ("feed.xml", "atom.xml", "feed.json")}
    for name in ("feed.xml", "atom.xml"):
        parsed = feedparser.parse((site / name).read_bytes(), sanitize_html=False, resolve_relative_uris=False)
        assert not parsed.bozo, parsed.bozo_exception
        assert [e.link for e in parsed.entries] == ["https://links.example.com/2025/02/", "https://links.example.com/2024/12/"]
        assert {link.rel for link in parsed.feed.links} >= {"self", "alternate"}
        assert all(e.published_parsed and e.id.startswith("tag:links.example.com,") for e in parsed.entries)
        content = parsed.entries[0].content[0].value
        assert "<table" not in content and "style=" not in content and UNSUBSCRIBE_TOKEN not in content
    ids = [e.id for e in feedparser.parse((site / "atom.xml").read_bytes()).entries]
    digest(shipped, "build", check=True)  # rebuilding changes nothing: the same ids, the same bytes
    assert [e.id for e in feedparser.parse((site / "atom.xml").read_bytes()).entries] == ids
    assert {name: (site / name).read_bytes() for name in before} == before
    feed = json.loads((site / "feed.json").read_text())
    assert feed["version"] == "https://jsonfeed.org/version/1.1" and feed["feed_url"] == "https://links.example.com/feed.json"
    assert feed["items"][0]["date_published"].endswith("-05:00")


def test_archive_pages(shipped):
    site = shipped / "output" / "site"
    index = (site / "index.html").read_text()
    assert '<link rel="alternate" type="application/rss+xml"' in index and 'type="application/atom+xml"' in index
    assert index.index("February 2025") < index.index("December 2024")  # newest first
    assert 'id="subscribe"' in index
    page = (site / "2025" / "02" / "index.html").read_text()
    for link in FEBRUARY_LINKS:
        assert link.replace("&", "&amp;") in page


def test_check_month_passes_on_the_shipped_content(shipped):
    result = digest(shipped, "check", "--month", "2025-02")
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().endswith("ok: content and the 2025-02 email is valid (76 warnings)")


def test_december_is_over_the_clipping_size_and_check_says_so(shipped):
    build = digest(shipped, "build", "--month", "2024-12", check=True)
    assert "Gmail clips messages over about 102 KB" in build.stderr
    check = digest(shipped, "check", "--month", "2024-12")
    assert check.returncode == 1 and "2024-12 email: HTML is" in check.stdout and "over the 100,000-byte limit" in check.stdout


class _Scripts(HTMLParser):
    """Collects what could run in a browser: script tags, on* attributes, script URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "object", "embed", "svg"):
            self.found.append(tag)
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{tag} {name}")
            if name in ("href", "src") and value and value.strip().lower().startswith(("javascript:", "data:", "vbscript:")):
                self.found.append(f"{tag} {name}={value}")


def executable(html: str) -> list[str]:
    parser = _Scripts()
    parser.feed(html)
    return parser.found


def test_hostile_titles_sources_and_commentary_are_escaped(tmp_path):
    from delivery_support import write_project

    root = write_project(tmp_path / "hostile")
    (root / "content" / "2025" / "02" / "evil.md").write_text(
        '---\ntitle: "<script>alert(1)</script> & <img src=x onerror=alert(2)>"\nurl: https://example.com/evil?a=1&b=<2>\n'
        'date: 2025-02-15\nsource: "\\"><svg onload=alert(3)>"\nquote: "<iframe src=javascript:alert(4)>"\n---\n\n'
        "Raw <b onclick=alert(5)>html</b> and <script>alert(6)</script>.\n\n"
        "[click](javascript:alert(7)) [data](data:text/html;base64,PHNjcmlwdD4=) <a href=\"javascript:alert(8)\">a</a>\n"
    )
    digest(root, "build", check=True)
    site = root / "output" / "site"
    outputs = {
        "email": (root / "output" / "email" / "2025-02.html").read_text(),
        "page": (site / "2025" / "02" / "index.html").read_text(),
        "index": (site / "index.html").read_text(),
    }
    for name, html in outputs.items():
        assert executable(html) == [], name
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html or name == "index" and "alert(1)" not in html.replace("&lt;script&gt;alert(1)", "")
    for name in ("feed.xml", "atom.xml"):
        parsed = feedparser.parse((site / name).read_bytes(), sanitize_html=False, resolve_relative_uris=False)
        february = next(e for e in parsed.entries if e.link.endswith("/2025/02/"))
        assert executable(february.content[0].value) == [], name
    feed = json.loads((site / "feed.json").read_text())
    assert executable(next(i for i in feed["items"] if i["url"].endswith("/2025/02/"))["content_html"]) == []
    text = (root / "output" / "email" / "2025-02.txt").read_text()
    assert "<script>alert(1)</script>" in text  # the text part shows the title as written: it is plain text
    assert "javascript:" not in " ".join(html_links(outputs["email"]))


def test_the_month_boundary_follows_the_site_time_zone(tmp_path):
    from delivery_support import write_project

    root = write_project(tmp_path / "berlin")
    shutil.rmtree(root / "content" / "2025" / "02")
    toml = root / "digest.toml"
    toml.write_text(toml.read_text().replace("America/New_York", "Europe/Berlin"))
    folder = root / "content" / "2025" / "03"
    folder.mkdir()
    entries = {
        "a-00-30-local.md": "2025-03-01T00:30:00",  # Berlin time: March
        "b-late-utc.md": "2025-02-28T23:30:00+00:00",  # 00:30 on the 1st in Berlin: March
        "c-date-only.md": "2025-03-01",  # midnight in Berlin: March
        "d-feb-end.md": "2025-02-28T23:59:00+01:00",  # February
    }
    for name, when in entries.items():
        (folder / name).write_text(f"---\ntitle: {name}\nurl: https://example.com/{name}\ndate: {when}\nsection: News\n---\n")
    archive = load_archive(load_config(toml))
    march = [e.path.name for e in archive.issue(date(2025, 3, 1)).entries]
    february = [e.path.name for e in archive.issue(date(2025, 2, 1)).entries]
    assert march == ["c-date-only.md", "a-00-30-local.md", "b-late-utc.md"]  # by date within the section
    assert february == ["d-feb-end.md"]


def test_issue_order_is_section_order_then_date(shipped):
    archive = load_archive(load_config(shipped / "digest.toml"))
    issue = archive.issue(date(2025, 2, 1))
    assert [s.name for s in issue.sections] == ["Articles and Blogs", "YouTube and Podcasts"]
    assert issue.key == "2025-02" and issue.permalink == "https://links.example.com/2025/02/"
    assert issue.subject == "Link Archive: February 2025"
    drafts = shipped / "content" / "2025" / "02" / "zz-draft.md"
    drafts.write_text("---\ntitle: Not yet\nurl: https://example.com/draft\ndate: 2025-02-02\ndraft: true\n---\n")
    try:
        titles = [e.title for e in load_archive(load_config(shipped / "digest.toml")).issue(date(2025, 2, 1)).entries]
        assert "Not yet" not in titles
    finally:
        drafts.unlink()
