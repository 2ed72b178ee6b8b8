"""The web archive: an index of every issue and one page per issue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

from markupsafe import Markup

from digest.collect import Issue
from digest.config import Config
from digest.gcpause import stage
from digest.render import render_template, template_file

STATIC_FILES = ("style.css",)
T = TypeVar("T")


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
    ordered = sorted(issues, key=lambda i: i.month)
    pages = [
        render_page(issue, articles[issue.key], neighbours(ordered, index), config)
        for index, issue in enumerate(ordered)
    ]
    return (*pages, render_index_page(ordered, config), *static_pages(config))


def neighbours(ordered: Sequence[T], index: int) -> tuple[T | None, T | None]:
    """(older, newer) of the issue (or month) at `index` in `ordered`, oldest first: what its page links to."""
    return (ordered[index - 1] if index else None, ordered[index + 1] if index + 1 < len(ordered) else None)


def page_path(month: date) -> str:
    return f"{month:%Y/%m}/index.html"


def render_page(issue: Issue, article: str, neighbours: tuple[Issue | None, Issue | None], config: Config) -> Page:
    """One issue's page: its article between a header and links to the older and newer issues."""
    html = render_template(
        config.paths.templates,
        "site/issue.html",
        site=config.site,
        issue=issue,
        article=Markup(article),
        older=neighbours[0],
        newer=neighbours[1],
        root="../../",  # relative, so a page opened from disk finds its stylesheet
    )
    return Page(page_path(issue.month), html.encode())


def render_index_page(ordered: Sequence[Issue], config: Config) -> Page:
    """The index of every issue, `ordered` oldest first."""
    return Page("index.html", render_index(list(reversed(ordered)), config, root="").encode())


def static_pages(config: Config) -> tuple[Page, ...]:
    templates = config.paths.templates
    return tuple(Page(name, template_file(templates, f"site/{name}").read_bytes()) for name in STATIC_FILES)


def render_index(issues_newest_first: Sequence[Issue], config: Config, **extra: object) -> str:
    """The archive index; the web front passes `form` to show the subscribe form inline."""
    return render_template(
        config.paths.templates, "site/index.html", site=config.site, issues=issues_newest_first, **extra
    )
