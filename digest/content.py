"""One content file -> an `Entry`, or the problems that stop it from being one."""

from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time, tzinfo
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import frontmatter
import yaml
from frontmatter.default_handlers import YAMLHandler

from digest.errors import Problem

MAX_ENTRY_BYTES = 1_000_000
KNOWN_KEYS = ("title", "url", "date", "section", "source", "tags", "draft", "quote")
_KEY_LINE = re.compile(r"^([A-Za-z_][\w-]*)\s*:", re.MULTILINE)


@dataclass(frozen=True)
class Entry:
    """A link the writer saved, with their commentary; dates are timezone-aware."""

    path: Path
    title: str
    url: str | None
    date: datetime
    section: str
    source: str | None = None
    tags: tuple[str, ...] = ()
    draft: bool = False
    quote: str | None = None
    body: str = ""  # the commentary as written (Markdown)
    body_html: str = ""  # filled in for a collected month; raw HTML is escaped, never passed


class _SafeYAML(YAMLHandler):
    """python-frontmatter's YAML handler with the C safe loader: no Python objects, fast."""

    def load(self, fm: str, **kwargs: object) -> Any:
        return yaml.load(fm, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


_HANDLER = _SafeYAML()


def parse_entry(
    path: Path, raw: bytes, sections: tuple[str, ...], tz: tzinfo
) -> tuple[Entry | None, list[Problem]]:
    """Parse and validate one file; returns the entry (if usable) and every problem found."""
    text, problem = _decode(path, raw)
    if problem:
        return None, [problem]
    if not frontmatter.checks(text):
        return None, [Problem(path, "no front matter", 1, "start the file with a '---' line, then 'title:', 'url:' and 'date:' lines, then '---'")]
    try:
        meta, body = frontmatter.parse(text, handler=_HANDLER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        return None, [Problem(path, f"malformed front matter: {exc.problem or exc.context}", line, "fix the YAML between the '---' lines")]
    except yaml.YAMLError as exc:
        return None, [Problem(path, f"malformed front matter: {exc}", 1)]
    if not isinstance(meta, dict):
        return None, [Problem(path, "front matter must be 'key: value' lines", 2)]
    lines = _key_lines(text)
    return _validate(path, meta, body, lines, sections, tz)


def _decode(path: Path, raw: bytes) -> tuple[str, Problem | None]:
    if len(raw) > MAX_ENTRY_BYTES:
        return "", Problem(path, f"file is larger than {MAX_ENTRY_BYTES:,} bytes, the limit for one entry", hint="shorten the commentary")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return "", Problem(path, f"not UTF-8 text (byte 0x{raw[exc.start]:02x})", line, "save the file as UTF-8")
    if "\x00" in text:
        return "", Problem(path, "binary file, not a Markdown entry", hint="remove it from content/")
    return text.removeprefix("\ufeff"), None


def _key_lines(text: str) -> dict[str, int]:
    """1-based line of each top-level front-matter key, for messages."""
    end = text.find("\n---", 3)
    head = text[: end if end > 0 else len(text)]
    return {m.group(1): head.count("\n", 0, m.start()) + 1 for m in _KEY_LINE.finditer(head)}


def _validate(path: Path, meta: dict, body: str, lines: dict[str, int], sections: tuple[str, ...], tz: tzinfo) -> tuple[Entry | None, list[Problem]]:
    problems: list[Problem] = []

    def bad(key: str, message: str, hint: str = "") -> None:
        problems.append(Problem(path, message, lines.get(key, 1), hint))

    title = _text(meta.get("title"))
    if title is None:
        bad("title", "missing or empty title", "add a line such as 'title: \"What I read\"'")
    url = _check_url(meta.get("url"), path, lines, problems)
    when = _check_date(meta.get("date"), tz)
    if when is None:
        given = meta.get("date")
        shown = "missing date" if given in (None, "") else f"unparseable date {str(given)!r}"
        bad("date", shown, "use YYYY-MM-DD or an ISO datetime such as 2025-02-28T22:59:00+01:00")
    section = _check_section(meta.get("section"), sections)
    if section is None:
        bad("section", f"unknown section {str(meta.get('section'))!r}", _section_hint(str(meta.get("section")), sections))
    source, quote = _text(meta.get("source")), _text(meta.get("quote"))
    for key in ("source", "quote"):
        if meta.get(key) is not None and not isinstance(meta.get(key), (str, int, float)):
            bad(key, f"{key} must be text")
    tags = _check_tags(meta.get("tags"))
    if tags is None:
        bad("tags", "tags must be a list of words, such as 'tags: [ai, chips]'")
    draft = meta.get("draft", False)
    if not isinstance(draft, bool):
        bad("draft", f"draft must be true or false, not {draft!r}")
    for key in meta:
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(str(key), KNOWN_KEYS, 1)
            problems.append(Problem(path, f"unknown front-matter key {key!r} is ignored", lines.get(str(key)), f"did you mean {close[0]!r}?" if close else "", warning=True))
    if any(not p.warning for p in problems):
        return None, problems
    entry = Entry(path, title, url, when, section, source, tags, draft, quote, body.strip())
    return entry, problems


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = " ".join(value.split())
    return value or None


def _check_url(value: Any, path: Path, lines: dict[str, int], problems: list[Problem]) -> str | None:
    line = lines.get("url")
    if value is None or (isinstance(value, str) and not value.strip()):
        problems.append(Problem(path, "no url: the title renders without a link", line, warning=True))
        return None
    if not isinstance(value, str):
        problems.append(Problem(path, "url must be text", line))
        return None
    url = value.strip()
    message = url_problem(url)
    if message:
        problems.append(Problem(path, message, line, "use an http:// or https:// address"))
        return None
    return url


def url_problem(url: str) -> str | None:
    """Why `url` can't be a link in an email or feed, or None if it can."""
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return f"url {url[:80]!r} contains spaces or control characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"url {url[:80]!r} is not a valid address"
    if parts.scheme.lower() not in ("http", "https"):
        scheme = parts.scheme or "no scheme"
        return f"url scheme {scheme!r} is not allowed in {url[:80]!r}"
    if not parts.hostname:
        return f"url {url[:80]!r} has no host"
    return None


def _check_date(value: Any, tz: tzinfo) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=tz) if value.tzinfo is None else value
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=tz)
    return None


