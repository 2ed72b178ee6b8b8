"""Issue -> the email, once per issue: Jinja -> MJML -> HTML -> premailer, plus a text part.

A month too long for one email (Gmail clips past about 102 KB of HTML, unsubscribe link
included) is cut to the entries that fit, followed by the rest's titles under "N more on the
web" and a link to the issue's page, which always has everything (`[email] overflow = "link"`);
or it is left whole and refused before sending (`"refuse"`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import logging
import re
import secrets
import sys
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from markupsafe import Markup

from digest.collect import Issue
from digest.config import Config
from digest.content import SLOT_PREFIX, Entry  # (content containing the slot prefix is refused)
from digest.gcpause import stage
from digest.render import TemplateError, render_template
from digest.render.text import Footnotes, commentary_text, footnote_list, quote_text, url_line, wrap

log = logging.getLogger(__name__)

SLOT_PATTERN = re.compile(r"%%UNSUBSCRIBE_URL(?:_[0-9a-f]{32})?%%")  # (the bare form: issues saved before)
UNSUBSCRIBE_TOKEN = SLOT_PREFIX + "%%"  # legacy name of the slot, kept for stored issues


def new_slot() -> str:
    """A fresh per-render placeholder for the unsubscribe URL: content can't know or write it.

    Space-free, so premailer and quoted-printable leave it whole."""
    return f"{SLOT_PREFIX}_{secrets.token_hex(16)}%%"


def settled_slot(html: str, text: str, slot: str) -> tuple[str, str, str]:
    """The render's random slot replaced by one derived from the email itself: the same input
    builds the same bytes, and still nothing but the template's positions holds it."""
    digest = hashlib.sha256((html.replace(slot, "") + "\0" + text.replace(slot, "")).encode()).hexdigest()
    final = f"{SLOT_PREFIX}_{digest[:32]}%%"
    return html.replace(slot, final), text.replace(slot, final), final


@dataclass(frozen=True)
class RenderedEmail:
    """The issue's email before personalisation: `slot` marks where each reader's unsubscribe URL goes."""

    key: str
    subject: str
    html: str
    text: str
    slot: str = UNSUBSCRIBE_TOKEN
    warnings: tuple[str, ...] = ()
    total: int = 0  # the issue's entries
    shown: int = 0  # those shown in full; the rest are listed under "N more on the web"
    full_bytes: int = 0  # the HTML's size with every entry in full, before any cut
    fits: int = 0  # how many entries fit in full under the limit

    @property
    def cut(self) -> bool:
        return self.shown < self.total

    @classmethod
    def from_stored(cls, key: str, subject: str, html: str, text: str) -> RenderedEmail:
        """An email saved by `send`, for workers: its slot is the one placeholder in the HTML."""
        found = SLOT_PATTERN.search(html)
        return cls(key, subject, html, text, found.group() if found else UNSUBSCRIBE_TOKEN)


@stage
def render_email(issue: Issue, config: Config) -> RenderedEmail:
    """Render both parts; cut a month whose final HTML would pass `[email] max_html_bytes`."""
    slot = new_slot()
    total = len(issue.entries)
    html = _render_html(issue, config, slot, total)
    full = final_html_bytes(html, slot, config)
    limit = config.email.max_html_bytes
    warnings = []
    shown = fits = total
    list_rest = True
    if full > limit:
        fits, cut_html, list_rest = _fit(issue, config, slot, limit, full)
    if full > limit and config.email.overflow == "link":
        shown, html = fits, cut_html
        warnings.append(
            f"{issue.key}: the email with every entry would be {full:,} bytes of HTML, over [email] max_html_bytes "
            f"({limit:,}); it shows {shown} of {total} entries in full and links the other {total - shown} "
            "to the web page"
        )
    elif full > limit:
        list_rest = True  # "refuse" keeps the email whole
        warnings.append(
            f"{issue.key}: the email HTML is {full:,} bytes, over [email] max_html_bytes ({limit:,}) and only "
            f"{fits} of {total} entries fit; Gmail would clip it, hiding the rest and the unsubscribe link, so it "
            'will not be sent ([email] overflow = "refuse")'
        )
    for warning in warnings:
        log.warning("%s", warning)
    text = _render_text(issue, config, *_context(issue, config, slot, shown, list_rest))
    html, text, slot = settled_slot(html, text, slot)
    return RenderedEmail(issue.key, issue.subject, html, text, slot, tuple(warnings), total, shown, full, fits)


