"""The welcome mail's two parts, through the same Jinja -> MJML -> premailer path as an issue."""

from __future__ import annotations

import calendar
from dataclasses import dataclass

from markupsafe import Markup

from digest.config import Config
from digest.render import render_template
from digest.render.email import RenderedEmail, inline_css, mjml_to_html, new_slot, settled_slot
from digest.render.text import url_line, wrap


@dataclass(frozen=True)
class LatestIssue:
    """The newest issue sent, for the welcome's 'here is the latest' link."""

    title: str  # "February 2025"
    url: str

    @classmethod
    def from_key(cls, key: str, config: Config) -> LatestIssue:
        year, month = key.split("-")
        return cls(f"{calendar.month_name[int(month)]} {year}", f"{config.site.base_url}{year}/{month}/")


def render_welcome(config: Config, latest: LatestIssue | None) -> RenderedEmail:
    """One RenderedEmail for every welcome: the Composer fills in each reader's unsubscribe link."""
    slot = new_slot()
    subject = " ".join(f"Welcome to {config.site.title}".split())
    context = {"site": config.site, "sender": config.sender, "latest": latest, "subject": subject}
    templates = config.paths.templates
    html = inline_css(mjml_to_html(render_template(templates, "welcome.mjml", unsubscribe_url=Markup(slot), **context)))
    text = render_template(templates, "welcome.txt", unsubscribe_url=slot, wrap=wrap, url_line=url_line, **context)
    html, text, slot = settled_slot(html, text.replace("\r\n", "\n"), slot)
    return RenderedEmail("welcome", subject, html, text, slot)
