"""Commentary Markdown -> readable plain text, links numbered as footnotes."""

from __future__ import annotations

import functools
import textwrap
from dataclasses import dataclass, field
from typing import Any

from digest.render.markdown import commentary_tree, flat_paragraphs, link_allowed, shown_flat, with_line_breaks

WIDTH = 72  # commentary, before its two-space indent
LINE = 76  # no line of the text part is longer, but for a URL that is alone on its line
INLINE_MARKS = {"em": "_", "strong": "*", "s": "~~"}
LISTS = ("bullet_list", "ordered_list")


@dataclass
class Footnotes:
    """Numbered links shared by a whole email, so each URL gets one number."""

    numbers: dict[str, int] = field(default_factory=dict)

    def number(self, url: str) -> int:
        return self.numbers.setdefault(url, len(self.numbers) + 1)


def footnote_list(notes: Footnotes) -> str:
    return "\n".join(url_line(f"[{n}]", url, "    ") for url, n in notes.numbers.items())


def url_line(label: str, url: str, indent: str = "") -> str:
    """`label url` on one line when it fits in 76 columns; else the URL alone on the next line."""
    if len(label) + 1 + len(url) <= LINE:
        return f"{label} {url}"
    return f"{label}\n{indent}{url}"


def wrap(text: str, first: str = "", rest: str = "") -> str:
    """Prose at 76 columns; a word longer than that (a URL) stands alone on its line, unbroken."""
    return _filled(" ".join(text.split()), LINE, first, rest, unbroken=True)


@functools.lru_cache(maxsize=8192)
def _filled(text: str, width: int, first: str = "", rest: str = "", *, unbroken: bool = False) -> str:
    """`textwrap.fill`, remembered: wrapping is most of the text part's cost, and a long-running process
    (`digest preview`, the web front) wraps the same commentary again on every build; `unbroken` keeps long
    words (URLs) and hyphenated words whole."""
    return textwrap.fill(
        text, width, initial_indent=first, subsequent_indent=rest, break_long_words=not unbroken,
        break_on_hyphens=not unbroken,
    )  # fmt: skip


def quote_text(quote: str | None, notes: Footnotes) -> str:
    """A quote (Markdown) as `  > ` lines, its paragraphs and line breaks kept."""
    if not quote:
        return ""
    writer = _Writer(notes)
    writer.quote = 1
    if shown_flat(quote):
        writer.out = [(False, _filled(p, WIDTH - 2, "> ", "> ")) for p in flat_paragraphs(quote)]
    else:
        writer.blocks(commentary_tree(with_line_breaks(quote)).children)
    lines = writer.text().split("\n")
    return "\n".join("  " + (line if line.strip() else ">") for line in lines)


def commentary_text(body: str, notes: Footnotes, indent: str = "") -> str:
    """Paragraphs wrapped at 72 columns, lists and quotes kept, each link followed by [n]."""
    if not body:
        return ""
    if shown_flat(body):  # the HTML shows such commentary as plain paragraphs; so does the text
        text = "\n\n".join(_filled(p, WIDTH) for p in flat_paragraphs(body))
    else:
        writer = _Writer(notes)
        writer.blocks(commentary_tree(body).children)
        text = writer.text()
    return textwrap.indent(text, indent) if indent else text


