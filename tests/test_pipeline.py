"""The whole pipeline on the shipped content (a temporary copy of the repository's digest.toml, content/
and templates/, so its own output/ and outbox/ stay untouched): `digest publish` -> email HTML and text,
the archive, RSS/Atom/JSON feeds and an .eml in the outbox; plus hostile input and the month boundary
end to end."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime
from pathlib import Path
from xml.etree import ElementTree

import feedparser
import pytest
from conftest import REPO
from html_safety import executable  # noqa: F401  (test_hostile imports it from here)
from test_render import HOSTILE

from digest.checks import html_links
from digest.render.email import SLOT_PATTERN

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
FEEDS = ("feed.xml", "atom.xml", "feed.json")


def copy_shipped(root: Path) -> Path:
    root.mkdir(parents=True)
    for name in ("content", "templates"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "digest.toml", root / "digest.toml")
    return root


def repository_state() -> dict[str, tuple[int, int]]:
    """The repository's own build and send folders, as (size, mtime) per file."""
    return {
        str(p.relative_to(REPO)): (p.stat().st_size, p.stat().st_mtime_ns)
        for name in ("output", "outbox", "var")
        for p in sorted((REPO / name).rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def repo_before() -> dict[str, tuple[int, int]]:
    return repository_state()


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, cli, repo_before):
    """The shipped project with one subscriber, after `digest publish` (the latest month, June 2025's
    notes) and `digest publish --month 2025-02` (February's links)."""
    root = copy_shipped(tmp_path_factory.mktemp("shipped") / "site")
    assert cli(root, "subscribers", "add", "writer@example.com").code == 0
    published = cli(root, "publish")
    assert published.code == 0, published.output
    assert published.out.splitlines()[0].startswith("built 2025-06: 6 entries, email ")
    assert "2025-06: sent 1, retried 0, failed 0, skipped 0 already sent" in published.out
    published = cli(root, "publish", "--month", "2025-02")
    assert published.code == 0, published.output
    assert published.out.splitlines()[0].startswith("built 2025-02: 8 entries, email ")
    assert "2025-02: sent 1, retried 0, failed 0, skipped 0 already sent" in published.out
    return root


def feed_entry(xml: bytes):
    parsed = feedparser.parse(xml, sanitize_html=False, resolve_relative_uris=False)
    assert not parsed.bozo, parsed.get("bozo_exception")
    return next(e for e in parsed.entries if e.link == "https://links.example.com/2025/02/")


def the_eml(root: Path):
    [eml] = list((root / "outbox" / "2025-02").glob("*.eml"))
    return eml, message_from_bytes(eml.read_bytes(), policy=policy.default)


def test_publish_writes_the_email_the_archive_the_feeds_and_one_message(shipped):
    written = {str(p.relative_to(shipped / "output")) for p in (shipped / "output").rglob("*") if p.is_file()}
    assert written == {
        "email/2025-06.html", "email/2025-06.txt", "email/2025-02.html", "email/2025-02.txt",
        "site/index.html", "site/style.css", "site/2024/07/index.html", "site/2024/12/index.html",
        "site/2025/02/index.html", "site/2025/06/index.html", "site/feed.xml", "site/atom.xml", "site/feed.json",
    }  # fmt: skip
    assert len(list((shipped / "outbox").rglob("*.eml"))) == 2


def test_every_february_link_is_in_every_channel(shipped):
    out = shipped / "output"
    html, text = (out / "email" / "2025-02.html").read_text(), (out / "email" / "2025-02.txt").read_text()
    page = (out / "site" / "2025" / "02" / "index.html").read_text()
    rss, atom = (feed_entry((out / "site" / name).read_bytes()).content[0].value for name in ("feed.xml", "atom.xml"))
    json_item = next(
        i for i in json.loads((out / "site" / "feed.json").read_text())["items"] if i["id"].endswith("2025-02")
    )
    _, message = the_eml(shipped)
    plain, rich = (part.get_content() for part in message.iter_parts())
    for link in FEBRUARY_LINKS:
        assert link in html_links(html), link
        assert f"\n  {link}\n" in text, link  # under its title in the text part
        for name, channel in (("page", page), ("rss", rss), ("atom", atom), ("json", json_item["content_html"]), ("eml html", rich)):  # fmt: skip
            assert link in html_links(channel), (name, link)
        assert link in plain, link


def test_entries_follow_the_section_order_then_date(shipped):
    html = (shipped / "output" / "email" / "2025-02.html").read_text()
    links = [h for h in html_links(html) if h in FEBRUARY_LINKS]
    # all eight share one date: Articles and Blogs first (by file name), then YouTube and Podcasts
    assert links == [FEBRUARY_LINKS[i] for i in (1, 2, 3, 5, 6, 7, 0, 4)]
    assert html.index(">Articles and Blogs</h2>") < html.index(">YouTube and Podcasts</h2>")


def test_the_eml_is_multipart_alternative_text_then_html(shipped):
    eml, message = the_eml(shipped)
    assert message.get_content_type() == "multipart/alternative" and not message.defects
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert [p.get_content_charset() for p in parts] == ["utf-8", "utf-8"]
    assert all(not p.defects for p in parts)
    unsubscribe = re.search(r"<(https://[^>]+)>", message["List-Unsubscribe"]).group(1)
    for part, built in zip(parts, ("2025-02.txt", "2025-02.html"), strict=True):  # the built email, personalised
        expected = (shipped / "output" / "email" / built).read_text()
        expected = SLOT_PATTERN.sub(unsubscribe, expected)
        assert part.get_content().replace("\r\n", "\n") == expected
    assert not SLOT_PATTERN.search(eml.read_text(errors="replace"))


def test_the_eml_has_the_list_headers(shipped):
    _, message = the_eml(shipped)
    assert message["Subject"] == "Link Archive: February 2025"
    assert message["From"] == "Link Archive <digest@links.example.com>"
    assert message["To"] == "writer@example.com"
    assert parsedate_to_datetime(message["Date"]).utcoffset() is not None
    assert re.fullmatch(r"<2025-02\.[0-9a-f]+@links\.example\.com>", message["Message-ID"])
    https, mailto = re.fullmatch(r"<(https://[^>]+)>, <(mailto:[^>]+)>", message["List-Unsubscribe"]).groups()
    assert https.startswith("https://links.example.com/unsubscribe/")
    assert mailto == "mailto:digest@links.example.com?subject=unsubscribe"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "Link Archive <digest.links.example.com>"
    assert all(https in part.get_content() for part in message.iter_parts())  # the same link in both bodies


def test_the_feeds_parse_cleanly_with_self_links_and_zoned_dates(shipped):
    site = shipped / "output" / "site"
    for name in ("feed.xml", "atom.xml"):
        parsed = feedparser.parse((site / name).read_bytes(), sanitize_html=False, resolve_relative_uris=False)
        assert not parsed.bozo, (name, parsed.get("bozo_exception"))
        assert ("self", f"https://links.example.com/{name}") in {(link.rel, link.href) for link in parsed.feed.links}
        assert [e.link for e in parsed.entries] == [f"https://links.example.com/{m}/" for m in ("2025/06", "2025/02", "2024/12", "2024/07")]  # fmt: skip
    rss = ElementTree.fromstring((site / "feed.xml").read_bytes())
    assert [item.findtext("pubDate") for item in rss.iter("item")] == ["Tue, 10 Jun 2025 00:00:00 -0400", "Fri, 28 Feb 2025 22:59:59 -0500", "Tue, 31 Dec 2024 00:00:00 -0500", "Sun, 28 Jul 2024 00:00:00 -0400"]  # fmt: skip
    atom = (site / "atom.xml").read_text()
    assert "<published>2025-02-28T22:59:59-05:00</published>" in atom and "<updated>2025-02-28T22:59:59-05:00</updated>" in atom  # fmt: skip
    items = json.loads((site / "feed.json").read_text())["items"]
    assert [datetime.fromisoformat(i["date_published"]).utcoffset().total_seconds() for i in items] == [-14400, -18000, -18000, -14400]  # fmt: skip


def test_feed_content_has_no_mail_token_and_no_email_layout(shipped):
    site = shipped / "output" / "site"
    assert all(b"%%UNSUBSCRIBE_URL" not in (site / name).read_bytes() for name in FEEDS)
    contents = [feed_entry((site / name).read_bytes()).content[0].value for name in ("feed.xml", "atom.xml")]
    contents += [i["content_html"] for i in json.loads((site / "feed.json").read_text())["items"]]
    for content in contents:
        assert "<table" not in content and 'role="presentation"' not in content and "style=" not in content
        assert "mj-" not in content and "<!--[if" not in content


def test_feed_ids_and_bytes_are_identical_across_two_builds(shipped, cli, tmp_path):
    site = shipped / "output" / "site"
    first = {name: (site / name).read_bytes() for name in FEEDS}
    other = copy_shipped(tmp_path / "second")  # another build, at another time, in another folder
    assert cli(other, "build").code == 0
    second = {name: (other / "output" / "site" / name).read_bytes() for name in FEEDS}
    ids = {name: [e.id for e in feedparser.parse(data).entries] for name, data in first.items() if name != "feed.json"}
    assert ids["atom.xml"] == [f"tag:links.example.com,{m}-01:issue-{m}" for m in ("2025-06", "2025-02", "2024-12", "2024-07")]  # fmt: skip
    assert ids["feed.xml"] == ids["atom.xml"]
    assert [i["id"] for i in json.loads(first["feed.json"])["items"]] == ids["atom.xml"]
    assert second == first
    assert cli(shipped, "build").code == 0  # and a rebuild in place changes nothing
    assert {name: (site / name).read_bytes() for name in FEEDS} == first


def test_check_month_passes_on_the_shipped_content(shipped, cli):
    result = cli(shipped, "check", "--month", "2025-02")
    assert result.code == 0, result.out
    assert result.out.endswith("ok: content and the 2025-02 email is valid (76 warnings)\n")
    assert not [line for line in result.out.splitlines() if line.startswith("error:")]


def test_the_archive_pages(shipped):
    site = shipped / "output" / "site"
    index = (site / "index.html").read_text()
    assert index.index("June 2025") < index.index("February 2025") < index.index("December 2024") < index.index("July 2024")  # fmt: skip
    assert 'href="https://links.example.com/feed.xml"' in index and 'href="https://links.example.com/atom.xml"' in index
    december = (site / "2024" / "12" / "index.html").read_text()
    assert december.count('<article class="entry">') == 76


def test_december_is_cut_to_fit_under_the_clipping_size_and_says_so(shipped, cli):
    build = cli(shipped, "build", "--month", "2024-12")
    shown = re.search(r"email \d+ KB \((\d+) in full, (\d+) linked to the web page\)", build.out)
    assert build.code == 0 and shown and int(shown[1]) + int(shown[2]) == 76, build.out
    assert "over [email] max_html_bytes (100,000)" in build.err
    html = (shipped / "output" / "email" / "2024-12.html").read_text()
    assert len(html.encode()) < 100_000 and f"{shown[2]} more on the web" in html
    check = cli(shipped, "check", "--month", "2024-12")
    assert check.code == 0, check.out
    assert re.search(r"^warning: 2024-12 email: too long for one email .*: \d+ of 76 entries", check.out, re.M)


def test_send_dry_run_writes_nothing_and_send_to_writes_one_eml(cli, tmp_path):
    root = copy_shipped(tmp_path / "site")
    assert cli(root, "subscribers", "add", "reader@example.com").code == 0
    dry = cli(root, "send", "--dry-run")
    assert dry.code == 0 and "would go to 1 subscriber(s); 0 already have it; nothing sent" in dry.out
    assert not (root / "outbox").exists() and not (root / "output").exists()
    copy = cli(root, "send", "--to", "x@example.com")
    assert (copy.code, copy.out) == (0, "sent: x@example.com\n")
    [eml] = list((root / "outbox").rglob("*.eml"))
    assert message_from_bytes(eml.read_bytes(), policy=policy.default)["To"] == "x@example.com"


# -- hostile input and the month boundary, end to end ------------------------------------------


def test_hostile_input_is_escaped_in_every_written_file(project, cli):
    project.entry("evil", date="2025-02-15", **HOSTILE)
    assert cli(project.root, "build").code == 0
    out = project.root / "output"
    html_files = ["email/2025-02.html", "site/2025/02/index.html", "site/index.html"]
    for name in html_files:
        text = (out / name).read_text()
        assert executable(text) == [], name
        assert "<script" not in text and "<img" not in text and "<iframe" not in text and "<svg" not in text, name
    for name in ("feed.xml", "atom.xml"):
        entry = feed_entry((out / "site" / name).read_bytes())
        assert executable(entry.content[0].value) == [] and executable(entry.get("summary", "")) == [], name
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in entry.content[0].value
    item = json.loads((out / "site" / "feed.json").read_text())["items"][0]
    assert executable(item["content_html"]) == []
    assert "javascript:" not in " ".join(h for name in html_files for h in html_links((out / name).read_text()))


def test_the_month_boundary_in_berlin_end_to_end(project, cli):
    project.entry("march-local", date="2025-03-01T00:30:00", folder="2025/02", title="Half past midnight, local")
    project.entry(
        "february-offset", date="2025-02-28T23:30:00+01:00", folder="2025/02", title="Half past eleven, Berlin"
    )
    project.entry("march-date", date="2025-03-01", folder="2025/02", title="Date only")
    assert cli(project.root, "build", "--month", "2025-03").code == 0
    march = (project.root / "output" / "email" / "2025-03.txt").read_text()
    assert "* Date only\n" in march and "* Half past midnight, local\n" in march
    assert "Half past eleven" not in march and "2 links from A Writer." in march
    assert cli(project.root, "build", "--month", "2025-02").code == 0
    february = (project.root / "output" / "email" / "2025-02.txt").read_text()
    assert "* Half past eleven, Berlin\n" in february and "1 link from A Writer." in february


def test_the_repository_own_output_and_outbox_are_untouched(cli, tmp_path):
    """Publishing a copy of the shipped project writes into the copy only, whether run in the copy's
    folder or from the repository's own with --config: the repository's output/, outbox/ and var/ stay
    as they were."""
    before = repository_state()
    root = copy_shipped(tmp_path / "site")
    assert cli(root, "subscribers", "add", "writer@example.com").code == 0
    assert cli(root, "publish").code == 0
    assert cli(REPO, "--config", str(root / "digest.toml"), "build", "--month", "2024-12").code == 0
    assert cli(REPO, "--config", str(root / "digest.toml"), "send", "--to", "x@example.com").code == 0
    assert (root / "output" / "site" / "2024" / "12" / "index.html").is_file()
    assert len(list((root / "outbox").rglob("*.eml"))) == 2
    assert repository_state() == before
