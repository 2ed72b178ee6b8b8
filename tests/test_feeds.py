"""digest/render/feed.py: RSS 2.0, Atom 1.0 and JSON Feed 1.1, one item per issue, ids stable across builds."""

from __future__ import annotations

import json
from datetime import datetime
from email.utils import parsedate_to_datetime
from xml.etree import ElementTree

import feedparser
import pytest
from conftest import site_settings
from html_safety import executable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_render import HOSTILE

from digest.collect import load_archive
from digest.render.feed import item_id, render_feeds
from digest.render.site import render_article

ATOM = "{http://www.w3.org/2005/Atom}"


def feeds_of(project, keep: int | None = None):
    config = project.config()
    archive = load_archive(config)
    issues = archive.recent(keep or config.feeds.keep)
    return render_feeds(issues, {i.key: render_article(i, config) for i in issues}, config)


def parse(xml: bytes):
    """feedparser as a reader would use it, but with content kept exactly as written (LIBRARY-NOTES 4)."""
    parsed = feedparser.parse(xml, sanitize_html=False, resolve_relative_uris=False)
    assert not parsed.bozo, parsed.get("bozo_exception")
    return parsed


@pytest.fixture
def two_months(project):
    project.entry("scaling", title="How to Scale Your Model", url="https://jax-ml.github.io/scaling-book/", date="2025-02-14T10:00:00", body="A *guide* to [TPUs](https://cloud.google.com/tpu).")  # fmt: skip
    project.entry("late", title="Late February", date="2025-02-28T23:30:00+01:00", section="News")
    project.entry("december", title="December link", date="2024-12-20", section="Substack")
    return project


def test_rss_and_atom_parse_cleanly_newest_first_with_self_links(two_months):
    feeds = feeds_of(two_months)
    for xml, own in ((feeds.rss, "feed.xml"), (feeds.atom, "atom.xml")):
        parsed = parse(xml)
        assert parsed.feed.title == "Link Archive"
        assert {(link.rel, link.href) for link in parsed.feed.links} >= {("self", f"https://links.example.com/{own}"), ("alternate", "https://links.example.com/")}  # fmt: skip
        assert [e.link for e in parsed.entries] == ["https://links.example.com/2025/02/", "https://links.example.com/2024/12/"]  # fmt: skip
        assert [e.id for e in parsed.entries] == ["tag:links.example.com,2025-02-01:issue-2025-02", "tag:links.example.com,2024-12-01:issue-2024-12"]  # fmt: skip
        assert [e.title for e in parsed.entries] == ["Link Archive: February 2025", "Link Archive: December 2024"]


def test_rss_dates_carry_a_time_zone(two_months):
    channel = ElementTree.fromstring(feeds_of(two_months).rss).find("channel")
    published = [parsedate_to_datetime(item.findtext("pubDate")) for item in channel.iter("item")]
    assert [d.isoformat() for d in published] == ["2025-02-28T23:30:00+01:00", "2024-12-20T00:00:00+01:00"]
    assert channel.findtext("lastBuildDate") == "Fri, 28 Feb 2025 23:30:00 +0100"  # the newest entry, not the clock


def test_atom_and_json_dates_carry_a_time_zone(two_months):
    feeds = feeds_of(two_months)
    atom = ElementTree.fromstring(feeds.atom)
    assert atom.findtext(f"{ATOM}updated") == "2025-02-28T23:30:00+01:00"
    for entry in atom.iter(f"{ATOM}entry"):
        for name in ("published", "updated"):
            assert datetime.fromisoformat(entry.findtext(f"{ATOM}{name}")).utcoffset() is not None
    items = json.loads(feeds.json)["items"]
    assert [i["date_published"] for i in items] == ["2025-02-28T23:30:00+01:00", "2024-12-20T00:00:00+01:00"]


def test_the_json_feed(two_months):
    feed = json.loads(feeds_of(two_months).json)
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert (feed["home_page_url"], feed["feed_url"]) == (
        "https://links.example.com/",
        "https://links.example.com/feed.json",
    )
    first = feed["items"][0]
    assert (
        first["id"] == "tag:links.example.com,2025-02-01:issue-2025-02"
        and first["url"] == "https://links.example.com/2025/02/"
    )
    assert first["summary"] == "2 links this month: How to Scale Your Model; Late February"
    assert first["tags"] == ["Articles and Blogs", "News"]
    assert '<a href="https://jax-ml.github.io/scaling-book/">How to Scale Your Model</a>' in first["content_html"]


