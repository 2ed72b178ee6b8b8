"""One content file -> an `Entry`, or the problems that stop it from being one."""

from __future__ import annotations

import difflib
import functools
import re
import textwrap
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
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
KNOWN_KEYS = ("kind", "title", "url", "date", "section", "source", "tags", "draft", "quote")
_KNOWN = frozenset(KNOWN_KEYS)
KINDS = ("link", "note", "quote")  # a link with commentary; the writer's own note; a quote (its words are the body)
UNDATED = datetime(1, 1, 1, tzinfo=UTC)  # the date of a pool quote (content/quotes/), which has none


@dataclass(frozen=True)
class Entry:
    """A link the writer saved, with their commentary, a note or a quote (`kind`); dates are timezone-aware."""

    path: Path
    title: str
    url: str | None
    date: datetime
    section: str
    source: str | None = None
    tags: tuple[str, ...] = ()
    draft: bool = False
    quote: str | None = None
    body: str = ""  # the commentary as written (Markdown); a quote's words are in `quote`
    kind: str = "link"  # one of KINDS
    body_html: str = ""  # filled in for a collected month; raw HTML is escaped, never passed
    quote_html: str = ""  # the quote as HTML, paragraphs and line breaks kept
    page_html: str = ""  # the commentary for the web page and feeds when it shows images ([site] images)


MAX_FRONT_MATTER_DEPTH = 100  # libyaml composes nested collections recursively: 100,000 levels crash it
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")  # not allowed in XML
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The C safe loader: no Python objects, fast.

    The C parser still asks PyYAML's Python resolver for every scalar's tag, trying the implicit types'
    patterns one by one; front-matter keys are the same few words in every file, so a plain scalar's tag
    is remembered (the safe loader has no path resolvers: the tag depends on the text alone).
    """

    _resolved: dict[str, str] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is not yaml.ScalarNode or not implicit[0] or len(value) > 40:
            return super().resolve(kind, value, implicit)
        tag = self._resolved.get(value)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(self._resolved) < 4096:
                self._resolved[value] = tag
        return tag


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
        return load_front_matter(fm)[0]


def load_front_matter(front: str) -> tuple[Any, dict[str, int]]:
    """The front matter's value and the 0-based line (within `front`) of each top-level key, taken
    from the parser's marks in the same single load: no second scan of the text."""
    simple = _simple_front_matter(front)
    return simple if simple is not None else _parsed_front_matter(front)


def _parsed_front_matter(front: str) -> tuple[Any, dict[str, int]]:
    if _yaml_depth(front) > MAX_FRONT_MATTER_DEPTH:
        raise yaml.YAMLError(f"nested more than {MAX_FRONT_MATTER_DEPTH} levels deep")
    loader = _Loader(front)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines = {}
        if isinstance(node, yaml.MappingNode):
            lines = {key.value: key.start_mark.line for key, _ in node.value if isinstance(key, yaml.ScalarNode)}
            flat = _flat_mapping(loader, node)
            if flat is not None:
                return flat, lines
        return loader.construct_document(node), lines
    finally:
        loader.dispose()


_STR, _MAP = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map"
_NOT_SIMPLE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]")  # breaks; refused
# `key: value`, the key a plain word, the value a quoted string with no escape or doubled quote, or a plain
# scalar on one line (no indicator first, no ': ' or ' #' inside, no space or ':' last)
_SIMPLE_LINE = re.compile(
    r"""([A-Za-z_][A-Za-z0-9_]*): (?:("[^"\\]*"|'[^']*')|"""  # the key, then a quoted scalar
    r"""([^-?:,\[\]{}#&*!|>'"%@` ](?:[^:#\n]|:(?! )|(?<! )#)*(?<![ :])))"""  # or a plain one
)


