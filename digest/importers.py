"""Old monthly archives -> entry files, and `digest add`'s single entry.

Two formats are understood: a Jekyll "Link Archive" post (front matter, then
`**[Title](url)**` lines each followed by bullet commentary) and a plain-text
"YYYY Month - What I Have Read" month (section headings, `Title - Source [Link]`
lines, commentary, and `― Title - Source [Link]` lines whose quote stands above them).
"""

from __future__ import annotations

import calendar
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
from digest.errors import DigestError, Problem
from digest.files import write_atomic

# a URL may hold balanced parentheses (Wikipedia's "Transformer_(deep_learning_architecture)")
LINK_LINE = re.compile(r"^\*\*\[(?P<title>.+)\]\((?P<url>(?:[^()\s]|\([^()\s]*\))+)\)\*\*\s*$")
READ_HEADING = re.compile(r"^(?P<year>\d{4})\s+(?P<month>[A-Za-z]+)\s+-\s+What I Have Read\s*$")
ENTRY_LINE = re.compile(r"^(?P<quoted>―\s*)?(?P<head>.+?)\s*\[(?:link)\](?:\s*\[[^\]]+\])*\s*$", re.IGNORECASE)
VIDEO_HOSTS = ("youtube.com", "youtu.be", "vimeo.com", "podcasts.apple.com", "open.spotify.com")
MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}


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

    @property
    def body(self) -> str:
        if not self.plain:
            return "\n".join(self.lines).strip()
        return _plain_to_markdown([line for line in self.lines if line.strip()])


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


def import_files(config: Config, files: list[Path]) -> ImportReport:
    """Read every file first, then write: an unreadable archive writes nothing. Re-running is a no-op."""
    parsed = [read_archive(path, config) for path in files]
    files: list[EntryFile] = []
    problems: list[Problem] = []
    for when, entries in parsed:
        width = max(2, len(str(len(entries))))
        for number, item in enumerate(entries, 1):
            entry = write_entry(
                config, title=item.title, url=item.url, when=when,
                section=item.section or _guess_section(item.url, config), source=item.source,
                note=item.body, quote=item.quote, slug=f"{number:0{width}d}-{slugify(item.title)}",
            )  # fmt: skip
            files.append(entry)
            if not item.url and not entry.exists:
                problems.append(
                    Problem(
                        display_path(entry.path, config),
                        "no url in the archive: the title renders without a link",
                        warning=True,
                    )
                )
    return ImportReport(tuple(files), tuple(problems))


def read_archive(path: Path, config: Config) -> tuple[datetime | date, list[Imported]]:
    """(the archive's date, its entries in order); ImportError_ naming the file otherwise."""
    try:
        text = path.read_text(encoding="utf-8-sig").replace("\r\n", "\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportError_(f"{path}: cannot read: {exc}") from None
    first = text.lstrip().split("\n", 1)[0]
    if READ_HEADING.match(first):
        return _read_plain_month(path, text, config)
    if frontmatter.checks(text) or any(LINK_LINE.match(line) for line in text.splitlines()):
        return _read_link_archive(path, text)
    raise ImportError_(
        f"{path}: not a link archive digest can import (expected a Jekyll post with '**[Title](url)**' "
        "lines, or a plain-text month starting '2024 December - What I Have Read')"
    )


def _read_link_archive(path: Path, text: str) -> tuple[datetime | date, list[Imported]]:
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
    entries: list[Imported] = []
    closed = True  # before the first link, and after a rule: intro and sign-off, not commentary
    for line in body.split("\n"):
        match = LINK_LINE.match(line.strip())
        if match and visible_text(match["title"]):  # "**[ ](url)**" has no title: commentary, not an invalid entry
            url = match["url"] if url_problem(match["url"]) is None else None
            entries.append(Imported(title=match["title"].strip(), url=url))
            closed = False
        elif line.strip() in ("---", "***", "___"):
            closed = True
        elif not closed:
            entries[-1].lines.append(_unindent_bullet(line))
    if not entries:
        raise ImportError_(f"{path}: no '**[Title](url)**' lines found")
    return when, entries


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
        if not visible_text(title):  # no entry line, or one without a title ("― [Link]"): text, not an invalid entry
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


def entry_file(
    config: Config,
    *,
    title: str,
    url: str | None,
    when: date | datetime,
    section: str | None = None,
    source: str | None = None,
    note: str = "",
    quote: str | None = None,
    tags: tuple[str, ...] = (),
    slug: str | None = None,
) -> EntryFile:
    """content/YYYY/MM/<slug>.md and its text; a new name when another file holds other text."""
    tz = config.site.tz
    local = when.astimezone(tz) if isinstance(when, datetime) and when.tzinfo else when
    if isinstance(local, datetime) and local.tzinfo is None:
        local = local.replace(tzinfo=tz)
    meta: dict[str, object] = {"title": title}
    if url:
        meta["url"] = url
    meta["date"] = local.isoformat()
    meta["section"] = section or config.site.sections[0]
    if source:
        meta["source"] = source
    if tags:
        meta["tags"] = list(tags)
    if quote:
        meta["quote"] = quote
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False, width=10_000)
    text = f"---\n{front}---\n\n{note.strip()}\n" if note.strip() else f"---\n{front}---\n"
    folder = config.paths.content / f"{local:%Y}" / f"{local:%m}"
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
