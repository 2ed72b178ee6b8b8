"""Two more archive formats for `digest import`: a Markdown notes post (front matter with a date, one
note per heading of its highest level: `#` podcast episodes, `###` topics) and a collection of quotes
(plain text, one quote a line, an optional "— Author" at the end; speaker and title lines name the next
line's source)."""

from __future__ import annotations

import re
from dataclasses import dataclass

HEADING = re.compile(r"^ {0,3}(?P<marks>#{1,6})[ \t]+(?P<text>.*?)(?:[ \t]+#+)?[ \t]*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")
# "the quote — Author" (em dash or horizontal bar, not a hyphen: titles use " - " themselves)
ATTRIBUTION = re.compile(r"^(?P<quote>.+\S)\s+[—―]\s*(?P<source>[^—―]+?)\s*$")
MAX_SOURCE_WORDS = 8
SPEAKER = re.compile(r"^(?P<name>[^\W\d_][^\d:]{0,60}?)\s+\d{1,2}:\d{2}(?::\d{2})?$")  # a transcript's "Name 00:33:33"
ELISIONS = frozenset({"[…]", "[...]", "…", "..."})  # a cut marked between two quoted lines
TITLE_ENDINGS = (".", "?", "!", ":", ";", ",", "…", '"', "”", "’", "'", ")", "]")


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


MIN_QUOTE_WORDS = 5  # "Yeah.", "How much, sorry?": a transcript's turns, no quote of the month on their own


@dataclass(frozen=True)
class QuoteLines:
    quotes: list[Quote]
    left_out: list[tuple[int, str]]  # (1-based line, text): a short line, or a speaker or title with no quote after it


def read_quotes(text: str) -> QuoteLines:
    """One quote per non-blank line; a short trailing "— Name" is its source. Lines that are no quote:
    a transcript's speaker ("Casey Handmer 00:33:33") or a title (a few words with no closing punctuation,
    such as "AI - Erosion of Trust") names the source of the quote on the next line; a lone "[…]" is
    dropped; a line of fewer than MIN_QUOTE_WORDS words and no "— Name" of its own is left out (and listed)."""
    quotes: list[Quote] = []
    left_out: list[tuple[int, str]] = []
    pending: tuple[int, str, str] | None = None  # (line, text, source) of a speaker or title line not yet used
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        speaker = SPEAKER.match(line)
        quote = _quote(line)
        names_next = bool(speaker) or (quote.source is None and _is_title(line))
        takes_source = not names_next and line not in ELISIONS and quote.source is None and _stands_alone(quote)
        if pending and takes_source:
            quote = Quote(quote.text, pending[2])
        elif pending:
            left_out.append(pending[:2])  # a speaker or title with no quote after it to name
        pending = None
        if names_next:
            pending = (number, line, speaker["name"].strip() if speaker else line)
        elif line in ELISIONS:
            continue
        elif not _stands_alone(quote):
            left_out.append((number, line))
        else:
            quotes.append(quote)
    if pending:
        left_out.append(pending[:2])
    return QuoteLines(quotes, left_out)


def _stands_alone(quote: Quote) -> bool:
    """Enough words to be a quote of the month, or a "— Name" of its own ("Less is more. — Mies")."""
    return quote.source is not None or len(quote.text.split()) >= MIN_QUOTE_WORDS


def _is_title(line: str) -> bool:
    """A heading over the line it introduces: short, unpunctuated, not a list item or a quotation."""
    return (
        len(line.split()) <= MAX_SOURCE_WORDS
        and not line.endswith(TITLE_ENDINGS)
        and not line.startswith(("-", "*", "“", '"', "‘", "'", "["))
    )


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