def test_item_content_is_the_web_article_without_mail_markup(two_months):
    feeds = feeds_of(two_months)
    contents = [e.content[0].value for xml in (feeds.rss, feeds.atom) for e in parse(xml).entries]
    contents += [i["content_html"] for i in json.loads(feeds.json)["items"]]
    assert len(contents) == 6
    for content in contents:
        assert "%%UNSUBSCRIBE_URL" not in content
        assert "<table" not in content and "style=" not in content and "<!--[if" not in content
    assert b"%%UNSUBSCRIBE_URL" not in feeds.rss + feeds.atom + feeds.json
    assert '<em>guide</em> to <a href="https://cloud.google.com/tpu">TPUs</a>' in contents[0]


def test_ids_and_bytes_are_the_same_on_every_build(two_months):
    first, again = feeds_of(two_months), feeds_of(two_months)
    assert (first.rss, first.atom, first.json) == (again.rss, again.atom, again.json)


def test_an_item_keeps_its_id_when_the_month_changes(two_months):
    before = {e.link: e.id for e in parse(feeds_of(two_months).atom).entries}
    two_months.entry("added-later", title="Added later", date="2025-02-20")
    after = parse(feeds_of(two_months).atom)
    assert {e.link: e.id for e in after.entries} == before
    assert "Added later" in after.entries[0].content[0].value  # the content did change


def test_item_ids_come_from_the_host_and_the_month(two_months):
    config = two_months.config()
    issue = load_archive(config).issue(datetime(2025, 2, 1).date())
    assert item_id(issue, config) == "tag:links.example.com,2025-02-01:issue-2025-02"


def test_keep_limits_the_items_to_the_newest_issues(project):
    for month in ("2024-10", "2024-11", "2024-12", "2025-01"):
        project.entry(f"in-{month}", date=f"{month}-10")
    feeds = feeds_of(project, keep=2)
    assert [e.link for e in parse(feeds.atom).entries] == ["https://links.example.com/2025/01/", "https://links.example.com/2024/12/"]  # fmt: skip
    assert len(json.loads(feeds.json)["items"]) == 2


def test_hostile_entries_are_inert_in_every_feed(project):
    project.entry("evil", date="2025-02-15", **HOSTILE)
    feeds = feeds_of(project)
    for xml in (feeds.rss, feeds.atom):
        [entry] = parse(xml).entries
        assert executable(entry.content[0].value) == []
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in entry.content[0].value
    [item] = json.loads(feeds.json)["items"]
    assert executable(item["content_html"]) == []
    assert item["summary"] == f"1 link this month: {HOSTILE['title']}"  # JSON Feed's summary is plain text


def test_the_rss_description_is_text_even_to_a_reader_that_renders_it(project):
    # Readers treat RSS <description> as HTML: the preheader (titles, as written) must arrive escaped.
    project.entry("evil", date="2025-02-15", **HOSTILE)
    [entry] = parse(feeds_of(project).rss).entries
    assert entry.summary_detail.type == "text/html"
    assert executable(entry.summary) == []
    assert (
        entry.summary
        == "1 link this month: &lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(2)&gt;"
    )


def test_a_site_under_a_path_gets_absolute_links(new_project):
    settings = site_settings()
    settings["site"]["base_url"] = "https://example.org/links"
    project = new_project(settings=settings)
    project.entry("one", date="2025-02-01")
    feeds = feeds_of(project)
    parsed = parse(feeds.rss)
    assert ("self", "https://example.org/links/feed.xml") in {(link.rel, link.href) for link in parsed.feed.links}
    assert parsed.entries[0].link == "https://example.org/links/2025/02/"
    assert parsed.entries[0].id == "tag:example.org,2025-02-01:issue-2025-02"


xml_text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn")) | st.sampled_from('\n\t"\\/<&'), min_size=1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(xml_text, min_size=2, max_size=2), xml_text, xml_text)
def test_the_json_feed_is_what_json_dumps_writes_byte_for_byte(two_months, articles, title, description):
    """Each item's JSON is remembered and joined by hand: the document must still be exactly what
    `json.dumps(feed, ensure_ascii=False, indent=2)` writes, for any text (the second build is from memory)."""
    from dataclasses import replace

    config = two_months.config()
    config = replace(config, site=replace(config.site, title=title, description=description))
    issues = load_archive(config).recent(2)
    contents = dict(zip([i.key for i in issues], articles, strict=True))
    for _ in range(2):
        written = render_feeds(issues, contents, config).json
        assert written == json.dumps(json.loads(written), ensure_ascii=False, indent=2).encode() + b"\n"
        assert [i["content_html"] for i in json.loads(written)["items"]] == [contents[i.key] for i in reversed(issues)]
