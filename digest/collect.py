"""Walk content/, apply the cross-file rules, and group a month's entries into an `Issue`."""

from __future__ import annotations

import calendar
import logging
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from urllib.parse import urlsplit

from digest.config import Config
from digest.content import BIDI_CONTROLS, MAX_ENTRY_BYTES, Entry, key_lines, parse_entry, with_html
from digest.errors import ContentError, NothingToDo, Problem
from digest.files import is_inside, write_atomic
from digest.gcpause import stage

log = logging.getLogger(__name__)
ENTRY_SUFFIXES = (".md", ".markdown")
CACHE_VERSION = 4
NOT_CACHED = ("path", "body_html", "quote_html", "page_html")  # the path is the key; HTML is rendered per build


@dataclass(frozen=True)
class SectionGroup:
    name: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Issue:
    """One month's digest: what every renderer and the sender work from."""

    key: str  # "2025-02": stable identity, used in URLs, feed ids and the delivery log
    month: date
    subject: str
    preheader: str
    permalink: str
    sections: tuple[SectionGroup, ...]
    published: datetime  # the newest entry's date: stable across rebuilds

    @property
    def entries(self) -> tuple[Entry, ...]:
        return tuple(e for s in self.sections for e in s.entries)

    @property
    def title(self) -> str:
        return f"{calendar.month_name[self.month.month]} {self.month.year}"


@dataclass(frozen=True)
class Record:
    """What the scan keeps of one valid file: enough to pick months and spot duplicates cheaply.

    The `Entry` itself is built only for the months a command needs.
    """

    path: str
    fields: tuple  # Entry's fields after `path`, without the rendered HTML
    month: date  # in the site's time zone
    url_key: str | None  # normalised URL, for the same-URL-twice-in-a-month rule

    @property
    def draft(self) -> bool:
        return self.fields[6]

    def entry(self) -> Entry:
        return Entry(Path(self.path), *self.fields)


@dataclass(frozen=True)
class Archive:
    """Every valid entry in content/, and every problem found on the way."""

    config: Config
    records: tuple[Record, ...]
    problems: tuple[Problem, ...] = field(default=())

    @property
    def entries(self) -> tuple[Entry, ...]:
        return tuple(r.entry() for r in self.records)

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if not p.warning)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.warning)

    def months(self) -> list[date]:
        """Months with at least one published (non-draft) entry, oldest first."""
        return sorted({r.month for r in self.records if not r.draft})

    @property
    def latest_month(self) -> date:
        months = self.months()
        if not months:
            raise NothingToDo(f"no entries in {self.config.paths.content}: add one with 'digest add URL --title ...'")
        return months[-1]

    @stage
    def issue(self, month: date, *, html: bool = True) -> Issue:
        """The issue for `month` (commentary rendered unless `html` is False); NothingToDo if empty."""
        chosen = [r.entry() for r in self.records if r.month == month and not r.draft]
        if not chosen:
            raise NothingToDo(f"no entries for {month:%Y-%m}: nothing to build or send")
        return make_issue(month, [with_html(e) for e in chosen] if html else chosen, self.config)

    def recent(self, count: int) -> tuple[Issue, ...]:
        """The newest `count` issues, oldest first (the order feeds are written in)."""
        return tuple(self.issue(m) for m in self.months()[-count:])


def month_of(when: datetime, tz: tzinfo) -> date:
    """The month `when` falls in, in the site's time zone (00:30 local on the 1st is the new month)."""
    local = when.astimezone(tz)
    return date(local.year, local.month, 1)


def month_bounds(month: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """Half-open [start, end) of `month` in `tz`."""
    start = datetime(month.year, month.month, 1, tzinfo=tz)
    nxt = (start.replace(tzinfo=None) + timedelta(days=32)).replace(day=1)
    return start, nxt.replace(tzinfo=tz)


def make_issue(month: date, entries: list[Entry], config: Config) -> Issue:
    order = {name: i for i, name in enumerate(config.site.sections)}
    entries.sort(key=lambda e: (order[e.section], e.date, e.path.name))
    groups = [SectionGroup(s, tuple(e for e in entries if e.section == s)) for s in config.site.sections]
    key = f"{month:%Y-%m}"
    subject = config.email.subject.format(
        title=config.site.title,
        month_name=calendar.month_name[month.month],
        month=f"{month:%m}",
        year=month.year,
        key=key,
        count=len(entries),
    )
    subject = _cap_subject(subject)
    return Issue(
        key=key,
        month=month,
        subject=subject,
        preheader=_preheader(entries),
        permalink=f"{config.site.base_url}{month:%Y/%m}/",
        sections=tuple(g for g in groups if g.entries),
        published=max(e.date for e in entries),
    )


SUBJECT_LIMIT = 200  # characters; RFC 5322 advises 78 per header line, and mail apps show about 60


def _cap_subject(subject: str, limit: int = SUBJECT_LIMIT) -> str:
    """A long title makes a subject no mail app shows: cut at a word, with an ellipsis, and say so."""
    if len(subject) <= limit:
        return subject
    cut = subject[: limit - 1].rsplit(" ", 1)[0] if " " in subject[: limit - 1] else subject[: limit - 1]
    log.warning("the email subject is %d characters; cut to %d ([email] subject, [site] title)", len(subject), limit)
    return cut.rstrip() + "…"


def _preheader(entries: list[Entry], limit: int = 140) -> str:
    count = f"{len(entries)} link{'s' if len(entries) != 1 else ''} this month: "
    text = count + "; ".join(BIDI_CONTROLS.sub("", e.title) for e in entries)  # no title reverses the next
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


@stage
def load_archive(config: Config, *, strict: bool = True) -> Archive:
    """Read every entry file (through a stat-keyed cache); with `strict`, any error raises."""
    records, problems = _Scanner(config).scan()
    archive = Archive(config, records, problems + tuple(_duplicate_urls(records, config)))
    if strict and archive.errors:
        raise ContentError(archive.errors)
    return archive


def _duplicate_urls(records: tuple[Record, ...], config: Config) -> list[Problem]:
    seen: dict[tuple[date, str], Record] = {}
    problems = []
    for record in sorted((r for r in records if r.url_key and not r.draft), key=lambda r: (r.fields[2], r.path)):
        first = seen.setdefault((record.month, record.url_key), record)
        if first is not record:
            problems.append(
                Problem(
                    display_path(Path(record.path), config),
                    f"same url as {display_path(Path(first.path), config)} in {record.month:%Y-%m}: {record.fields[1]}",
                    _url_line(Path(record.path)),
                    "merge the two entries or remove one",
                )
            )
    return problems


def _url_line(path: Path) -> int | None:
    """The line of the `url:` key, for the message (read again: duplicates are rare)."""
    try:
        text = _read_limited(path).decode("utf-8-sig", errors="replace")
    except OSError:
        return None
    return key_lines(text).get("url")


def _normal_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}?{parts.query}#{parts.fragment}"