def _simple_front_matter(front: str) -> tuple[dict, dict[str, int]] | None:
    """Front matter of `key: value` lines only, each value a one-line quoted string or a plain scalar that
    needs no folding, read without the YAML parser (which spends most of its time building nodes); the
    value's type is what YAML's resolver says, built by the loader's own constructors. Anything else (a
    list, a comment, a block, an escape, a line YAML would fold) returns None: the parser reads it.
    tests/test_front_matter_load.py holds both ways to the same values and lines."""
    if _NOT_SIMPLE.search(front):
        return None
    values: dict = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(front.split("\n")):
        if not line:
            continue
        match = _SIMPLE_LINE.fullmatch(line)
        if match is None:
            return None
        key, quoted, text = match.groups()
        if _LOADER.resolve(yaml.ScalarNode, key, (True, False)) != _STR:
            return None  # `yes:`, `null:`, `1:` are not text keys
        if quoted is not None:
            value: Any = quoted[1:-1]
        elif _PLAIN_TIMESTAMP.fullmatch(text):  # every entry's `date:`; YAML resolves such text to a timestamp
            value = _timestamp(text)
        else:
            value = _scalar(_LOADER, yaml.ScalarNode(_LOADER.resolve(yaml.ScalarNode, text, (True, False)), text))
            if value is _UNBUILT:
                return None  # `<<` or `=`: the parser says what they mean here
        values[key], lines[key] = value, number
    return (values, lines) if values else None


# A date, or a date and a time of day with no fraction or zone: the common `date:` values, a subset of YAML's
# timestamp pattern (which the test holds to PyYAML's own constructor)
_PLAIN_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])?")


def _timestamp(text: str) -> date | datetime | str:
    """What YAML's timestamp constructor builds from `_PLAIN_TIMESTAMP` text (a naive datetime, or a date), at a
    fortieth of its cost; the text itself for a day that does not exist, as `_lenient` keeps it."""
    try:
        return datetime.fromisoformat(text) if len(text) > 10 else date.fromisoformat(text)
    except ValueError:
        return text


def _flat_mapping(loader: Any, node: yaml.MappingNode) -> dict | None:
    """The common front matter, text keys with scalar values, built from the composed nodes as the safe
    constructor builds it, without its generic machinery (a third of the load); None for anything else
    (a list, a merge key, a tag of its own), which takes the general way."""
    if node.tag != _MAP:
        return None
    flat = {}
    for key, value in node.value:
        if key.tag != _STR or not isinstance(key, yaml.ScalarNode) or not isinstance(value, yaml.ScalarNode):
            return None
        flat[key.value] = built = _scalar(loader, value)
        if built is _UNBUILT:
            return None
    return flat


_UNBUILT = object()  # a scalar whose tag the safe constructor has no builder for (`<<`, `=`, `!custom`)


def _scalar(loader: Any, node: yaml.ScalarNode) -> Any:
    """A scalar node's value as the safe constructor builds it, or _UNBUILT."""
    if node.tag == _STR:
        return node.value
    build = loader.yaml_constructors.get(node.tag)
    return _UNBUILT if build is None else build(loader, node)


_HANDLER = SAFE_YAML = _SafeYAML()
_LOADER = _Loader("")  # resolves and constructs the simple front matter's scalars; never parses


@dataclass(frozen=True)
class ParsedFile:
    """One file read: the entry (if usable), every problem, and where things are in the file."""

    entry: Entry | None
    problems: list[Problem]
    key_lines: dict[str, int] = field(default_factory=dict)  # 1-based line of each top-level key
    body_line: int = 1  # the line the commentary starts on


def parse_entry(
    path: Path, raw: bytes, sections: tuple[str, ...], tz: tzinfo, *, links: bool = True, pooled: bool = False
) -> tuple[Entry | None, list[Problem]]:
    """Parse and validate one file; returns the entry (if usable) and every problem found. Without
    `links`, the commentary's Markdown is not parsed for its link warnings (`link_problems`); `pooled`:
    as `read_entry`."""
    parsed = read_entry(path, raw, sections, tz, pooled=pooled)
    if links and parsed.entry is not None and parsed.entry.body:
        from digest.render.markdown import link_problems  # the Markdown parser only when links are checked

        return parsed.entry, parsed.problems + link_problems(path, parsed.entry.body, parsed.body_line)
    return parsed.entry, parsed.problems


