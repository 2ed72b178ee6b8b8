"""Issue -> the email, once per issue: Jinja -> MJML -> HTML -> premailer, plus a text part."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from markupsafe import Markup

from digest.collect import Issue
from digest.config import Config
from digest.gcpause import stage
from digest.render import TemplateError, render_template
from digest.render.text import Footnotes, commentary_text, footnote_list

log = logging.getLogger(__name__)

UNSUBSCRIBE_TOKEN = "%%UNSUBSCRIBE_URL%%"  # space-free, so premailer and QP leave it whole


@dataclass(frozen=True)
class RenderedEmail:
    """The issue's email before personalisation: `UNSUBSCRIBE_TOKEN` marks the per-recipient slot."""

    key: str
    subject: str
    html: str
    text: str
    warnings: tuple[str, ...] = ()


@stage
def render_email(issue: Issue, config: Config) -> RenderedEmail:
    """Render both parts; warn (not fail) when the HTML would be clipped by Gmail."""
    context = _context(issue, config)
    html = inline_css(mjml_to_html(render_template(config.paths.templates, "email.mjml", **context)))
    text = _render_text(issue, config, context)
    warnings = []
    size = len(html.encode("utf-8"))
    if size > config.email.max_html_bytes:
        warnings.append(
            f"{issue.key}: the email HTML is {size / 1000:.0f} KB; Gmail clips messages over about 102 KB, "
            "hiding the rest and the unsubscribe link (trim commentary or split the month)"
        )
    for warning in warnings:
        log.warning("%s", warning)
    return RenderedEmail(issue.key, issue.subject, html, text, tuple(warnings))


def _context(issue: Issue, config: Config) -> dict:
    return {
        "site": config.site,
        "sender": config.sender,
        "issue": issue,
        "sections": [
            (section.name, [(entry, Markup(entry.body_html)) for entry in section.entries])
            for section in issue.sections
        ],
        "unsubscribe_url": Markup(UNSUBSCRIBE_TOKEN),
    }


def _render_text(issue: Issue, config: Config, context: dict) -> str:
    notes = Footnotes()
    sections = [
        (section.name, [(entry, commentary_text(entry.body, notes, "  ")) for entry in section.entries])
        for section in issue.sections
    ]
    text = render_template(
        config.paths.templates,
        "email.txt",
        **{**context, "sections": sections, "footnotes": footnote_list(notes), "unsubscribe_url": UNSUBSCRIBE_TOKEN},
    )
    return text.replace("\r\n", "\n")


def mjml_to_html(source: str) -> str:
    import mjml

    try:
        html = mjml.mjml2html(source, disable_comments=True, fonts={})
    except ValueError as exc:
        raise TemplateError(f"email.mjml: MJML could not render the template: {exc}") from None
    if "<mj-" in html:
        tag = html[html.index("<mj-") :].split(">", 1)[0] + ">"
        raise TemplateError(f"email.mjml: unknown MJML tag {tag} (check the spelling)")
    return html.replace("<!doctype html>", "<!DOCTYPE html>", 1)


def inline_css(html: str) -> str:
    """Inline CSS for clients that ignore <style>, keeping @media and !important for the rest."""
    import premailer

    return premailer.Premailer(
        html,
        keep_style_tags=True,
        strip_important=False,
        allow_network=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()
