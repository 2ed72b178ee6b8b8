"""The naive chain `digest build` is measured against: one month of entries through python-frontmatter,
markdown-it-py, Jinja2 (the same email.mjml), mjml-python and premailer, plus RSS and Atom feeds (feedgen)
of that month and 11 pre-rendered items; no validation, no cache, no archive pages.

    .venv/bin/python bench/naive.py PROJECT_ROOT YYYY-MM

PROJECT_ROOT is a project made by bench/pipeline.py: digest.toml, content/YYYY/MM/*.md, and
naive-prerendered.json (the 11 earlier items). Writes into PROJECT_ROOT/naive-output/.
"""

from __future__ import annotations

import json
import sys
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import frontmatter
import jinja2
import mjml
import premailer
from feedgen.feed import FeedGenerator
from markdown_it import MarkdownIt
from markupsafe import Markup

REPO = Path(__file__).resolve().parent.parent


def build(root: Path, month: date, prerendered: list[dict]) -> None:
    settings = tomllib.loads((root / "digest.toml").read_text())
    site = SimpleNamespace(**{"language": "en", **settings["site"]})
    md = MarkdownIt("commonmark", {"html": False})
    entries = []
    for path in sorted((root / "content" / f"{month:%Y}" / f"{month:%m}").glob("*.md")):
        post = frontmatter.load(path)
        entries.append(SimpleNamespace(**post.metadata, html=md.render(post.content)))
    sections = [
        (name, [(e, Markup(""), Markup(e.html)) for e in entries if e.section == name]) for name in site.sections
    ]
    issue = SimpleNamespace(
        title=f"{month:%B %Y}",
        subject=f"{site.title}: {month:%B %Y}",
        preheader=f"{len(entries)} links this month",
        permalink=f"{site.base_url}{month:%Y/%m}/",
        entries=entries,
    )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(REPO / "digest" / "theme"), autoescape=jinja2.select_autoescape(["mjml", "html"])
    )
    source = env.get_template("email.mjml").render(
        site=site, issue=issue, sections=[s for s in sections if s[1]], more=[], more_count=0, unsubscribe_url="%%U%%"
    )
    html = premailer.Premailer(
        mjml.mjml2html(source),
        keep_style_tags=True,
        strip_important=False,
        allow_network=False,
        disable_validation=True,
    ).transform()
    out = root / "naive-output"
    out.mkdir(exist_ok=True)
    (out / f"{month:%Y-%m}.html").write_text(html)
    article = "".join(f'<h3><a href="{e.url}">{e.title}</a></h3>\n{e.html}' for e in entries)
    items = [*prerendered, {"key": f"{month:%Y-%m}", "title": issue.subject, "html": article}]
    for atom in (False, True):
        (out / ("atom.xml" if atom else "feed.xml")).write_bytes(_feed(site, items, atom=atom))


def _feed(site: SimpleNamespace, items: list[dict], *, atom: bool) -> bytes:
    fg = FeedGenerator()
    fg.id(site.base_url)
    fg.title(site.title)
    fg.subtitle(site.description) if atom else fg.description(site.description)
    fg.link(href=site.base_url + ("atom.xml" if atom else "feed.xml"), rel="self")
    fg.link(href=site.base_url, rel="alternate")
    for item in items:
        published = datetime.strptime(item["key"] + "-28", "%Y-%m-%d").replace(tzinfo=UTC)
        entry = fg.add_entry(order="append")
        entry.id(f"{site.base_url}#{item['key']}")
        entry.title(item["title"])
        entry.link(href=f"{site.base_url}{item['key'].replace('-', '/')}/")
        entry.published(published)
        entry.updated(published)
        entry.content(item["html"], type="html")
    return fg.atom_str(pretty=True) if atom else fg.rss_str(pretty=True)


def prerender(root: Path, months: list[date]) -> None:
    """The earlier items, as a naive pipeline would keep them from its previous runs."""
    md = MarkdownIt("commonmark", {"html": False})
    items = []
    for month in months:
        posts = [frontmatter.load(p) for p in sorted((root / "content" / f"{month:%Y/%m}").glob("*.md"))]
        html = "".join(f'<h3><a href="{p["url"]}">{p["title"]}</a></h3>\n{md.render(p.content)}' for p in posts)
        items.append({"key": f"{month:%Y-%m}", "title": f"{month:%B %Y}", "html": html})
    (root / "naive-prerendered.json").write_text(json.dumps(items))


if __name__ == "__main__":
    project = Path(sys.argv[1])
    year, number = sys.argv[2].split("-")
    build(project, date(int(year), int(number), 1), json.loads((project / "naive-prerendered.json").read_text()))