def read_entry(path: Path, raw: bytes, sections: tuple[str, ...], tz: tzinfo, *, pooled: bool = False) -> ParsedFile:
    """One file's front matter, validated; the commentary is kept as written, its Markdown not parsed.
    A `pooled` file (content/quotes/) is a quote without a date: its `date` is UNDATED."""
    read = read_front_matter(path, raw)
    if isinstance(read, Problem):
        return ParsedFile(None, [read])
    entry, problems = _validate(read.meta, read.body, _Context(path, read.lines, sections, tz, pooled=pooled))
    return ParsedFile(entry, problems, read.lines, read.body_line)


@dataclass(frozen=True)
class FrontMatter:
    """A content file split: its keys (loaded, not yet checked), the Markdown after them, and lines."""

    meta: dict
    body: str
    lines: dict[str, int]  # 1-based line of each top-level key
    body_line: int  # the line the body starts on


def read_front_matter(path: Path, raw: bytes, *, required: bool = True) -> FrontMatter | Problem:
    """Decode and split one file (an entry, or `_issue.md` when not `required`: a file without front
    matter is all body); the first problem that stops it."""
    text, problem = _decode(path, raw)
    if problem:
        return problem
    if not frontmatter.checks(text):
        if not required:
            return _no_slot(path, text) or FrontMatter({}, text, {}, 1)
        hint = "start the file with a '---' line, then 'title:', 'url:' and 'date:' lines, then '---'"
        return Problem(path, "no front matter", 1, hint)
    try:  # split and load here: frontmatter.parse() reads an unclosed block as body, and drops a list
        front, body = _HANDLER.split(text)
    except ValueError:
        return Problem(path, "front matter is not closed", 1, "add a '---' line after the last key")
    try:
        meta, marks = load_front_matter(front)
    except yaml.MarkedYAMLError as exc:
        mark = _error_mark(exc)
        line = mark.line + 1 if mark else None
        return Problem(
            path, f"malformed front matter: {exc.problem or exc.context}", line, "fix the YAML between the '---' lines"
        )
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as exc:
        return Problem(path, f"malformed front matter: {exc}", 1, "fix the YAML between the '---' lines")
    if meta is None:  # '---' then '---': no keys at all
        meta = {}
    if not isinstance(meta, dict):
        return Problem(path, "front matter must be 'key: value' lines", 2, "such as 'title: What I read'")
    body_line = text.count("\n", 0, len(text) - len(body.lstrip())) + 1
    return _no_slot(path, text) or FrontMatter(meta, body, _file_lines(text, marks), body_line)


def _no_slot(path: Path, text: str) -> Problem | None:
    slot = text.find(SLOT_PREFIX)
    if slot < 0:
        return None
    placeholder = f"{SLOT_PREFIX}... is the email's per-reader unsubscribe placeholder"
    return Problem(path, f"{placeholder}, which content may not contain", text.count("\n", 0, slot) + 1, "remove it")


def key_lines(text: str) -> dict[str, int]:
    """1-based line of each top-level front-matter key, from the YAML parser's marks; empty when the
    front matter does not load."""
    text = text.removeprefix("\ufeff")
    try:
        front, _ = _HANDLER.split(text)
        marks = load_front_matter(front)[1]
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError):
        return {}
    return _file_lines(text, marks)


def _file_lines(text: str, marks: dict[str, int]) -> dict[str, int]:
    """Lines within the front matter (0-based) -> lines of the file (1-based)."""
    opening = _HANDLER.FM_BOUNDARY.search(text)
    first = text.count("\n", 0, opening.end() if opening else 0) + 1  # the line the front matter starts on
    return {key: first + line for key, line in marks.items()}


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


@dataclass
class _Context:
    """What a key's check needs besides the value: where to report, and the site's settings."""

    path: Path
    lines: dict[str, int]
    sections: tuple[str, ...]
    tz: tzinfo
    pooled: bool = False  # a quote of the pool (content/quotes/): no date
    kind: str = "link"  # set by the `kind` check, which runs first
    problems: list[Problem] = field(default_factory=list)

    def bad(self, key: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.path, message, self.lines.get(key, 1), hint))

    def note(self, key: str, message: str, hint: str = "", *, warning: bool = False) -> None:
        """A problem on the key's line, or on no line when the key is not in the file."""
        self.problems.append(Problem(self.path, message, self.lines.get(key), hint, warning=warning))


