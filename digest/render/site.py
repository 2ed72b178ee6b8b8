"""The web archive: an index of every issue and one page per issue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from digest.collect import Issue
from digest.config import Config
from digest.gcpause import stage
from digest.render import render_template

STATIC_FILES = ("style.css",)


@dataclass(frozen=True)
class Page:
    path: str  # relative to the site folder, e.g. "2025/02/index.html"
    body: bytes


@stage
def render_article(issue: Issue, config: Config) -> str:
    """The issue's content as plain HTML: the archive page's article and the feeds' content."""
    return render_template(config.paths.templates, "site/_article.html", issue=issue, site=config.site)


@stage
def render_site(issues: Sequence[Issue], articles: dict[str, str], config: Config) -> tuple[Page, ...]:
    """Issue pages first, then the index, then static files: the order they are written in."""
    templates = config.paths.templates
    ordered = sorted(issues, key=lambda i: i.month)
    pages = []
    for index, issue in enumerate(ordered):
        html = render_template(
            templates,
            "site/issue.html",
            site=config.site,
            issue=issue,
            article=Markup(articles[issue.key]),
            older=ordered[index - 1] if index else None,
            newer=ordered[index + 1] if index + 1 < len(ordered) else None,
            root="../../",  # relative, so a page opened from disk finds its stylesheet
        )
        pages.append(Page(f"{issue.month:%Y/%m}/index.html", html.encode()))
    index_html = render_index(list(reversed(ordered)), config, root="")
    pages.append(Page("index.html", index_html.encode()))
    for name in STATIC_FILES:
        pages.append(Page(name, (templates / "site" / name).read_bytes()))
    return tuple(pages)


def render_index(issues_newest_first: Sequence[Issue], config: Config, **extra: object) -> str:
    """The archive index; the web front passes `form` to show the subscribe form inline."""
    return render_template(
        config.paths.templates, "site/index.html", site=config.site, issues=issues_newest_first, **extra
    )