def final_html_bytes(html: str, slot: str, config: Config) -> int:
    """The HTML's size as the longest personalised message carries it (its lines end in CRLF on the wire)."""
    from digest.tokens import longest_unsubscribe_url

    crlf = html.count("\n") - html.count("\r\n")
    return len(html.encode("utf-8")) + crlf + html.count(slot) * (longest_unsubscribe_url(config) - len(slot))


def _fit(issue: Issue, config: Config, slot: str, limit: int, full: int) -> tuple[int, str, bool]:
    """The most entries, in section order, that fit in full with the rest listed, with that HTML and whether
    the rest's titles are listed (when even they don't fit, the email has only the link to the page).

    Every probe is a whole render (premailer dominates it), and a plain binary search's first probes are its
    largest (half the month, then a quarter...). Each guess here is where the size, growing by about the same
    for each entry shown in full, would reach the limit between the two sizes that bracket it (regula falsi);
    after a few guesses the bracket is halved. The answer is the binary search's; a month of entries of
    similar length takes two or three probes, each near the limit in size."""
    total = len(issue.entries)
    sizes = {total: full}
    found: dict[int, str] = {}

    def fits(shown: int) -> bool:
        html = _render_html(issue, config, slot, shown)
        sizes[shown] = final_html_bytes(html, slot, config)
        if sizes[shown] <= limit:
            found[shown] = html
        return sizes[shown] <= limit

    if not fits(0):  # even the titles don't fit: the link alone
        return 0, _render_html(issue, config, slot, 0, list_rest=False), False
    low, high = 0, total  # `low` fits, `high` doesn't
    guesses = 4  # then halving: a month whose sizes are far from a line still takes log2(entries) probes more
    while high - low > 1:
        if guesses and sizes[high] > sizes[low]:
            guesses -= 1
            probe = low + (limit - sizes[low]) * (high - low) // (sizes[high] - sizes[low])
            probe = min(max(probe, low + 1), high - 1)
        else:
            probe = (low + high + 1) // 2
        if fits(probe):
            low = probe
        else:
            high = probe
    return low, found[low], True


def _context(
    issue: Issue, config: Config, slot: str, shown: int, list_rest: bool = True
) -> tuple[dict[str, Any], list[tuple[str, list[Entry]]]]:
    """What both parts' templates are given, and the first `shown` entries, shown in full, by section."""
    entries = issue.entries
    keep = {id(e) for e in entries[:shown]}
    sections = [
        (section.name, [e for e in section.entries if id(e) in keep])
        for section in issue.sections
        if any(id(e) in keep for e in section.entries)
    ]
    rest = list(entries[shown:])
    return {
        "site": config.site,
        "sender": config.sender,
        "issue": issue,
        "more_count": len(rest),
        "more": rest if list_rest else [],
        "unsubscribe_url": Markup(slot),
    }, sections


def _render_html(issue: Issue, config: Config, slot: str, shown: int, *, list_rest: bool = True) -> str:
    context, chosen_sections = _context(issue, config, slot, shown, list_rest)
    sections = [
        (name, [(e, Markup(e.quote_html), Markup(e.body_html)) for e in chosen]) for name, chosen in chosen_sections
    ]
    note = issue.note
    html_context = {
        **context,
        "intro": Markup(note.intro_html if note else ""),
        "outro": Markup(note.outro_html if note else ""),
        "quotes": [(q, Markup(q.html)) for q in issue.quotes],
    }
    return inline_css(
        mjml_to_html(render_template(config.paths.templates, "email.mjml", sections=sections, **html_context))
    )


