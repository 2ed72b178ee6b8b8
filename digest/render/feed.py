"""Issues -> RSS 2.0, Atom 1.0 and JSON Feed 1.1: one item per issue, ids stable across rebuilds."""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from digest.collect import Issue
from digest.config import Config
from digest.gcpause import stage


@dataclass(frozen=True)
class Feeds:
    rss: bytes
    atom: bytes
    json: bytes


def item_id(issue: Issue, config: Config) -> str:
    """A tag: URI (RFC 4151) from the site's host and the issue's month: never from build time."""
    return f"tag:{urlsplit(config.site.base_url).hostname},{issue.month:%Y-%m}-01:issue-{issue.key}"


@stage
def render_feeds(issues: Sequence[Issue], articles: dict[str, str], config: Config) -> Feeds:
    """`issues` oldest first; each item's content is the issue's web article."""
    return Feeds(
        rss=_xml_feed(issues, articles, config, atom=False),
        atom=_xml_feed(issues, articles, config, atom=True),
        json=_json_feed(issues, articles, config),
    )


def _xml_feed(issues: Sequence[Issue], articles: dict[str, str], config: Config, *, atom: bool) -> bytes:
    from feedgen.feed import FeedGenerator

    site, base = config.site, config.site.base_url
    fg = FeedGenerator()
    fg.id(base)
    fg.title(site.title)
    fg.subtitle(site.description) if atom else fg.description(site.description)
    fg.author({"name": site.author})
    fg.language(site.language)
    fg.generator("digest")
    # feedgen takes RSS <link> from the last call: self first, alternate last
    fg.link(href=base + ("atom.xml" if atom else "feed.xml"), rel="self")
    fg.link(href=base, rel="alternate")
    if issues:
        fg.updated(max(i.published for i in issues))
    for issue in issues:
        entry = fg.add_entry(order="prepend")  # newest first in the document
        entry.id(item_id(issue, config))
        entry.title(issue.subject)
        entry.link(href=issue.permalink)
        entry.published(issue.published)
        entry.updated(issue.published)
        entry.description(html.escape(issue.preheader))  # RSS readers read <description> as HTML; the preheader is text
        entry.content(articles[issue.key], type="html")
    return fg.atom_str(pretty=True) if atom else fg.rss_str(pretty=True)


def _json_feed(issues: Sequence[Issue], articles: dict[str, str], config: Config) -> bytes:
    """`json.dumps(feed, indent=2)`, byte for byte, with each item's JSON remembered (`_json_item`): escaping the
    articles' HTML was most of the feeds' cost, and an edit changes one item."""
    site, base = config.site, config.site.base_url
    head = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": site.title,
        "home_page_url": base,
        "feed_url": base + "feed.json",
        "description": site.description,
        "language": site.language,
        "authors": [{"name": site.author}],
        "items": [],
    }
    items = [
        _json_item(
            item_id(issue, config),
            issue.permalink,
            issue.subject,
            issue.preheader,
            articles[issue.key],
            issue.published.isoformat(),
            tuple(s.name for s in issue.sections),
        )  # fmt: skip
        for issue in reversed(issues)
    ]
    text = json.dumps(head, ensure_ascii=False, indent=2)
    if items:  # the empty list json.dumps wrote last, filled as it would have filled it
        text = text[: -len("[]\n}")] + "[\n" + ",\n".join(items) + "\n  ]\n}"
    return text.encode("utf-8") + b"\n"


@functools.lru_cache(maxsize=64)
def _json_item(id: str, url: str, title: str, summary: str, content: str, published: str, tags: tuple[str, ...]) -> str:
    """One item as `json.dumps(feed, indent=2)` writes it inside "items" (JSON strings hold no raw newline, so
    indenting every line is exact)."""
    item = {
        "id": id,
        "url": url,
        "title": title,
        "summary": summary,
        "content_html": content,
        "date_published": published,
        "date_modified": published,
        "tags": list(tags),
    }
    return "\n".join("    " + line for line in json.dumps(item, ensure_ascii=False, indent=2).split("\n"))
