"""Two more archive formats for `digest import`: a Markdown notes post (front matter with a date, one
note per heading of its highest level: `#` podcast episodes, `###` topics) and a collection of quotes
(plain text, one quote a line, an optional "— Author" at the end)."""

from __future__ import annotations

import re
from dataclasses import dataclass

HEADING = re.compile(r"^ {0,3}(?P<marks>#{1,6})[ \t]+(?P<text>.*?)(?:[ \t]+#+)?[ \t]*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")
# "the quote — Author" (em dash or horizontal bar, not a hyphen: titles use " - " themselves)
ATTRIBUTION = re.compile(r"^(?P<quote>.+\S)\s+[—―]\s*(?P<source>[^—―]+?)\s*$")
MAX_SOURCE_WORDS = 8


@dataclass(frozen=True)
class Note:
    title: str
    body: str  # Markdown, as written under the heading


@dataclass(frozen=True)
class Quote:
    text: str  # as written, one line
    source: str | None


def heading_lines(body: str) -> list[tuple[int, int, str]]:
    """(line index, level, text) of each ATX heading outside fenced code."""
    found, fenced = [], False
    for index, line in enumerate(body.split("\n")):
        if FENCE.match(line):
            fenced = not fenced
        match = None if fenced else HEADING.match(line)
        if match and match["text"].strip():
            found.append((index, len(match["marks"]), match["text"].strip()))
    return found


def split_notes(body: str) -> tuple[str, list[Note]]:
    """(the text before the first note, the notes): one per heading of the highest level used."""
    headings = heading_lines(body)
    if not headings:
        return body.strip(), []
    top = min(level for _, level, _ in headings)
    starts = [(index, text) for index, level, text in headings if level == top]
    lines = body.split("\n")
    notes = []
    for number, (index, title) in enumerate(starts):
        end = starts[number + 1][0] if number + 1 < len(starts) else len(lines)
        notes.append(Note(title, "\n".join(lines[index + 1 : end]).strip()))
    return "\n".join(lines[: starts[0][0]]).strip(), notes


def read_quotes(text: str) -> list[Quote]:
    """One quote per non-blank line; a short trailing "— Name" is its source."""
    return [_quote(line.strip()) for line in text.split("\n") if line.strip()]


def _quote(line: str) -> Quote:
    match = ATTRIBUTION.match(line)
    if match and _looks_like_a_name(match["source"]):
        return Quote(match["quote"].strip(), match["source"].strip())
    return Quote(line, None)


def _looks_like_a_name(text: str) -> bool:
    """An attribution, not the rest of a sentence: a few words, no sentence punctuation at the end,
    starting with a capital letter (any script's) or a digit."""
    words = text.split()
    return (
        0 < len(words) <= MAX_SOURCE_WORDS
        and not text.endswith((".", "?", "!", ":", ";", ",", "…"))
        and (text[0].isupper() or not text[0].isalpha() or not text[0].islower())
    )
