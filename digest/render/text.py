"""Commentary Markdown -> readable plain text, links numbered as footnotes."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

from digest.content import commentary_tokens

WIDTH = 72


@dataclass
class Footnotes:
    """Numbered links shared by a whole email, so each URL gets one number."""

    urls: list[str] = field(default_factory=list)

    def number(self, url: str) -> int:
        if url not in self.urls:
            self.urls.append(url)
        return self.urls.index(url) + 1


def commentary_text(body: str, notes: Footnotes, indent: str = "") -> str:
    """Paragraphs wrapped at 72 columns, bullets kept, each link followed by [n]."""
    blocks: list[tuple[bool, str]] = []  # (inside a list, text)
    lists: list[list] = []  # [marker kind, item counter] per open list
    starts_item = False
    quote = 0
    for token in commentary_tokens(body):
        kind = token.type
        if kind == "bullet_list_open":
            lists.append(["-", 0])
        elif kind == "ordered_list_open":
            lists.append(["1", int(token.attrGet("start") or 1) - 1])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open":
            lists[-1][1] += 1
            starts_item = True
        elif kind in ("blockquote_open", "blockquote_close"):
            quote += 1 if kind == "blockquote_open" else -1
        elif kind == "inline":
            text = _inline(token.children or [], notes)
            blocks.append((bool(lists), _fill(text, lists, starts_item, quote)))
            starts_item = False
        elif kind in ("fence", "code_block"):
            blocks.append((False, textwrap.indent(token.content.rstrip("\n"), "    ")))
        elif kind == "hr":
            blocks.append((False, "* * *"))
    parts: list[str] = []
    for index, (in_list, text) in enumerate(blocks):
        if index and not (in_list and blocks[index - 1][0]):
            parts.append("")
        parts.append(text)
    text = "\n".join(parts)
    return textwrap.indent(text, indent) if indent else text


def _fill(text: str, lists: list[list], starts_item: bool, quote: int) -> str:
    """Wrap one paragraph, with a list marker or continuation indent and quote prefix."""
    first = rest = ""
    if lists:
        kind, count = lists[-1]
        marker = "-" if kind == "-" else f"{count}."
        lead = "  " * (len(lists) - 1)
        rest = lead + " " * (len(marker) + 1)
        first = lead + marker + " " if starts_item else rest
    prefix = "> " * quote
    lines = []
    for number, paragraph in enumerate(text.split("\n")):
        head = first if number == 0 else rest
        lines.append(
            textwrap.fill(
                paragraph or " ",
                WIDTH,
                initial_indent=prefix + head,
                subsequent_indent=prefix + rest,
                break_long_words=False,
                break_on_hyphens=False,
            ).rstrip()
        )
    return "\n".join(lines)


def _inline(children: list[Any], notes: Footnotes) -> str:
    out: list[str] = []
    links: list[tuple[str | None, int]] = []  # (href, where its text starts in out)
    for child in children:
        if child.type == "text":
            out.append(child.content)
        elif child.type == "code_inline":
            out.append(f"`{child.content}`")
        elif child.type in ("softbreak", "hardbreak"):
            out.append("\n" if child.type == "hardbreak" else " ")
        elif child.type in ("em_open", "em_close"):
            out.append("_")
        elif child.type in ("strong_open", "strong_close"):
            out.append("*")
        elif child.type == "link_open":
            href = child.attrGet("href")
            links.append((str(href) if href else None, len(out)))
        elif child.type == "link_close" and links:
            url, start = links.pop()
            if url and "".join(out[start:]) != url:  # a bare URL is its own footnote
                out.append(f" [{notes.number(url)}]")
        elif child.type == "image":
            out.append(child.content or "image")
    return "".join(out)


def footnote_list(notes: Footnotes) -> str:
    return "\n".join(f"[{n}] {url}" for n, url in enumerate(notes.urls, 1))