def _kind(value: Any, ctx: _Context) -> str:
    if value is None:
        ctx.kind = "quote" if ctx.pooled else "link"
    elif isinstance(value, str) and value.strip().casefold() in KINDS:
        ctx.kind = value.strip().casefold()
    else:
        ctx.bad("kind", f"unknown kind {_shown(value)}", "use one of: " + ", ".join(KINDS))
    if ctx.pooled and ctx.kind != "quote":
        ctx.bad("kind", f"content/quotes/ holds quotes, not a {ctx.kind}", "move the file to its month's folder")
    return ctx.kind


def _title(value: Any, ctx: _Context) -> str | None:
    title = visible_text(value)
    if title is None and ctx.kind == "quote":
        return ""  # a quote shows its words and who said them
    if title is None:
        ctx.bad("title", "missing or empty title", "add a line such as 'title: \"What I read\"'")
    return title


def _url(value: Any, ctx: _Context) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if ctx.kind == "link":
            ctx.note("url", "no url: the title renders without a link", warning=True)
        return None
    if not isinstance(value, str):
        ctx.note("url", "url must be text")
        return None
    url = value.strip()
    message = url_problem(url)
    if message:
        ctx.note("url", message, "use an http:// or https:// address")
        return None
    parts = urlsplit(url)
    if _PLAIN_NETLOC.fullmatch(parts.netloc) and "xn--" not in parts.netloc:
        return url  # one script, no port: what url_warnings would pass without a word
    for warning in url_warnings(parts):  # it parses, but is it the site the writer meant?
        ctx.note("url", warning, warning=True)
    return url


def _date(value: Any, ctx: _Context) -> datetime | None:
    if ctx.pooled:
        if value is not None:
            ctx.bad("date", "a quote in content/quotes/ has no date: it is in the quote pool",
                    "remove the date, or move the file to its month's folder to show it that month")  # fmt: skip
        return UNDATED
    when = _check_date(value, ctx.tz)
    if when is None:
        shown = "missing date" if value in (None, "") else f"unparseable date {_shown(value)}"
        hint = "use YYYY-MM-DD or an ISO datetime such as 2025-02-28T22:59:00+01:00"
        if ctx.kind == "quote" and value in (None, ""):
            hint += "; an undated quote belongs in content/quotes/, the quote pool"
        ctx.bad("date", shown, hint)
    elif not _in_range(when, ctx.tz):
        ctx.bad("date", f"date {when.isoformat()} is out of range", "use a date between the years 2 and 9998")
    return when


def _section(value: Any, ctx: _Context) -> str | None:
    section = _check_section(value, ctx.sections)
    if section is None:
        typed = str(value)[:200] if isinstance(value, (str, int, float)) else ""
        ctx.bad("section", f"unknown section {_shown(value)}", _section_hint(typed, ctx.sections))
    return section


def _text_check(key: str, parse: Callable[[Any], str | None]) -> Callable[[Any, _Context], str | None]:
    """An optional text key (source, quote): anything but text, a number or nothing is refused."""

    def check(value: Any, ctx: _Context) -> str | None:
        if value is not None and not isinstance(value, (str, int, float)):
            ctx.bad(key, f"{key} must be text")
        return parse(value)

    return check


def _tags(value: Any, ctx: _Context) -> tuple[str, ...] | None:
    tags = _check_tags(value)
    if tags is None:
        ctx.bad("tags", "tags must be a list of words, such as 'tags: [ai, chips]'")
    return tags


def _draft(value: Any, ctx: _Context) -> bool:
    if not isinstance(value, bool):
        ctx.bad("draft", f"draft must be true or false, not {_shown(value)}")
    return value is True


