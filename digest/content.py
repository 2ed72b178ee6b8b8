"""One content file -> an `Entry`, or the problems that stop it from being one."""

from __future__ import annotations

import bisect
import difflib
import html
import re
import string
import textwrap
import unicodedata
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, tzinfo
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import frontmatter
import yaml
from frontmatter.default_handlers import YAMLHandler

from digest.errors import Problem
from digest.hosts import url_warnings

MAX_ENTRY_BYTES = 1_000_000
SLOT_PREFIX = "%%UNSUBSCRIBE_URL"  # the email's per-reader placeholder (digest.render.email)
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
    quote_html: str = ""  # the quote as HTML, paragraphs and line breaks kept
    page_html: str = ""  # the commentary for the web page and feeds when it shows images ([site] images)


MAX_FRONT_MATTER_DEPTH = 100  # libyaml composes nested collections recursively: 100,000 levels crash it
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")  # not allowed in XML
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The C safe loader: no Python objects, fast."""


def _lenient(construct: Any) -> Any:
    """A scalar YAML can't build (February 30, a 5,000-digit number) stays text, for a clear message."""

    def build(loader: Any, node: Any) -> Any:
        try:
            value = construct(loader, node)
            str(value)  # a number too long to print fails here, not in a message
        except (ValueError, OverflowError):
            return loader.construct_scalar(node)
        return value

    return build


_Loader.add_constructor(
    "tag:yaml.org,2002:timestamp", _lenient(yaml.constructor.SafeConstructor.construct_yaml_timestamp)
)
_Loader.add_constructor("tag:yaml.org,2002:int", _lenient(yaml.constructor.SafeConstructor.construct_yaml_int))


def _yaml_depth(text: str) -> int:
    """An upper bound on how deeply `text` nests collections (brackets, indentation, '- - -')."""
    flow = deepest_flow = deepest_line = 0
    for ch in re.findall(r"[\[\]{}]", text):
        flow = flow + 1 if ch in "[{" else max(flow - 1, 0)
        deepest_flow = max(deepest_flow, flow)
    for line in text.split("\n"):
        deepest_line = max(deepest_line, len(line) - len(line.lstrip(" \t-?:")))
    return deepest_flow + deepest_line


class _SafeYAML(YAMLHandler):
    """python-frontmatter's YAML handler with the C safe loader, refusing absurd nesting first."""

    def load(self, fm: str, **kwargs: object) -> Any:
        if _yaml_depth(fm) > MAX_FRONT_MATTER_DEPTH:
            raise yaml.YAMLError(f"nested more than {MAX_FRONT_MATTER_DEPTH} levels deep")
        return yaml.load(fm, Loader=_Loader)


_HANDLER = SAFE_YAML = _SafeYAML()


def parse_entry(
    path: Path, raw: bytes, sections: tuple[str, ...], tz: tzinfo, *, links: bool = True
) -> tuple[Entry | None, list[Problem]]:
    """Parse and validate one file; returns the entry (if usable) and every problem found. Without
    `links`, the commentary's Markdown is not parsed for its link warnings (`link_problems`)."""
    text, problem = _decode(path, raw)
    if problem:
        return None, [problem]
    if not frontmatter.checks(text):
        return None, [
            Problem(
                path,
                "no front matter",
                1,
                "start the file with a '---' line, then 'title:', 'url:' and 'date:' lines, then '---'",
            )
        ]
    try:  # split and load here: frontmatter.parse() reads an unclosed block as body, and drops a list
        front, body = _HANDLER.split(text)
    except ValueError:
        return None, [Problem(path, "front matter is not closed", 1, "add a '---' line after the last key")]
    try:
        meta = _HANDLER.load(front)
    except yaml.MarkedYAMLError as exc:
        mark = _error_mark(exc)
        line = mark.line + 1 if mark else None
        return None, [
            Problem(
                path,
                f"malformed front matter: {exc.problem or exc.context}",
                line,
                "fix the YAML between the '---' lines",
            )
        ]
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as exc:
        return None, [Problem(path, f"malformed front matter: {exc}", 1, "fix the YAML between the '---' lines")]
    if meta is None:  # '---' then '---': no keys at all
        meta = {}
    if not isinstance(meta, dict):
        return None, [Problem(path, "front matter must be 'key: value' lines", 2, "such as 'title: What I read'")]
    lines = key_lines(text)
    slot = text.find(SLOT_PREFIX)
    if slot >= 0:
        return None, [
            Problem(
                path,
                f"{SLOT_PREFIX}... is the email's per-reader unsubscribe placeholder, which content may not contain",
                text.count("\n", 0, slot) + 1,
                "remove it",
            )
        ]
    entry, problems = _validate(path, meta, body, lines, sections, tz)
    if links and entry is not None and entry.body:
        first_line = text.count("\n", 0, len(text) - len(body.lstrip())) + 1
        problems += link_problems(path, entry.body, first_line)
    return entry, problems