def _render_text(issue: Issue, config: Config, context: dict[str, Any], sections: list) -> str:
    """The text part; its links are numbered in reading order: the introduction, the quotes, the
    entries, the outro."""
    notes = Footnotes()
    intro = commentary_text(issue.note.intro, notes) if issue.note else ""
    quotes = [(q, quote_text(q.text, notes)) for q in issue.quotes]
    text_sections = [
        (name, [(e, quote_text(e.quote, notes), commentary_text(e.body, notes, "  ")) for e in chosen])
        for name, chosen in sections
    ]
    outro = commentary_text(issue.note.outro, notes) if issue.note else ""
    text = render_template(
        config.paths.templates,
        "email.txt",
        **{**context, "unsubscribe_url": str(context["unsubscribe_url"])},
        sections=text_sections,
        intro=intro,
        outro=outro,
        quotes=quotes,
        footnotes=footnote_list(notes),
        wrap=wrap,
        url_line=url_line,
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
    return _inliner()(
        html,
        keep_style_tags=True,
        strip_important=False,
        allow_network=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()


@functools.cache
def _premailer() -> ModuleType:
    """premailer, with its one validating parse made like the others, and without importing requests (see
    `_ImportedOnUse`).

    `disable_validation=True` reaches premailer's parse of the style sheet and of each element's style, but
    not `merge_styles`, which parses an element's own style again through cssutils' validator. That compiles
    a regular expression per CSS property the first time it meets one (25 of the 50 ms the first inlining in
    a process takes) only to log what `cssutils_logging_level` silences: the declarations come out the same
    (tests/test_render.py compares the shipped emails with and without it)."""
    if "requests" not in sys.modules:
        sys.modules["requests"] = _ImportedOnUse("requests")
    import premailer
    from premailer import merge_style

    original = getattr(merge_style, "csstext_to_pairs", None)
    if original is None or not hasattr(original, "_lock"):  # another premailer: leave it as it is
        return premailer

    def unvalidated(csstext: str, validate: bool = True) -> Any:
        return original(csstext, validate=False)

    unvalidated._lock = original._lock  # type: ignore[attr-defined]  # the function takes its lock by this name
    merge_style.csstext_to_pairs = unvalidated
    return premailer


_STYLE_RULES: dict[tuple[Any, ...], tuple[list, list]] = {}


@functools.cache
def _inliner() -> type:
    """premailer's Premailer, reading each style sheet's rules once per process: it turns every rule's
    declarations back into text through cssutils on every call (8 ms of the 18 ms an email's inlining takes
    when the process inlined before), for the same style sheets every time (the theme's)."""
    base = _premailer().Premailer

    class Inliner(base):  # type: ignore[misc, valid-type]
        def _parse_style_rules(self, css_body: str, ruleset_index: int) -> tuple[list, list]:
            options = (self.strip_important, self.disable_validation, self.exclude_pseudoclasses,
                       self.include_star_selectors)  # fmt: skip
            key = (css_body, ruleset_index, *options)
            found = _STYLE_RULES.get(key)
            if found is None:
                found = super()._parse_style_rules(css_body, ruleset_index)
                if len(_STYLE_RULES) < 256:
                    _STYLE_RULES[key] = found
            rules, leftover = found
            return list(rules), list(leftover)  # premailer extends and sorts what it is given

    return Inliner


class _ImportedOnUse(ModuleType):
    """A stand-in for a module that is imported only when something uses it.

    premailer imports requests (with urllib3, charset detection and ssl: 20-30 ms a process) to fetch
    external style sheets, which `allow_network=False` never does. The stand-in is what its `import
    requests` finds; the first attribute anything reads of it imports the real package, which from then on
    is in sys.modules and answers every read (tests/test_render.py)."""

    _lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        with self._lock:
            real = self.__dict__.get("_real")
            if real is None:
                if sys.modules.get(self.__name__) is self:
                    del sys.modules[self.__name__]
                real = importlib.import_module(self.__name__)
                self.__dict__["_real"] = real
        return getattr(real, name)