def display_path(path: Path, config: Config) -> Path:
    """Paths in messages are relative to the project folder, as the writer sees them."""
    try:
        return path.relative_to(config.root)
    except ValueError:
        return path


class _Scanner:
    """Walks content/ and parses only files whose (mtime, size) changed since the last run.

    The cache holds plain tuples (no Path objects), so loading it for 10,000 files is cheap.
    """

    def __init__(self, config: Config):
        self.config = config
        self.root = config.paths.content
        self.cache_path = config.var_dir / "cache" / "content.pickle"
        self.fingerprint = (CACHE_VERSION, config.site.sections, config.site.timezone, str(self.root))

    def scan(self) -> tuple[tuple[Record, ...], tuple[Problem, ...]]:
        if not self.root.is_dir():
            problem = Problem(
                display_path(self.root, self.config),
                "content folder not found",
                hint="create it, or set [paths] content in digest.toml",
            )
            return (), (problem,)
        old = self._load_cache()
        new: dict[str, tuple] = {}
        records: list[Record] = []
        problems: list[Problem] = []
        for path, stat_key, problem in self._walk():
            if problem:
                problems.append(problem)
                continue
            cached = old.get(path)
            if cached is None or cached[0] != stat_key:
                cached = (stat_key, *self._parse(Path(path)))
            new[path] = cached
            if cached[1] is not None:
                records.append(cached[1])
            problems.extend(cached[2])
        if new != old:
            self._save_cache(new)
        return tuple(records), tuple(problems)

    def _parse(self, path: Path) -> tuple[Record | None, tuple[Problem, ...]]:
        shown = str(display_path(path, self.config))
        try:
            raw = _read_limited(path)
        except OSError as exc:
            return None, (Problem(shown, f"cannot read file: {exc.strerror}"),)
        entry, problems = parse_entry(path, raw, self.config.site.sections, self.config.site.tz)
        found = tuple(Problem(shown, p.message, p.line, p.hint, p.warning) for p in problems)
        if entry is None:
            return None, found
        fields = tuple(
            getattr(entry, f)
            for f in Entry.__dataclass_fields__
            if f not in ("path", "body_html", "quote_html", "page_html")
        )
        url_key = _normal_url(entry.url) if entry.url else None
        return Record(str(path), fields, month_of(entry.date, self.config.site.tz), url_key), found

    def _walk(self) -> Iterator[tuple[str, tuple[int, int], Problem | None]]:
        stack = [str(self.root)]
        while stack:
            folder = stack.pop()
            with os.scandir(folder) as it:
                items = sorted(it, key=lambda d: d.name)
            for item in items:
                if item.name.startswith("."):
                    continue
                if item.is_symlink() and not is_inside(Path(item.path), self.root):
                    problem = Problem(
                        str(display_path(Path(item.path), self.config)),
                        "symlink points outside the content folder, or in a loop",
                        hint="copy the file into content/ instead",
                    )
                    yield item.path, (0, 0), problem
                elif item.is_dir(follow_symlinks=False):
                    stack.append(item.path)
                elif item.name.endswith(ENTRY_SUFFIXES) and item.is_file():
                    stat = item.stat()
                    yield item.path, (stat.st_mtime_ns, stat.st_size), None

    def _load_cache(self) -> dict[str, tuple]:
        try:
            with open(self.cache_path, "rb") as handle:
                data = pickle.load(handle)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, TypeError):
            return {}
        return data["files"] if isinstance(data, dict) and data.get("fingerprint") == self.fingerprint else {}

    def _save_cache(self, files: dict[str, tuple]) -> None:
        data = pickle.dumps({"fingerprint": self.fingerprint, "files": files}, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            write_atomic(self.cache_path, data)
        except OSError as exc:  # a read-only checkout still builds, only slower
            log.debug("content cache not written: %s", exc)


def _read_limited(path: Path) -> bytes:
    """Read at most one byte past the entry size limit, so a huge file costs no memory."""
    with open(path, "rb") as handle:
        return handle.read(MAX_ENTRY_BYTES + 1)