def _error_mark(exc: yaml.MarkedYAMLError) -> Any:
    """Where to look: an unclosed bracket or quote is reported on the line it opened, not where YAML gave up."""
    unclosed = str(exc.context or "").startswith(("while parsing a flow", "while scanning a quoted"))
    if unclosed and exc.context_mark is not None:
        return exc.context_mark
    return exc.problem_mark or exc.context_mark


def _decode(path: Path, raw: bytes) -> tuple[str, Problem | None]:
    if len(raw) > MAX_ENTRY_BYTES:
        return "", Problem(
            path,
            f"file is larger than {MAX_ENTRY_BYTES:,} bytes, the limit for one entry",
            hint="shorten the commentary",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return "", Problem(path, f"not UTF-8 text (byte 0x{raw[exc.start]:02x})", line, "save the file as UTF-8")
    if "\x00" in text:
        return "", Problem(path, "binary file, not a Markdown entry", hint="remove it from content/")
    bad = _BAD_CHARS.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        return "", Problem(
            path,
            f"unprintable character U+{ord(bad.group()):04X} in the text",
            line,
            "delete it: feeds and email can't carry it",
        )
    return text.removeprefix("\ufeff"), None


def key_lines(text: str) -> dict[str, int]:
    """1-based line of each top-level front-matter key, for messages."""
    end = text.find("\n---", 3)
    head = text[: end if end > 0 else len(text)]
    return {m.group(1): head.count("\n", 0, m.start()) + 1 for m in _KEY_LINE.finditer(head)}


def _validate(
    path: Path, meta: dict, body: str, lines: dict[str, int], sections: tuple[str, ...], tz: tzinfo
) -> tuple[Entry | None, list[Problem]]:
    problems: list[Problem] = []

    def bad(key: str, message: str, hint: str = "") -> None:
        problems.append(Problem(path, message, lines.get(key, 1), hint))

    title = visible_text(meta.get("title"))
    if title is None:
        bad("title", "missing or empty title", "add a line such as 'title: \"What I read\"'")
    url = _check_url(meta.get("url"), path, lines, problems)
    when = _check_date(meta.get("date"), tz)
    if when is None:
        given = meta.get("date")
        shown = "missing date" if given in (None, "") else f"unparseable date {_shown(given)}"
        bad("date", shown, "use YYYY-MM-DD or an ISO datetime such as 2025-02-28T22:59:00+01:00")
    elif not _in_range(when, tz):
        bad("date", f"date {when.isoformat()} is out of range", "use a date between the years 2 and 9998")
    section = _check_section(meta.get("section"), sections)
    if section is None:
        typed = meta.get("section")
        bad(
            "section",
            f"unknown section {_shown(typed)}",
            _section_hint(str(typed)[:200] if isinstance(typed, (str, int, float)) else "", sections),
        )
    source, quote = visible_text(meta.get("source")), quote_markdown(meta.get("quote"))
    for key in ("source", "quote"):
        if meta.get(key) is not None and not isinstance(meta.get(key), (str, int, float)):
            bad(key, f"{key} must be text")
    tags = _check_tags(meta.get("tags"))
    if tags is None:
        bad("tags", "tags must be a list of words, such as 'tags: [ai, chips]'")
    for key, value in (("title", title), ("source", source), ("quote", quote), ("tags", "".join(tags or ()))):
        char = _BAD_CHARS.search(value or "")
        if char:
            bad(
                key,
                f"{key} contains the unprintable character U+{ord(char.group()):04X}",
                "delete it: feeds and email can't carry it",
            )
    draft = meta.get("draft", False)
    if not isinstance(draft, bool):
        bad("draft", f"draft must be true or false, not {_shown(draft)}")
    for key in meta:
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(str(key), KNOWN_KEYS, 1)
            problems.append(
                Problem(
                    path,
                    f"unknown front-matter key {key!r} is ignored",
                    lines.get(str(key)),
                    f"did you mean {close[0]!r}?" if close else "",
                    warning=True,
                )
            )
    if any(not p.warning for p in problems):
        return None, problems
    entry = Entry(path, title, url, when, section, source, tags, draft, quote, body.strip())
    return entry, problems


def visible_text(value: Any) -> str | None:
    """A front-matter value as one line of text; None when nothing in it would show."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = " ".join(value.split())
    visible = any(unicodedata.category(ch) not in ("Cf", "Cc", "Zs", "Zl", "Zp") for ch in value)
    return value if visible else None  # a title of zero-width spaces is an empty title


_ODD_SPACE = re.compile(r"[^\S \t]")


def quote_markdown(value: Any) -> str | None:
    """A quote as written, its paragraphs and line breaks kept (a YAML block scalar, or Markdown):
    trailing spaces and the common indent dropped, blank lines between paragraphs at most one;
    None when nothing in it would show."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or visible_text(value) is None:
        return None
    # every line break Python knows ends a line; any other white space (U+001F, a no-break space) is a space
    lines = [_ODD_SPACE.sub(" ", line).rstrip() for line in value.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", textwrap.dedent("\n".join(lines))).strip()


def _shown(value: Any, limit: int = 60) -> str:
    """A value for a message, short whatever it is (a list may be a YAML alias bomb: never str() it)."""
    if isinstance(value, (list, dict)):
        return "a list" if isinstance(value, list) else "a mapping"
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")


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
    for warning in url_warnings(urlsplit(url)):  # it parses, but is it the site the writer meant?
        problems.append(Problem(path, warning, line, warning=True))
    return url


_URL_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")  # \s is str.isspace(): one C scan, not a loop per character


def url_problem(url: str) -> str | None:
    """Why `url` can't be a link in an email or feed, or None if it can."""
    if _URL_SPACE_OR_CONTROL.search(url) or _BAD_CHARS.search(url) or BIDI_CONTROLS.search(url):
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


def _in_range(when: datetime, tz: tzinfo) -> bool:
    """Far enough from year 1 and 9999 that the month, its bounds and UTC are all representable."""
    try:
        return all(2 <= moment.year <= 9998 for moment in (when, when.astimezone(tz), when.astimezone(UTC)))
    except (OverflowError, ValueError):
        return False


def _check_section(value: Any, sections: tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return sections[0]
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return None
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
    if not isinstance(value, list) or not all(
        isinstance(t, (str, int, float)) and not isinstance(t, bool) for t in value
    ):
        return None
    return tuple(t for t in (" ".join(str(t).split()) for t in value) if t)


MARKDOWN_RULES = [
    "blockquote", "code", "fence", "heading", "hr", "lheading", "list", "paragraph", "reference",
    "autolink", "backticks", "emphasis", "entity", "escape", "image", "link", "newline", "linkify",
    "strikethrough", "table",
]  # CommonMark without html_block/html_inline: raw HTML in commentary is shown as text  # fmt: skip
MAX_NESTING = 20  # deeper lists or quotes are shown as plain paragraphs, not nested markup
# Limits checked on the text before the Rust parser sees it: it recurses without a limit (100,000
# nested '*' or '- ' crash the process) and is quadratic in reference definitions and '~~' pairs.
MAX_PARSE_DEPTH = 100
MAX_REFERENCE_DEFINITIONS = 500
MAX_STRIKETHROUGH_RUNS = 1000
_LINE_MARKERS = re.compile(r"(?:[ \t]*(?:>|[-+*](?=[ \t]|$)|\d{1,9}[.)](?=[ \t]|$)))*[ \t]*")
_DELIMITERS = re.compile(r"\*+|_+|~+|[\[\]]")


@cache
def _markdown() -> Any:
    """markdown-it-pyrs: the markdown-it rules, in Rust (about 30x faster than markdown-it-py).

    Its output goes through `sanitise`, which keeps only the allowed tags, attributes and links.
    """
    import markdown_it_pyrs

    return markdown_it_pyrs.MarkdownIt("zero").enable_many(MARKDOWN_RULES)


@lru_cache(maxsize=8192)
def commentary_tree(body: str) -> Any:
    """The commentary's syntax tree, parsed once per text for the HTML and plain-text renderers."""
    return _markdown().tree(_defused(body))


_CODE_OR_BRACKET = re.compile(r"`+|[\[\]]")
_CODE_BLOCK_LINE = re.compile(r"^(?: {0,3}(?:```|~~~)| {4}|\t)", re.MULTILINE)


def _defused(body: str) -> str:
    """`body` with each backtick run that opens no code span and sits inside a link's brackets
    written as &#96;: the same text to CommonMark, but markdown-it-pyrs 0.4 panics on "[`"."""
    if "`" not in body or "[" not in body:
        return body
    pieces = []
    for block in re.split(r"(\n[ \t]*\n)", body):
        if "`" not in block or "[" not in block or _CODE_BLOCK_LINE.search(block):
            pieces.append(block)  # (code blocks are left alone; shown_flat catches a panic there)
            continue
        marks = [(m.start(), m.end(), m.group()) for m in _CODE_OR_BRACKET.finditer(block)]
        escaped = [_backslashes_before(block, start) & 1 for start, _, _ in marks]
        runs: dict[int, list[int]] = {}  # run length -> indexes of the runs that long (closers ignore backslashes)
        for index, (_, _, text) in enumerate(marks):
            if text[0] == "`":
                runs.setdefault(len(text), []).append(index)
        depth, index, defuse = 0, 0, []
        while index < len(marks):
            start, end, text = marks[index]
            if text[0] == "`":
                length = len(text) - escaped[index]  # "\``" opens a one-backtick span after a literal one
                same = runs.get(length, [])
                later = bisect.bisect_right(same, index)
                if length and later < len(same):
                    index = same[later]  # a code span: brackets inside it don't count
                elif length and depth:
                    defuse.append((end - length, end))
            elif not escaped[index]:
                depth = depth + 1 if text == "[" else max(depth - 1, 0)
            index += 1
        for start, end in reversed(defuse):
            block = block[:start] + "&#96;" * (end - start) + block[end:]
        pieces.append(block)
    return "".join(pieces)


def _backslashes_before(text: str, position: int) -> int:
    count = 0
    while position > count and text[position - count - 1] == "\\":
        count += 1
    return count


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


def too_costly(body: str) -> bool:
    """Commentary the Rust parser must not see: it could crash it or take minutes (checked in one pass)."""
    if body.count("]:") > MAX_REFERENCE_DEFINITIONS or len(re.findall("~~+", body)) > MAX_STRIKETHROUGH_RUNS:
        return True  # (every reference definition has a ']:', wherever it is: in a quote, a list)
    for line in body.split("\n"):
        prefix = _LINE_MARKERS.match(line).group()  # type: ignore[union-attr]
        if len(re.findall(r"[>+*\-.)]", prefix)) + len(prefix.expandtabs(4)) // 2 > MAX_PARSE_DEPTH:
            return True
    return any(_inline_depth(block) > MAX_PARSE_DEPTH for block in re.split(r"\n[ \t]*\n", body))


def _inline_depth(block: str) -> int:
    """An upper bound on how deeply emphasis, strikethrough, links and images nest in one paragraph.

    A delimiter run is counted as an opener whenever some CommonMark version could read it as one;
    only runs that every version reads as pure closers close.
    """
    open_ = {"*": 0, "_": 0, "~": 0, "[": 0}
    deepest = 0
    for match in _DELIMITERS.finditer(block):
        run, kind = match.group(), match.group()[0]
        before = block[match.start() - 1] if match.start() else " "
        after = block[match.end()] if match.end() < len(block) else " "
        if kind in "[]":
            open_["["] = open_["["] + 1 if kind == "[" else max(open_["["] - 1, 0)
        elif kind == "_" and before.isalnum() and after.isalnum():
            continue  # intraword underscores never open or close
        elif not before.isspace() and (
            after.isspace() or (_punctuation(after, core=True) and not _punctuation(before, core=False))
        ):
            open_[kind] = max(open_[kind] - len(run), 0)  # a pure closer in every version
        elif not after.isspace():
            open_[kind] += len(run)
        deepest = max(deepest, sum(open_.values()))
    return deepest


def _punctuation(ch: str, *, core: bool) -> bool:
    """Punctuation in every CommonMark version (`core`), or in some version (not `core`)."""
    return ch in string.punctuation or unicodedata.category(ch).startswith("P" if core else ("P", "S"))


LINK_SCHEMES = frozenset({"http", "https", "mailto"})


def link_allowed(url: str) -> bool:
    """Only absolute http, https and mailto URLs become links: no other scheme (smb:, ssh:,
    search-ms:, javascript:), nothing scheme-relative (//host) or site-relative (/admin/send)."""
    if any(ord(ch) < 33 or ch == "\\" for ch in url):  # browsers drop tabs and newlines: never guess
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme.lower() == "mailto":
        return bool(parts.path) and "@" in parts.path
    return (
        parts.scheme.lower() in ("http", "https")
        and bool(parts.hostname)
        and url[len(parts.scheme) :].startswith("://")
    )


_TAGS = {
    "p", "br", "ul", "ol", "li", "blockquote", "em", "strong", "s", "code", "pre", "hr",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a", "img",
}  # fmt: skip
_ATTRIBUTES = {"a": {"href"}, "img": {"src", "alt"}, "ol": {"start"}, "th": {"style"}, "td": {"style"}}
_BARE_ANCHOR = re.compile(r"<a>(.*?)</a>", re.DOTALL)


def _keep_url(tag: str, attribute: str, value: str) -> str | None:
    if (tag, attribute) in (("a", "href"), ("img", "src")):
        return value if link_allowed(value) else None
    return value


def sanitise(rendered: str) -> str:
    """The Markdown renderer's HTML through nh3 (ammonia): an explicit allow-list of tags and
    attributes, links only to `LINK_SCHEMES`; a link whose URL was refused becomes its text."""
    import nh3

    clean = nh3.clean(
        rendered,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        attribute_filter=_keep_url,
        url_schemes=set(LINK_SCHEMES),
        link_rel=None,
        strip_comments=True,
        filter_style_properties={"text-align"},
    )
    return _BARE_ANCHOR.sub(r"\1", clean)


_BLOCK_START = re.compile(r"[ \t]*(?:[-+*>#|]|\d{1,9}[.)]|```|~~~|$)")


def with_line_breaks(text: str) -> str:
    """Markdown in which each line break the writer typed inside a paragraph is kept (a hard
    break), as a quote needs: a poem's lines, a list of one-liners."""
    lines = text.split("\n")
    fenced = False
    for index, line in enumerate(lines[:-1]):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        following = lines[index + 1]
        if fenced or not line.strip() or line.endswith("\\") or _BLOCK_START.match(following):
            continue
        lines[index] = line + "\\"
    return "\n".join(lines)


def _images_as_links(body: str, keep_allowed: bool) -> str:
    """`![alt](src)` -> `[alt](src)`: no image loads remote content in the email (a tracking pixel
    chosen by whoever wrote the link text); with `keep_allowed`, http(s) images stay images."""
    if "![" not in body or shown_flat(body):
        return body
    raw = body.encode("utf-8")
    bangs = [
        node.srcmap[0]
        for node in commentary_tree(body).walk()
        if node.name == "image" and node.srcmap and not (keep_allowed and link_allowed(str(node.meta.get("url", ""))))
    ]
    for start in sorted(bangs, reverse=True):
        if raw[start : start + 1] == b"!":
            raw = raw[:start] + raw[start + 1 :]
    return raw.decode("utf-8")


def link_problems(path: Path, body: str, first_line: int) -> list[Problem]:
    """A warning with the line for each commentary link or image that will show as plain text."""
    if ("](" not in body and "<" not in body and "]:" not in body) or shown_flat(body):
        return []
    raw = body.encode("utf-8")
    problems = []
    for node in commentary_tree(body).walk():
        if node.name not in ("link", "autolink", "linkify", "image"):
            continue
        url = str(node.meta.get("url", ""))
        if link_allowed(url):
            if node.name == "image":
                problems.append(
                    Problem(path, f"image {url[:80]} is shown as a link in the email", _line_at(raw, node, first_line),
                            "emails never load remote images; the web page shows it with [site] images = true",
                            warning=True)
                )  # fmt: skip
            continue
        problems.append(
            Problem(path, f"link {url[:80]!r} is shown as plain text", _line_at(raw, node, first_line),
                    "only absolute http://, https:// and mailto: links become links", warning=True)
        )  # fmt: skip
    return problems


def _line_at(raw: bytes, node: Any, first_line: int) -> int:
    return first_line + raw.count(b"\n", 0, node.srcmap[0] if node.srcmap else 0)


@lru_cache(maxsize=8192)
def shown_flat(body: str) -> bool:
    """True when the commentary is shown as plain paragraphs: too costly to parse, unparseable, or
    nested too deeply."""
    if too_costly(body):
        return True
    try:
        tree = commentary_tree(body)
    except BaseException as exc:  # markdown-it-pyrs 0.4 panics on an unclosed code span in a link label: "[`"
        if type(exc).__name__ != "PanicException":
            raise
        return True
    return too_deep(tree)


def flat_paragraphs(body: str) -> list[str]:
    """The commentary as plain paragraphs, each on one line: how `shown_flat` commentary is shown."""
    return [" ".join(p.split()) for p in body.split("\n\n") if p.strip()]


def commentary_html(body: str, *, images: bool = False) -> str:
    """Commentary as HTML: raw HTML escaped, absurd nesting flattened to paragraphs, then sanitised;
    images become links unless `images` (the web page with [site] images = true)."""
    if not body:
        return ""
    if shown_flat(body):
        return "".join(f"<p>{html.escape(p)}</p>\n" for p in flat_paragraphs(body))
    return sanitise(_markdown().render(_defused(_images_as_links(body, keep_allowed=images))))


def quote_html(quote: str | None) -> str:
    """A quote as HTML paragraphs with its line breaks; images never load."""
    return commentary_html(with_line_breaks(quote)) if quote else ""


def with_html(entry: Entry) -> Entry:
    """The entry with its commentary and quote rendered to HTML (and the web page's version,
    with images, when the commentary has any)."""
    if entry.body_html or not (entry.body or entry.quote):
        return entry
    body_html = commentary_html(entry.body)
    page_html = commentary_html(entry.body, images=True) if "![" in entry.body else body_html
    return replace(entry, body_html=body_html, quote_html=quote_html(entry.quote), page_html=page_html)
