"""Old monthly archives -> entry files, and `digest add`'s single entry.

Four formats are understood (`FORMATS`): a Jekyll "Link Archive" post (front matter, then
`**[Title](url)**` lines each followed by bullet commentary; the text above the first link and
below the last becomes the month's editor's note), a plain-text "YYYY Month - What I Have Read"
month (section headings, `Title - Source [Link]` lines, commentary, and `― Title - Source [Link]`
lines whose quote stands above them), a Markdown notes post (`digest.note_archives`: one note per
top-level heading) and a collection of quotes, one a line, for the quote pool. The first three
are told apart by their text; a quote collection is plain lines, so it is imported only when asked
for (`--format quotes`).
"""

from __future__ import annotations

import calendar
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import frontmatter
import yaml
from frontmatter.default_handlers import YAMLHandler

from digest.collect import display_path
from digest.config import Config
from digest.content import SAFE_YAML, url_problem, visible_text
from digest.editors_note import NOTE_NAME
from digest.errors import DigestError, Problem
from digest.files import write_atomic
from digest.note_archives import heading_lines, read_quotes, split_notes
from digest.quotes import QUOTES_FOLDER

# a URL may hold balanced parentheses (Wikipedia's "Transformer_(deep_learning_architecture)")
LINK_LINE = re.compile(r"^\*\*\[(?P<title>.+)\]\((?P<url>(?:[^()\s]|\([^()\s]*\))+)\)\*\*\s*$")
READ_HEADING = re.compile(r"^(?P<year>\d{4})\s+(?P<month>[A-Za-z]+)\s+-\s+What I Have Read\s*$")
ENTRY_LINE = re.compile(r"^(?P<quoted>―\s*)?(?P<head>.+?)\s*\[(?:link)\](?:\s*\[[^\]]+\])*\s*$", re.IGNORECASE)
VIDEO_HOSTS = ("youtube.com", "youtu.be", "vimeo.com", "podcasts.apple.com", "open.spotify.com")
MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
FORMATS = ("link-archive", "read-month", "notes", "quotes")  # `digest import --format`
log = logging.getLogger(__name__)


class ImportError_(DigestError):
    """A file that is in neither archive format."""


@dataclass
class Imported:
    """One entry as read from an archive, before it becomes a file."""

    title: str
    url: str | None = None
    source: str | None = None
    section: str | None = None
    quote: str | None = None
    lines: list[str] = field(default_factory=list)
    plain: bool = False  # commentary is plain text (one paragraph a line), not Markdown
    kind: str = "link"  # or "note", "quote" (a quote's words are its body)

    @property
    def body(self) -> str:
        if not self.plain:
            return "\n".join(self.lines).strip()
        return _plain_to_markdown([line for line in self.lines if line.strip()])


@dataclass
class ReadArchive:
    """One archive read: its date (None for undated pool quotes), its entries in order, and the
    editor's note around them."""

    when: datetime | date | None
    entries: list[Imported]
    intro: str = ""
    outro: str = ""


@dataclass(frozen=True)
class ImportReport:
    files: tuple[EntryFile, ...]  # one per entry read, in the archives' order
    problems: tuple[Problem, ...]

    @property
    def written(self) -> tuple[Path, ...]:
        return tuple(f.path for f in self.files if not f.exists)

    @property
    def unchanged(self) -> tuple[Path, ...]:
        """Imported before, with the same text: left as they are."""
        return tuple(f.path for f in self.files if f.exists)


def import_files(config: Config, files: list[Path], fmt: str | None = None) -> ImportReport:
    """Read every file first, then write: an unreadable archive writes nothing. Re-running is a no-op.
    `fmt` (one of `FORMATS`) skips telling the format from the text."""
    parsed = [read_file(path, config, fmt) for path in files]
    made: list[EntryFile] = []
    problems: list[Problem] = []
    for read in parsed:
        when, entries = read.when, read.entries
        width = max(2, len(str(len(entries))))
        if read.intro or read.outro:
            problems += _write_note(config, read)
        for number, item in enumerate(entries, 1):
            link = item.kind == "link"
            entry = write_entry(
                config, title=item.title, url=item.url, when=when,
                section=item.section or _guess_section(item.url, config) if link else None, source=item.source,
                note=item.body, quote=item.quote, slug=f"{number:0{width}d}-{slugify(item.title)}", kind=item.kind,
            )  # fmt: skip
            made.append(entry)
            if link and not item.url and not entry.exists:
                problems.append(
                    Problem(
                        display_path(entry.path, config),
                        "no url in the archive: the title renders without a link",
                        warning=True,
                    )
                )
    return ImportReport(tuple(made), tuple(problems))


