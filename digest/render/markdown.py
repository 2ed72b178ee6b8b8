"""Commentary and quote Markdown -> a syntax tree (parsed once per text), sanitised HTML, and the
link warnings; `digest.render.text` writes the plain-text part from the same tree."""

from __future__ import annotations

import bisect
import html
import re
import string
import unicodedata
from dataclasses import replace
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from digest.errors import Problem

if TYPE_CHECKING:  # entries come from digest.content, which imports this module to check their links
    from digest.content import Entry

MARKDOWN_RULES: list[Any] = [
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
    return sanitise(tree_html(commentary_tree(body), images=images))


def quote_html(quote: str | None) -> str:
    """A quote as HTML paragraphs with its line breaks; images never load."""
    return commentary_html(with_line_breaks(quote)) if quote else ""


def with_html(entry: Entry) -> Entry:
    """The entry with its commentary and quote rendered to HTML (and the web page's version,
    with images, when the commentary has any). A note's headings sit below its title."""
    if entry.body_html or not (entry.body or entry.quote):
        return entry
    body_html, quote, page_html = _rendered(entry.body, entry.quote, entry.kind == "note")
    return replace(entry, body_html=body_html, quote_html=quote, page_html=page_html)


@lru_cache(maxsize=4096)
def _rendered(body: str, quote: str | None, note: bool) -> tuple[str, str, str]:
    """(commentary, quote, commentary for the web page) as HTML: the same text renders the same, so a process
    that renders a month again after one entry changed (`digest preview`) renders only that entry."""
    body_html = commentary_html(body)
    page_html = commentary_html(body, images=True) if "![" in body else body_html
    if note:
        body_html = demote_headings(body_html, NOTE_TOP_HEADING)
        page_html = demote_headings(page_html, NOTE_TOP_HEADING)
    return body_html, quote_html(quote), page_html


NOTE_TOP_HEADING = 4  # below the page's section names (h2) and the note's own title (h3)
_HEADING = re.compile(r"<(/?)h([1-6])>")


def demote_headings(html: str, top: int) -> str:
    """Headings moved down so `#` becomes `<h{top}>` (never past h6): the writer's headings sit below
    the page's own (the issue's title, a section's name, a note's title)."""
    shift = top - 1
    return _HEADING.sub(lambda m: f"<{m[1]}h{min(int(m[2]) + shift, 6)}>", html) if shift > 0 else html


_INLINE_TAGS = {"em": "em", "strong": "strong", "strikethrough": "s"}
_BLOCK_TAGS = {
    "paragraph": "p",
    "list_item": "li",
    "bullet_list": "ul",
    "ordered_list": "ol",
    "blockquote": "blockquote",
}
_LINE_INSIDE = ("bullet_list", "ordered_list", "blockquote")  # their tags stand on lines of their own
_LINKS = ("link", "autolink", "linkify")
_NO_META = frozenset(  # nodes whose meta (a copy made on each access) the writer never reads
    {"paragraph", "list_item", "bullet_list", "blockquote", "em", "strong", "strikethrough", "softbreak", "hardbreak",
     "code_inline", "thead", "tbody", "trow", "tcell"}
)  # fmt: skip


def tree_html(tree: Any, *, images: bool = False) -> str:
    """The HTML of a parsed commentary (`commentary_tree`) as markdown-it writes it, so that the HTML and
    the text part come from one parse; an image becomes a link unless `images` and its URL is allowed."""
    writer = _HtmlWriter(images)
    writer.children(tree)
    return "".join(writer.out)


class _HtmlWriter:
    """markdown-it's HTML renderer over the syntax tree: each block starts and ends on a line of its own."""

    def __init__(self, images: bool):
        self.out: list[str] = []
        self.images = images
        self.in_link = False

    def line(self) -> None:
        if self.out and not self.out[-1].endswith("\n"):
            self.out.append("\n")

    def children(self, node: Any) -> None:
        for child in node.children:
            self.node(child)

    def node(self, node: Any) -> None:
        name, out = node.name, self.out
        meta = node.meta if name not in _NO_META else {}
        if name in ("text", "text_special"):
            out.append(_escape(str(meta.get("content", ""))))
        elif name == "softbreak":
            out.append("\n")
        elif name == "hardbreak":
            out.append("<br />\n")
        elif name in _INLINE_TAGS:
            out.append(f"<{_INLINE_TAGS[name]}>")
            self.children(node)
            out.append(f"</{_INLINE_TAGS[name]}>")
        elif name == "code_inline":
            out.append(f"<code>{_escape(''.join(str(c.meta.get('content', '')) for c in node.children))}</code>")
        elif name in _LINKS or (name == "image" and not (self.images and link_allowed(str(meta.get("url", ""))))):
            self.link(node)
        elif name == "image":
            out.append(f'<img src="{_escape(str(meta.get("url", "")))}" alt="{_escape(_plain(node))}" />')
        elif name in ("heading", "lheading"):
            level = int(meta.get("level", 1))
            self.line()
            out.append(f"<h{level}>")
            self.children(node)
            out.append(f"</h{level}>\n")
        elif name in ("fence", "code_block"):
            info = str(meta.get("info", "")).split(maxsplit=1)
            language = f' class="{_escape(str(meta.get("lang_prefix", "")) + info[0])}"' if info else ""
            self.line()
            out.append(f"<pre><code{language}>{_escape(str(meta.get('content', '')))}</code></pre>\n")
        elif name == "hr":
            self.line()
            out.append("<hr />\n")
        elif name == "table":
            self.table(node)
        elif name in _BLOCK_TAGS:
            tag = _BLOCK_TAGS[name]
            start = int(meta.get("start", 1)) if name == "ordered_list" else 1
            self.line()
            out.append(f'<{tag} start="{start}">' if start != 1 else f"<{tag}>")
            if name in _LINE_INSIDE:
                out.append("\n")
            self.children(node)
            if name in _LINE_INSIDE:
                self.line()
            out.append(f"</{tag}>\n")
        else:  # a reference definition (nothing to show), or a node without markup of its own
            self.children(node)

    def link(self, node: Any) -> None:
        if self.in_link:  # an image shown as a link, inside a link: its text (a link can't hold a link)
            self.children(node)
            return
        self.in_link = True
        self.out.append(f'<a href="{_escape(str(node.meta.get("url", "")))}">')
        self.children(node)
        self.out.append("</a>")
        self.in_link = False

    def table(self, node: Any) -> None:
        alignments = list(node.meta.get("alignments", ()))
        self.line()
        self.out.append("<table>\n")
        for part in node.children:  # thead, then tbody if there are rows
            cell = "th" if part.name == "thead" else "td"
            self.out.append(f"<{part.name}>\n")
            for row in part.children:
                self.out.append("<tr>\n")
                for column, item in enumerate(row.children):
                    align = alignments[column] if column < len(alignments) else "none"
                    self.out.append(f'<{cell} style="text-align:{align}">' if align != "none" else f"<{cell}>")
                    self.children(item)
                    self.out.append(f"</{cell}>\n")
                self.out.append("</tr>\n")
            self.out.append(f"</{part.name}>\n")
        self.out.append("</table>\n")


def _escape(text: str) -> str:
    """As markdown-it escapes text and attributes: &, <, > and the double quote."""
    return html.escape(text, quote=False).replace('"', "&quot;")


def _plain(node: Any) -> str:
    """An image's alt text: the text of everything inside it, without markup."""
    return "".join(str(n.meta.get("content", "")) for n in node.walk() if n.name in ("text", "text_special"))