# The front-matter keys, each with its check: (value as loaded, context) -> the value parsed, or None
# after reporting a problem. Checked in this order; the text keys' characters are checked after them.
FIELD_CHECKS: dict[str, Callable[[Any, _Context], Any]] = {
    "kind": _kind,
    "title": _title,
    "url": _url,
    "date": _date,
    "section": _section,
    "source": _text_check("source", visible_text),
    "quote": _text_check("quote", quote_markdown),
    "tags": _tags,
}
PRINTED_KEYS = ("title", "source", "quote", "tags")  # text that reaches feeds and email as it is
FLAG_CHECKS: dict[str, Callable[[Any, _Context], Any]] = {"draft": _draft}  # a flag left out is false


def _validate(meta: dict, body: str, ctx: _Context) -> tuple[Entry | None, list[Problem]]:
    values = {key: check(meta.get(key), ctx) for key, check in FIELD_CHECKS.items()}
    printed = ["".join(v) if isinstance(v, tuple) else v or "" for v in (values[k] for k in PRINTED_KEYS)]
    for key in PRINTED_KEYS if _BAD_CHARS.search("\n".join(printed)) else ():  # "\n" is not one of them
        value = values[key]
        char = _BAD_CHARS.search("".join(value) if isinstance(value, tuple) else value or "")
        if char:
            ctx.bad(
                key,
                f"{key} contains the unprintable character U+{ord(char.group()):04X}",
                "delete it: feeds and email can't carry it",
            )
    values.update({key: check(meta.get(key, False), ctx) for key, check in FLAG_CHECKS.items()})
    for key in meta:
        if key not in _KNOWN:
            close = difflib.get_close_matches(str(key), KNOWN_KEYS, 1)
            ctx.note(
                str(key),
                f"unknown front-matter key {key!r} is ignored",
                f"did you mean {close[0]!r}?" if close else "",
                warning=True,
            )
    body = body.strip()
    if ctx.kind == "quote":
        values["quote"], body = _quote_words(meta, body, values["quote"], ctx), ""
    if any(not p.warning for p in ctx.problems):
        return None, ctx.problems
    return Entry(ctx.path, body=body, **values), ctx.problems


def _quote_words(meta: dict, body: str, given: str | None, ctx: _Context) -> str | None:
    """A quote entry's words: its body (a `quote:` key as well would be two quotes)."""
    if "quote" in meta:
        ctx.bad("quote", "a quote's words are the body, not a 'quote:' key", "move the words below the '---' line")
        return given
    words = quote_markdown(body)
    if words is None:
        ctx.bad("kind", "a quote without words", "write the quote below the '---' line")
    return words


def _shown(value: Any, limit: int = 60) -> str:
    """A value for a message, short whatever it is (a list may be a YAML alias bomb: never str() it)."""
    if isinstance(value, (list, dict)):
        return "a list" if isinstance(value, list) else "a mapping"
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")


# white space (\s is str.isspace()), controls, what XML can't carry, bidi controls: one C scan of the URL
_URL_REFUSED = re.compile(rf"[\s\x00-\x1f\x7f]|{_BAD_CHARS.pattern}|{BIDI_CONTROLS.pattern}")
_PLAIN_NETLOC = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?")  # lower-case ASCII labels, no port, no user


def url_problem(url: str) -> str | None:
    """Why `url` can't be a link in an email or feed, or None if it can."""
    if _URL_REFUSED.search(url):
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
    if 3 <= when.year <= 9997:  # no time zone moves a moment by a year: skip the conversions
        return True
    try:
        return all(2 <= moment.year <= 9998 for moment in (when, when.astimezone(tz), when.astimezone(UTC)))
    except (OverflowError, ValueError):
        return False


def _check_section(value: Any, sections: tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return sections[0]
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return None
    return _folded_sections(sections).get(" ".join(str(value).split()).casefold())


@functools.lru_cache(maxsize=64)
def _folded_sections(sections: tuple[str, ...]) -> dict[str, str]:
    folded: dict[str, str] = {}
    for section in sections:
        folded.setdefault(section.casefold(), section)  # the first wins, as the search in order did
    return folded


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