def _check_section(value: Any, sections: tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return sections[0]
    wanted = " ".join(str(value).split()).casefold()
    return next((s for s in sections if s.casefold() == wanted), None)


def _section_hint(value: str, sections: tuple[str, ...]) -> str:
    """Suggest the section whose start looks most like what was typed ('Papres' -> 'Papers and Reports')."""
    typed = value.casefold()

    def score(section: str) -> float:
        whole = difflib.SequenceMatcher(None, typed, section.casefold()).ratio()
        start = difflib.SequenceMatcher(None, typed, section.casefold()[: len(typed) + 2]).ratio()
        return max(whole, start)

    best = max(sections, key=score)
    listed = "use one of: " + ", ".join(sections)
    return f"did you mean {best!r}? {listed}" if score(best) >= 0.6 else listed


def _check_tags(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [t for t in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(t, (str, int, float)) and not isinstance(t, bool) for t in value):
        return None
    return tuple(t for t in (" ".join(str(t).split()) for t in value) if t)


MARKDOWN_RULES = [
    "blockquote", "code", "fence", "heading", "hr", "lheading", "list", "paragraph", "reference",
    "autolink", "backticks", "emphasis", "entity", "escape", "image", "link", "newline", "linkify",
    "strikethrough", "table",
]  # CommonMark without html_block/html_inline: raw HTML in commentary is shown as text  # fmt: skip
MAX_NESTING = 20  # deeper lists or quotes are shown as plain paragraphs, not nested markup


@cache
def _markdown() -> Any:
    """markdown-it-pyrs: the markdown-it rules, in Rust (about 30x faster than markdown-it-py).

    Its link validation leaves javascript:, vbscript:, file: and data: links as text.
    """
    import markdown_it_pyrs

    return markdown_it_pyrs.MarkdownIt("zero").enable_many(MARKDOWN_RULES)


@lru_cache(maxsize=8192)
def commentary_tree(body: str) -> Any:
    """The commentary's syntax tree, parsed once per text for the HTML and plain-text renderers."""
    return _markdown().tree(body)


def too_deep(tree: Any) -> bool:
    """More than MAX_NESTING lists or quotes inside each other (walked without recursion)."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        depth += node.name in ("bullet_list", "ordered_list", "blockquote")
        if depth > MAX_NESTING:
            return True
        stack.extend((child, depth) for child in node.children)
    return False


def commentary_html(body: str) -> str:
    """Commentary as HTML; raw HTML in it is escaped, and absurd nesting flattened to paragraphs."""
    if not body:
        return ""
    if too_deep(commentary_tree(body)):
        return "".join(f"<p>{html.escape(' '.join(p.split()))}</p>\n" for p in body.split("\n\n") if p.strip())
    return _markdown().render(body)


def with_html(entry: Entry) -> Entry:
    """The entry with its commentary rendered to HTML."""
    if entry.body_html or not entry.body:
        return entry
    return replace(entry, body_html=commentary_html(entry.body))