def read_archive(path: Path, config: Config) -> tuple[datetime | date | None, list[Imported]]:
    """(the archive's date, its entries in order); ImportError_ naming the file otherwise."""
    read = read_file(path, config)
    return read.when, read.entries


def read_file(path: Path, config: Config, fmt: str | None = None) -> ReadArchive:
    """The archive in format `fmt`, or in the format its text shows; ImportError_ naming the file otherwise."""
    try:
        text = path.read_text(encoding="utf-8-sig").replace("\r\n", "\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportError_(f"{path}: cannot read: {exc}") from None
    fmt = fmt or detect_format(path, text)
    if fmt == "read-month":
        return ReadArchive(*_read_plain_month(path, text, config))
    if fmt == "notes":
        return _read_notes(path, text)
    if fmt == "quotes":
        return _read_quotes(path, text)
    return _read_link_archive(path, text)


def detect_format(path: Path, text: str) -> str:
    """One of `FORMATS` from the text: a quote collection has no mark of its own, so never this one."""
    first = text.lstrip().split("\n", 1)[0]
    if READ_HEADING.match(first):
        return "read-month"
    links = any(LINK_LINE.match(line) for line in text.splitlines())
    if frontmatter.checks(text) and not links and heading_lines(text):
        return "notes"
    if frontmatter.checks(text) or links:
        return "link-archive"
    raise ImportError_(
        f"{path}: not an archive digest can import (expected a Jekyll post with '**[Title](url)**' "
        "lines or '#' headings, or a plain-text month starting '2024 December - What I Have Read'; "
        "for a collection of quotes, one a line, add --format quotes)"
    )


def _read_dated_post(path: Path, text: str) -> tuple[datetime | date, str]:
    """A Jekyll post's date and body."""
    handler = frontmatter.detect_format(text, frontmatter.handlers)
    if isinstance(handler, YAMLHandler):
        handler = SAFE_YAML  # the entry parser's loader: absurd nesting refused, not a crash
    try:
        meta, body = frontmatter.parse(text, handler=handler)
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as exc:
        raise ImportError_(f"{path}: malformed front matter: {exc}") from None
    when = meta.get("date")
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when)
        except ValueError:
            when = None
    if not isinstance(when, (date, datetime)) or not 2 <= when.year <= 9998:
        raise ImportError_(f"{path}: the front matter has no usable 'date:' (expected e.g. 2025-02-28 22:59:59)")
    return when, body


def _read_link_archive(path: Path, text: str) -> ReadArchive:
    when, body = _read_dated_post(path, text)
    entries: list[Imported] = []
    intro: list[str] = []  # before the first link
    outro: list[str] = []  # after a rule that follows the last link
    closed = True  # before the first link, and after a rule: intro and sign-off, not commentary
    for line in body.split("\n"):
        match = LINK_LINE.match(line.strip())
        if match and visible_text(match["title"]):  # "**[ ](url)**" has no title: commentary, not an invalid entry
            url = match["url"] if url_problem(match["url"]) is None else None
            entries.append(Imported(title=match["title"].strip(), url=url))
            closed, outro = False, []
        elif line.strip() in ("---", "***", "___"):
            closed = True
        elif not closed:
            entries[-1].lines.append(_unindent_bullet(line))
        else:
            (outro if entries else intro).append(line)
    if not entries:
        raise ImportError_(f"{path}: no '**[Title](url)**' lines found")
    return ReadArchive(when, entries, "\n".join(intro).strip(), "\n".join(outro).strip())


def _read_notes(path: Path, text: str) -> ReadArchive:
    """One note per top-level heading, each dated by the post; text above the first is the introduction."""
    when, body = _read_dated_post(path, text)
    intro, notes = split_notes(body)
    entries = [Imported(title=n.title, lines=[n.body], kind="note") for n in notes if visible_text(n.title)]
    if not entries:
        raise ImportError_(f"{path}: no '#' headings found: each note starts with one")
    return ReadArchive(when, entries, intro)