class _Writer:
    """Walks the tree's blocks, keeping the list and quote context for prefixes."""

    def __init__(self, notes: Footnotes):
        self.notes = notes
        self.out: list[tuple[bool, str]] = []  # (inside a list, wrapped text)
        self.lists: list[list] = []  # [kind, item number] per open list
        self.quote = 0
        self.starts_item = False

    def blocks(self, nodes: list[Any]) -> None:
        inline: list[Any] = []  # a tight list item holds inline nodes directly
        for node in nodes:
            if node.name in ("paragraph", "heading", "lheading") or node.name not in _BLOCKS:
                if node.name in _BLOCKS:
                    self._flush(inline)
                    self.paragraph(node.children)
                else:
                    inline.append(node)
                continue
            self._flush(inline)
            if node.name in LISTS:
                self.lists.append(["-" if node.name == "bullet_list" else "1", int(node.meta.get("start", 1)) - 1])
                for item in node.children:
                    self.lists[-1][1] += 1
                    self.starts_item = True
                    self.blocks(item.children)
                self.lists.pop()
            elif node.name == "blockquote":
                self.quote += 1
                self.blocks(node.children)
                self.quote -= 1
            elif node.name in ("code_block", "fence"):
                self.out.append((False, textwrap.indent(str(node.meta.get("content", "")).rstrip("\n"), "    ")))
            elif node.name == "hr":
                self.out.append((False, "* * *"))
            elif node.name == "table":
                rows = [
                    " | ".join(_inline(cell.children, self.notes) for cell in row.children)
                    for part in node.children
                    for row in part.children
                ]
                self.out.append((False, "\n".join(rows)))
        self._flush(inline)

    def _flush(self, inline: list[Any]) -> None:
        if inline:
            self.paragraph(list(inline))
            inline.clear()

    def paragraph(self, children: list[Any]) -> None:
        self.out.append((bool(self.lists), self._fill(_inline(children, self.notes))))
        self.starts_item = False

    def _fill(self, text: str) -> str:
        first = rest = ""
        if self.lists:
            kind, count = self.lists[-1]
            marker = "-" if kind == "-" else f"{count}."
            lead = "  " * (len(self.lists) - 1)
            rest = lead + " " * (len(marker) + 1)
            first = lead + marker + " " if self.starts_item else rest
        prefix = "> " * self.quote
        lines = []
        for number, line in enumerate(text.split("\n")):
            head = first if number == 0 else rest
            lines.append(_filled(line or " ", WIDTH, prefix + head, prefix + rest, unbroken=True).rstrip())
        return "\n".join(lines)

    def text(self) -> str:
        parts: list[str] = []
        for index, (in_list, text) in enumerate(self.out):
            if index and not (in_list and self.out[index - 1][0]):
                parts.append("")
            parts.append(text)
        return "\n".join(parts)


_BLOCKS = {
    "paragraph",
    "heading",
    "lheading",
    "bullet_list",
    "ordered_list",
    "blockquote",
    "code_block",
    "fence",
    "hr",
    "table",
}


def _inline(nodes: list[Any], notes: Footnotes) -> str:
    """Inline nodes -> text; a link's text is followed by [n] unless the text is the URL itself."""
    out: list[str] = []
    stack = [(node, False) for node in reversed(nodes)]
    while stack:  # iterative: deeply nested emphasis can't exhaust the recursion limit
        node, closing = stack.pop()
        name, meta = node.name, node.meta
        if closing:
            if name in ("link", "linkify", "autolink", "image"):
                url = str(meta.get("url", ""))
                start = meta.get("_start", 0)
                if url and "".join(out[start:]) != url and link_allowed(url):
                    out.append(f" [{notes.number(url)}]")
            elif name in INLINE_MARKS:
                out.append(INLINE_MARKS[name])
            continue
        if name in ("text", "text_special"):
            out.append(str(meta.get("content", "")))
        elif name == "code_inline":
            out.append("`" + "".join(str(c.meta.get("content", "")) for c in node.children) + "`")
        elif name == "softbreak":
            out.append(" ")
        elif name == "hardbreak":
            out.append("\n")
        elif name == "image" and not node.children:
            out.append("image")
            stack.append((_Marked(node, {**meta, "_start": len(out)}), True))
        else:
            if name in INLINE_MARKS:
                out.append(INLINE_MARKS[name])
            if name in ("link", "linkify", "autolink", "image"):  # (an image's children are its alt text)
                meta = dict(meta)
                meta["_start"] = len(out)
                node = _Marked(node, meta)
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.children))
    return "".join(out)


class _Marked:
    """A node with the output position its link text starts at (pyrs nodes' meta is a copy)."""

    def __init__(self, node: Any, meta: dict):
        self.name, self.meta, self.children = node.name, meta, node.children
