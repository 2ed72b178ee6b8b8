"""Pre-send checks on a rendered issue, for `digest check --month` and a writer's own CI."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from digest.collect import Archive, Issue
from digest.config import Config
from digest.errors import Problem
from digest.render.email import UNSUBSCRIBE_TOKEN, RenderedEmail


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [value for name, value in attrs if name == "href" and value]


def html_links(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.hrefs


def email_problems(email: RenderedEmail, issue: Issue, config: Config) -> list[Problem]:
    """Size, colour scheme, links in both parts, and the unsubscribe slot."""
    where = f"{issue.key} email"
    problems = []
    size = len(email.html.encode("utf-8"))
    if size > config.email.max_html_bytes:
        problems.append(
            Problem(
                where,
                f"HTML is {size:,} bytes, over the {config.email.max_html_bytes:,}-byte limit",
                hint="Gmail clips at about 102 KB; trim commentary or move entries to next month",
            )
        )
    if not re.search(r'<meta[^>]+name="color-scheme"', email.html) and "color-scheme:" not in email.html:
        problems.append(
            Problem(
                where,
                "HTML does not declare color-scheme",
                hint='add <meta name="color-scheme" content="light dark"> to templates/email.mjml',
            )
        )
    for part, body in (("HTML", email.html), ("text", email.text)):
        if UNSUBSCRIBE_TOKEN not in body:
            problems.append(
                Problem(
                    where,
                    f"the {part} part has no unsubscribe link",
                    hint=f"put {UNSUBSCRIBE_TOKEN} (the unsubscribe_url variable) in the template",
                )
            )
    missing = [h for h in dict.fromkeys(html_links(email.html)) if h != UNSUBSCRIBE_TOKEN and h not in email.text]
    for href in missing:
        problems.append(
            Problem(
                where,
                f"link {href} is in the HTML but not in the text part",
                hint="templates/email.txt should list every link",
            )
        )
    return problems


def repeated_links(archive: Archive, issue: Issue, config: Config) -> list[Problem]:
    """Links of this issue that an earlier issue already carried (a warning, not an error)."""
    earlier: dict[str, str] = {}
    for record in archive.records:
        url = record.fields[1]
        if url and not record.draft and record.month < issue.month:
            earlier.setdefault(url.rstrip("/"), f"{record.month:%Y-%m}")
    problems = []
    for entry in issue.entries:
        sent = earlier.get((entry.url or "").rstrip("/"))
        if sent:
            problems.append(
                Problem(
                    entry.path.relative_to(config.root) if entry.path.is_relative_to(config.root) else entry.path,
                    f"{entry.url} was already sent in {sent}",
                    warning=True,
                )
            )
    return problems