def _read_quotes(path: Path, text: str) -> ReadArchive:
    """One undated pool quote per line (plain text: Markdown syntax escaped)."""
    read = read_quotes(text)
    quotes = [q for q in read.quotes if visible_text(q.text)]
    for line, words in read.left_out:
        log.warning("%s:%d: left out, no quote on its own: %s", path, line, words)
    if not quotes:
        raise ImportError_(f"{path}: no quotes found (one a line)")
    entries = [
        Imported(title=q.text, source=q.source, lines=[_escape(q.text)], kind="quote") for q in quotes
    ]  # the title names the file only: a quote shows its words
    return ReadArchive(None, entries)


def _write_note(config: Config, read: ReadArchive) -> list[Problem]:
    """The month's `_issue.md` with the archive's introduction and outro, unless one is there already."""
    if read.when is None:
        return []
    folder = config.paths.content / f"{_local(read.when, config):%Y/%m}"
    path = folder / NOTE_NAME
    front = yaml.safe_dump({"outro": read.outro}, allow_unicode=True, width=10_000) if read.outro else ""
    text = (f"---\n{front}---\n" if front else "") + (f"\n{read.intro}\n" if read.intro else "")
    if path.exists():
        if path.read_text(encoding="utf-8", errors="replace") == text:
            return []
        return [Problem(display_path(path, config), "an editor's note is there already: left as it is", warning=True)]
    write_atomic(path, text)
    return []


def _unindent_bullet(line: str) -> str:
    """`*   text` -> `- text`: Markdown bullets without the archive's wide indent."""
    return re.sub(r"^\s*[*+-]\s{1,4}", "- ", line) if re.match(r"^\s*[*+-]\s", line) else line


def _read_plain_month(path: Path, text: str, config: Config) -> tuple[date, list[Imported]]:
    lines = text.split("\n")
    heading = READ_HEADING.match(lines[0].strip())
    month = MONTHS.get(heading["month"].lower()) if heading else None
    if not heading or not month:
        raise ImportError_(f"{path}:1: expected a first line such as '2024 December - What I Have Read'")
    year = int(heading["year"])
    if not 2 <= year <= 9998:
        raise ImportError_(f"{path}:1: the year {heading['year']} is out of range")
    when = date(year, month, calendar.monthrange(year, month)[1])
    sections = {s.casefold(): s for s in config.site.sections}
    entries: list[Imported] = []
    section: str | None = None
    pending: list[str] = []  # lines since the last entry or heading: commentary, or a quote
    after_entry = False  # no heading since the last entry line
    for raw in lines[1:]:
        line = raw.rstrip()
        if line.strip().casefold() in sections:
            _flush(entries, pending)
            section, after_entry = sections[line.strip().casefold()], False
            continue
        match = ENTRY_LINE.match(line.strip())
        title, source = _split_title(match["head"]) if match else ("", None)
        if match is None or not visible_text(title):  # no entry line, or one without a title ("― [Link]"): text
            pending.append(line)
            continue
        quote = _take_quote(entries, pending, after_entry) if match["quoted"] else None
        _flush(entries, pending)
        entries.append(Imported(title=title, source=source, section=section, quote=quote, plain=True))
        after_entry = True
    _flush(entries, pending)
    if not entries:
        raise ImportError_(f"{path}: no 'Title - Source [Link]' lines found")
    return when, entries


def _take_quote(entries: list[Imported], pending: list[str], after_entry: bool) -> str | None:
    """The lines above a `―` attribution are its quote: back to a blank line, heading or entry.

    Lines that run on directly from an ordinary entry are that entry's commentary, except
    the last one, which is the quote.
    """
    block: list[str] = []
    while pending and pending[-1].strip():
        block.insert(0, pending.pop())
    if after_entry and not pending and not entries[-1].quote and len(block) > 1:
        pending.extend(block[:-1])
        block = block[-1:]
    return _plain_to_markdown([line for line in block if line.strip()]) or None  # each line a paragraph


def _plain_to_markdown(lines: list[str]) -> str:
    """One paragraph per line, `- ` bullets kept as a list, Markdown syntax escaped."""
    out: list[str] = []
    for index, line in enumerate(lines):
        bullet = re.match(r"^\s*[-•]\s+", line)
        text = ("- " + _escape(line[bullet.end() :])) if bullet else _escape(line.strip())
        if index:
            out.append("\n" if bullet and re.match(r"^\s*[-•]\s+", lines[index - 1]) else "\n\n")
        out.append(text)
    return "".join(out)


def _escape(text: str) -> str:
    """Backslash-escape what Markdown would read as markup, so the words render as written."""
    parts = re.split(r"(https?://\S+)", text)  # bare URLs stay whole, for linkify
    text = "".join(p if i % 2 else re.sub(r"([\\`*_\[\]<>|])", r"\\\1", p) for i, p in enumerate(parts))
    text = re.sub(r"^(\d+)([.)])(\s)", r"\1\\\2\3", text)  # "2024. Year" is not a list
    return re.sub(r"^([#+=-])", r"\\\1", text)


def _flush(entries: list[Imported], pending: list[str]) -> None:
    if entries:
        entries[-1].lines.extend(pending)
    pending.clear()


def _split_title(head: str) -> tuple[str, str | None]:
    """`Title - Source` -> (Title, Source); titles may themselves contain dashes."""
    head = head.strip()
    if " - " in head:
        title, source = head.rsplit(" - ", 1)
        if title.strip() and source.strip():
            return title.strip(), source.strip()
    return head, None


def _guess_section(url: str | None, config: Config) -> str:
    """Videos and podcasts go to a section named for them, when the site has one."""
    host = (urlsplit(url).hostname or "") if url else ""
    if any(host == h or host.endswith("." + h) for h in VIDEO_HOSTS):
        for name in config.site.sections:
            if "youtube" in name.casefold() or "podcast" in name.casefold():
                return name
    return config.site.sections[0]


def slugify(title: str, limit: int = 60) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    if len(slug) > limit:
        slug = slug[: limit + 1].rsplit("-", 1)[0]  # whole words only
    return slug[:limit].strip("-") or "entry"


@dataclass(frozen=True)
class EntryFile:
    """An entry file not yet written: where it goes and what it says."""

    path: Path
    text: str
    exists: bool  # the same text is already there (imported before)


def _local(when: date | datetime, config: Config) -> date | datetime:
    """A datetime in the site's time zone (one without an offset is read in it); a date as it is."""
    tz = config.site.tz
    local = when.astimezone(tz) if isinstance(when, datetime) and when.tzinfo else when
    if isinstance(local, datetime) and local.tzinfo is None:
        local = local.replace(tzinfo=tz)
    return local


def entry_file(
    config: Config,
    *,
    title: str,
    url: str | None,
    when: date | datetime | None,
    section: str | None = None,
    source: str | None = None,
    note: str = "",
    quote: str | None = None,
    tags: tuple[str, ...] = (),
    slug: str | None = None,
    kind: str = "link",
) -> EntryFile:
    """content/YYYY/MM/<slug>.md and its text (an undated quote: content/quotes/<slug>.md); a new name
    when another file holds other text. A quote's title only names its file."""
    meta: dict[str, object] = {} if kind == "quote" else {"title": title}
    if kind != "link":
        meta["kind"] = kind
    if url:
        meta["url"] = url
    local = _local(when, config) if when is not None else None
    if local is not None:
        meta["date"] = local.isoformat()
    if kind == "link":
        meta["section"] = section or config.site.sections[0]
    if source:
        meta["source"] = source
    if tags:
        meta["tags"] = list(tags)
    if quote:
        meta["quote"] = quote
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False, width=10_000)
    text = f"---\n{front}---\n\n{note.strip()}\n" if note.strip() else f"---\n{front}---\n"
    folder = config.paths.content / (f"{local:%Y}/{local:%m}" if local is not None else QUOTES_FOLDER)
    base = slug or slugify(title)
    path, counter = folder / f"{base}.md", 2
    while path.exists():
        if path.read_text(encoding="utf-8", errors="replace") == text:
            return EntryFile(path, text, exists=True)
        path, counter = folder / f"{base}-{counter}.md", counter + 1
    return EntryFile(path, text, exists=False)


def write_entry(config: Config, **fields: Any) -> EntryFile:
    """Write the entry file (never over an existing file) unless the same text is already there."""
    entry = entry_file(config, **fields)
    if not entry.exists:
        write_atomic(entry.path, entry.text)
    return entry


__all__ = ["import_files", "read_archive", "entry_file", "write_entry", "EntryFile", "slugify", "ImportReport"]
