"""Walk content/, apply the cross-file rules, and group a month's entries into an `Issue`."""

from __future__ import annotations

import calendar
import functools
import hashlib
import logging
import operator
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, NamedTuple

from digest import editors_note, quotes, urls
from digest.config import Config
from digest.content import BIDI_CONTROLS, MAX_ENTRY_BYTES, Entry, read_entry
from digest.editors_note import EditorsNote
from digest.errors import ContentError, NothingToDo, Problem
from digest.files import is_inside, load_checked, pack_checked, unpack_checked, write_atomic
from digest.gcpause import stage

log = logging.getLogger(__name__)
ENTRY_SUFFIXES = (".md", ".markdown")
CACHE_VERSION = 9  # of the cache files' layout: a file of another version is ignored, its folder parsed again
CACHE_MAGIC = b"digest-content-cache\n"  # then a CRC-32 of the pickle: a damaged file is never trusted
NOT_CACHED = ("path", "body_html", "quote_html", "page_html")  # the path is the key; HTML is rendered per build
CACHED_FIELDS = tuple(f for f in Entry.__dataclass_fields__ if f not in NOT_CACHED)


class EntryFields(NamedTuple):
    """What the content cache keeps of an `Entry`: its fields after `path`, without the rendered HTML."""

    title: str
    url: str | None
    date: datetime
    section: str
    source: str | None
    tags: tuple[str, ...]
    draft: bool
    quote: str | None
    body: str
    kind: str


if EntryFields._fields != CACHED_FIELDS:  # Entry(path, *fields) relies on the same order
    raise TypeError(f"EntryFields {EntryFields._fields} does not match Entry's fields {CACHED_FIELDS}")


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
    sections: tuple[SectionGroup, ...]  # the links' sections, then the notes' ([site] notes_section)
    published: datetime  # the newest entry's date: stable across rebuilds
    note: EditorsNote | None = None  # content/YYYY/MM/_issue.md: introduction and outro
    quotes: tuple[quotes.Quote, ...] = ()  # the month's dated quotes, or the pool's quote of the month

    @functools.cached_property
    def entries(self) -> tuple[Entry, ...]:
        """Every entry in section order, joined once: the index reads each issue's several times."""
        return tuple(e for s in self.sections for e in s.entries)

    @functools.cached_property
    def count(self) -> str:
        """What the issue holds, in words: "8 links", "6 notes", "8 links and 2 notes"."""
        return count_words(self.entries, len(self.quotes))

    @property
    def title(self) -> str:
        return f"{calendar.month_name[self.month.month]} {self.month.year}"


@dataclass(frozen=True)
class Record:
    """What the scan keeps of one valid file: enough to pick months and spot duplicates cheaply.

    The `Entry` itself is built only for the months a command needs.
    """

    path: str
    fields: EntryFields
    month: date  # in the site's time zone
    url_key: str | None  # normalised URL, for the same-URL-twice-in-a-month rule
    digest: str = ""  # BLAKE2b of the file's bytes: what the render cache keys a month on
    url_line: int | None = None  # where the `url:` key is, for messages
    body_line: int = 1  # where the commentary starts, for its link warnings' lines

    @property
    def draft(self) -> bool:
        return self.fields.draft

    @property
    def body(self) -> str:
        return self.fields.body

    def entry(self) -> Entry:
        folder, _, name = self.path.rpartition(os.sep)
        return Entry(_folder(folder) / name, *self.fields)


class Cached(NamedTuple):
    """One file in the content cache: what was found the last time it had this (mtime, size)."""

    stat: tuple[int, int]
    record: Record | None
    problems: tuple[Problem, ...]
    links: tuple[Problem, ...] | None  # the commentary's link warnings, once `digest check` asked for them


class _Kept:
    """What a long-running process keeps in memory: at most `size` values, the least recently used out first;
    safe to share between threads (the web front renders in several)."""

    def __init__(self, size: int):
        self.size = size
        self._values: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._values.get(key)
            if value is not None:
                self._values.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._values[key] = value
            while len(self._values) > self.size:
                self._values.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


_MADE = _Kept(2048)  # issues without HTML by content folder and month, with what they were made of


@functools.lru_cache(maxsize=4096)
def _folder(path: str) -> Path:
    """Entries of one folder share its Path: joining a name to it costs half of parsing the whole path."""
    return Path(path)


@dataclass(frozen=True)
class Archive:
    """Every valid entry in content/, and every problem found on the way."""

    config: Config
    records: tuple[Record, ...]
    problems: tuple[Problem, ...] = field(default=())
    notes: dict[date, EditorsNote] = field(default_factory=dict)  # each month's _issue.md
    pool: tuple[quotes.Quote, ...] = ()  # content/quotes/, in pool order
    grouped: dict[date, tuple[Record, ...]] | None = None  # `by_month` as the scan joined it from its folders

    @property
    def entries(self) -> tuple[Entry, ...]:
        return tuple(r.entry() for r in self.records)

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if not p.warning)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.warning)

    def warnings_about(self, entries: tuple[Entry, ...]) -> tuple[Problem, ...]:
        """The warnings about these entries' files, matched by the whole path (two months may each have
        a `notes.md`)."""
        paths = {display_path(e.path, self.config) for e in entries}
        return tuple(p for p in self.warnings if isinstance(p.path, Path) and p.path in paths)

    @functools.cached_property
    def by_month(self) -> dict[date, tuple[Record, ...]]:
        """Published (non-draft) records per month, oldest month first: grouped once, not per issue. As the
        scan joined them where it did: a month kept in one folder is that folder's tuple, the same object from
        build to build while the folder is unchanged (what `_month_facts` relies on)."""
        return self.grouped if self.grouped is not None else _join_groups((_group_by_month(self.records),))

    def months(self) -> list[date]:
        """Months with at least one published (non-draft) entry, oldest first."""
        return list(self.by_month)

    def month_digest(self, month: date) -> str:
        """A hash of everything the month's issue is made from in content/: its files' names and bytes,
        its editor's note, and the pool quote it shows."""
        facts = _month_facts(self.by_month.get(month, ()), self.config)
        parts = facts.digest_parts
        note = self.notes.get(month)
        pooled = self.pool_quote(month) if not facts.has_quote else None
        parts += f"\0note\0{note.digest if note else ''}\0pool\0{pooled.key + pooled.digest if pooled else ''}"
        return hashlib.blake2b(parts.encode(), digest_size=16).hexdigest()

    def pool_quote(self, month: date) -> quotes.Quote | None:
        """The pool's quote of the month (months numbered from the first issue: `digest.quotes`)."""
        months = self.months()
        return quotes.quote_of_the_month(month, months[0], self.pool) if months else None

    @property
    def latest_month(self) -> date:
        months = self.months()
        if not months:
            raise NothingToDo(f"no entries in {self.config.paths.content}: add one with 'digest add URL --title ...'")
        return months[-1]

    @stage
    def issue(self, month: date, *, html: bool = True) -> Issue:
        """The issue for `month` (commentary rendered unless `html` is False); NothingToDo if empty.

        Without HTML, an issue made from the same files, note, quote and settings is taken from this
        process's memory (`_MADE`): `digest preview` and the web front list every month on each render.
        """
        records = self.by_month.get(month, ())
        if not records:
            raise NothingToDo(f"no entries for {month:%Y-%m}: nothing to build or send")
        note = self.notes.get(month)
        pooled = self.pool_quote(month)
        if html:
            from digest.render.markdown import with_html  # the renderers load only when something renders

            chosen = [with_html(r.entry()) for r in records]
            note = editors_note.with_html(note) if note else None
            pooled = quotes.with_html(pooled) if pooled else None
            return make_issue(month, chosen, self.config, note, pooled)
        made_from = (
            month,
            self.config.site,
            self.config.email,
            records,
            note.digest if note else None,
            (pooled.key, pooled.digest) if pooled else None,
        )  # fmt: skip (the records compare by identity first: a folder unchanged gives the same tuple)
        slot = (str(self.config.paths.content), month)  # one entry per month: an edit replaces what it held
        kept = _MADE.get(slot)
        if kept is not None and kept[0] == made_from:
            if kept[0][3] is not records:  # equal records read again: kept with these, so the next build compares
                _MADE.put(slot, (made_from, kept[1]))  # by identity, not record by record
            return kept[1]
        issue = make_issue(month, [r.entry() for r in records], self.config, note, pooled)
        _MADE.put(slot, (made_from, issue))
        return issue

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


def make_issue(
    month: date,
    chosen: list[Entry],
    config: Config,
    note: EditorsNote | None = None,
    pooled: quotes.Quote | None = None,
) -> Issue:
    """The month's links in their sections, its notes after them, and its quotes: the dated ones, or
    else the pool's quote of the month (`pooled`)."""
    order = {name: i for i, name in enumerate(config.site.sections)}
    chosen.sort(key=lambda e: (order[e.section], e.date, e.path.name))
    entries = [e for e in chosen if e.kind != "quote"]
    grouped: dict[str, list[Entry]] = {name: [] for name in order}
    notes: list[Entry] = []
    for e in entries:  # one pass, in the sorted order
        (grouped[e.section] if e.kind == "link" else notes).append(e)
    groups = [SectionGroup(name, tuple(members)) for name, members in grouped.items()]
    groups.append(SectionGroup(config.site.notes_section, tuple(notes)))
    dated = sorted((e for e in chosen if e.kind == "quote"), key=lambda e: (e.date, e.path.name))
    shown = tuple(quotes.from_entry(e) for e in dated) or ((pooled,) if pooled else ())
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
        subject=note.subject if note and note.subject else subject,
        preheader=note.preheader if note and note.preheader else _preheader(entries, len(shown)),
        permalink=f"{config.site.base_url}{month:%Y/%m}/",
        sections=tuple(g for g in groups if g.entries),
        published=max(e.date for e in chosen),
        note=note,
        quotes=shown,
    )


SUBJECT_LIMIT = 200  # characters; RFC 5322 advises 78 per header line, and mail apps show about 60


def _cap_subject(subject: str, limit: int = SUBJECT_LIMIT) -> str:
    """A long title makes a subject no mail app shows: cut at a word, with an ellipsis, and say so."""
    if len(subject) <= limit:
        return subject
    cut = subject[: limit - 1].rsplit(" ", 1)[0] if " " in subject[: limit - 1] else subject[: limit - 1]
    log.warning("the email subject is %d characters; cut to %d ([email] subject, [site] title)", len(subject), limit)
    return cut.rstrip() + "…"


def count_words(entries: tuple[Entry, ...] | list[Entry], quote_count: int = 0) -> str:
    """What an issue holds, in words ("8 links", "1 note", "8 links and 2 notes"; "1 quote" alone)."""
    links = sum(e.kind == "link" for e in entries)
    notes = len(entries) - links
    parts = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in ((links, "link"), (notes, "note")) if n]
    return " and ".join(parts) or f"{quote_count} quote{'s' if quote_count != 1 else ''}"


def _preheader(entries: list[Entry], quote_count: int, limit: int = 140) -> str:
    text = f"{count_words(entries, quote_count)} this month"
    titles: list[str] = []
    for entry in entries:  # only as many titles as can show: the text is cut at `limit`
        titles.append(BIDI_CONTROLS.sub("", entry.title))  # no title reverses the next
        if len(text) + sum(len(t) + 2 for t in titles) > limit:
            break
    text += f": {'; '.join(titles)}" if titles else ""
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


@stage
def load_archive(config: Config, *, strict: bool = True, link_warnings: bool = False) -> Archive:
    """Read every entry file (through a stat-keyed cache); with `strict`, any error raises.

    Picking a month needs only the front matter: the commentary's Markdown is parsed for its link
    warnings only with `link_warnings` (`digest check`), or per month (`month_link_warnings`).
    """
    scanner = _Scanner(config)
    records, problems, folders = scanner.scan(link_warnings=link_warnings)
    notes, note_problems = editors_note.load_notes(config, links=link_warnings, paths=scanner.notes)
    pool, pool_problems = quotes.load_pool(config)
    by_month = _join_groups(folders)
    twice = tuple(p for group in by_month.values() for p in _month_facts(group, config).duplicates)
    archive = Archive(config, records, problems + twice + tuple(note_problems + pool_problems), notes, pool, by_month)
    if strict and archive.errors:
        raise ContentError(archive.errors)
    return archive


def month_link_warnings(records: tuple[Record, ...], config: Config) -> list[Problem]:
    """The commentary link warnings of these records (the scan leaves them out unless asked)."""
    found = []
    for record in records:
        found += _link_warnings(record, config)
    return found


def _link_warnings(record: Record, config: Config) -> list[Problem]:
    if not record.body:
        return []
    from digest.render.markdown import link_problems

    path = Path(record.path)
    shown = display_path(path, config)
    found = link_problems(path, record.body, record.body_line)
    return [Problem(shown, p.message, p.line, p.hint, p.warning) for p in found]


def _group_by_month(records: tuple[Record, ...] | list[Record]) -> dict[date, tuple[Record, ...]]:
    """The published (non-draft) records per month, in the order given."""
    groups: dict[date, list[Record]] = {}
    for record in records:
        if not record.draft:
            groups.setdefault(record.month, []).append(record)
    return {month: tuple(group) for month, group in groups.items()}


def _join_groups(folders: tuple[dict[date, tuple[Record, ...]], ...]) -> dict[date, tuple[Record, ...]]:
    """Folders' month groups joined in walk order, oldest month first; a month found in one folder only keeps
    that folder's tuple."""
    parts: dict[date, list[tuple[Record, ...]]] = {}
    for groups in folders:
        for month, records in groups.items():
            parts.setdefault(month, []).append(records)
    return {month: found[0] if len(found) == 1 else sum(found, ()) for month, found in sorted(parts.items())}


class _MonthFacts(NamedTuple):
    records: tuple[Record, ...]  # the month's published records, the object they were worked out from
    digest_parts: str  # the files' names and digests, for `Archive.month_digest`
    duplicates: tuple[Problem, ...]  # entries with the same URL as an earlier one in the month
    has_quote: bool  # a dated quote of its own: the pool's quote of the month is not shown


def _month_facts(records: tuple[Record, ...], config: Config) -> _MonthFacts:
    """What the scan and the render cache work out from a month's records, remembered per month while its
    records are the same tuple: a long-running process building again re-reads only the folders that
    changed, and the other months' tuples come back unchanged (`_Scanner.scan`)."""
    if not records:
        return _MonthFacts(records, "", (), False)
    slot = (str(config.root), str(config.paths.content), records[0].month)
    kept = _FACTS.get(slot)
    if kept is not None and kept.records is records:  # held here, so no other tuple can have its identity
        return kept
    ordered = sorted(records, key=_PATH)
    parts = "\0".join(f"{os.path.basename(r.path)}\0{r.digest}" for r in ordered)
    has_quote = any(r.fields.kind == "quote" for r in records)
    facts = _MonthFacts(records, parts, tuple(_duplicate_urls(records, config)), has_quote)
    _FACTS.put(slot, facts)
    return facts


_FACTS = _Kept(4096)
_PATH = operator.attrgetter("path")


def _duplicate_urls(records: tuple[Record, ...], config: Config) -> list[Problem]:
    """Entries of one month with the same URL as an earlier one (by date, then path)."""
    groups: dict[str, list[Record]] = {}
    for record in records:  # one pass; only the rare groups of two or more are sorted
        if record.url_key and not record.draft:
            groups.setdefault(record.url_key, []).append(record)
    twice = [r for group in groups.values() if len(group) > 1 for r in group]
    seen: dict[str | None, Record] = {}
    problems = []
    for record in sorted(twice, key=lambda r: (r.fields.date, r.path)):
        first = seen.setdefault(record.url_key, record)
        if first is not record:
            earlier = display_path(Path(first.path), config)
            problems.append(
                Problem(
                    display_path(Path(record.path), config),
                    f"same url as {earlier} in {record.month:%Y-%m}: {record.fields.url}",
                    record.url_line,
                    "merge the two entries or remove one",
                )
            )
    return problems


def display_path(path: Path, config: Config) -> Path:
    """Paths in messages are relative to the project folder, as the writer sees them."""
    try:
        return path.relative_to(config.root)
    except ValueError:
        return path


class _Scanner:
    """Walks content/ and parses only files whose (mtime, size) changed since the last run.

    The cache maps each path to a `Cached` (stat key, Record or None, problems, link warnings or None); the
    link warnings are filled in the first time `digest check` asks for them. It is kept in one file
    per content folder (a month, by convention), so saving an edit rewrites that folder's file only.
    """

    def __init__(self, config: Config):
        self.config = config
        self.root = config.paths.content
        self.cache_dir = config.var_dir / "cache" / "content"
        self._saved: set[str] = set()  # folders whose cache file a checkpoint already wrote whole
        self.notes: list[Path] = []  # the editors' notes (`_issue.md`) the walk came across
        self.fingerprint = (CACHE_VERSION, config.site.sections, config.site.timezone, str(self.root))

    def scan(
        self, *, link_warnings: bool = False
    ) -> tuple[tuple[Record, ...], tuple[Problem, ...], tuple[dict[date, tuple[Record, ...]], ...]]:
        """The records and problems in walk order, and each folder's records by month (`_join_groups`).

        A folder whose files all have the (mtime, size) its cache file holds is taken whole from that file,
        with no work per file beyond its `stat`; the others are compared file by file."""
        if not self.root.is_dir():
            missing = Problem(
                display_path(self.root, self.config),
                "content folder not found",
                hint="create it, or set [paths] content in digest.toml",
            )
            return (), (missing,), ()
        shards = self._load_cache()
        self.notes = []
        walked = list(self._walk(shards))
        same = set() if link_warnings else {f for f, found in walked if f in shards and shards[f].listing == found}
        old = {path: cached for f, shard in shards.items() if f not in same for path, cached in shard.files.items()}
        compared = [file for f, found in walked if f not in same for file in found]
        unchanged = {path for path, key, _ in compared if key is not None and old[path].stat == key}
        stale = [path for path, _, problem in compared if not problem and path not in unchanged]
        fresh = self._parse_all(stale, old, unchanged)
        new: dict[str, Cached] = {}
        records: list[Record] = []
        problems: list[Problem] = []
        folders: list[dict[date, tuple[Record, ...]]] = []
        for folder, found in walked:
            if folder in same:
                shard = shards[folder]
                records += shard.records
                problems += shard.problems
                folders.append(shard.months)
                continue
            mine: list[Record] = []
            for path, _, problem in found:
                if problem:
                    problems.append(problem)
                    continue
                cached = new[path] = fresh.get(path) or old[path]
                if link_warnings and cached.record is not None and cached.links is None:
                    cached = new[path] = cached._replace(links=tuple(_link_warnings(cached.record, self.config)))
                    self._saved.discard(folder)
                if cached.record is not None:
                    mine.append(cached.record)
                problems.extend(cached.problems + (cached.links or () if link_warnings else ()))
            records += mine
            folders.append(_group_by_month(mine))
        changed = {os.path.dirname(p) for p in new if new[p] is not old.get(p)} - self._saved
        gone = {os.path.dirname(p) for p in old if p not in new}  # files gone: their folders' files rewritten
        if changed or gone:
            self._save_cache(new, changed | gone)
        return tuple(records), tuple(problems), tuple(folders)

    def _parse_all(self, stale: list[str], old: dict[str, Cached], unchanged: set[str]) -> dict[str, Cached]:
        """Parse the changed files, saving the folders parsed so far every CHECKPOINT_SECONDS: a crash or
        Ctrl-C midway through a cold scan of a large archive keeps what was parsed (each folder's file is
        written whole once, unless a checkpoint falls in the middle of the folder). With many files and a
        core to spare, forked workers parse whole folders and write those folders' cache files themselves
        (`_Workers`), while this process parses its own share."""
        sections, tz, root = self.config.site.sections, self.config.site.tz, str(self.config.root)
        fresh: dict[str, Cached] = {}
        pending: set[str] = set()
        saved = time.monotonic()
        mine, theirs = _share_out(stale, unchanged)
        with _Workers(self, old, theirs) as workers:
            for path in mine:
                fresh[path] = Cached._make(_parse_file(path, sections, tz, root))
                pending.add(os.path.dirname(path))
                if time.monotonic() - saved > CHECKPOINT_SECONDS:
                    self._save_cache({**old, **fresh}, pending)
                    self._saved |= pending
                    pending, saved = set(), time.monotonic()
            self._saved -= pending  # a folder parsed since the last checkpoint may have more files now
            for folder, files in workers.results():  # each folder's cache file, as the worker wrote it
                fresh.update(files)
                self._saved.add(folder)
        return fresh

    def _walk(self, shards: dict[str, _Shard]) -> Iterator[tuple[str, list[_Found]]]:
        """Each folder with its entry files by name: each with its (mtime, size) if the folder's cache file knows
        it (else None: the read that parses it takes them, so a cold scan makes one system call a file fewer),
        or the problem that stops it."""
        root = str(self.root)
        stack = [root]
        while stack:
            folder = stack.pop()
            with os.scandir(folder) as it:
                items = sorted(it, key=_NAME)
            shard = shards.get(folder)
            known = shard.files if shard is not None else {}
            found: list[_Found] = []
            for item in items:
                name = item.name
                if not (name.endswith(ENTRY_SUFFIXES) and name[0] not in "._" and item.is_file(follow_symlinks=False)):
                    if name.startswith(".") or (name.startswith("_") and not item.is_dir()):
                        if name == editors_note.NOTE_NAME:
                            self.notes.append(Path(item.path))
                        continue  # hidden files, and `_issue.md` and the like: not entries (editors_note)
                    if folder == root and name == quotes.QUOTES_FOLDER:
                        continue  # the quote pool (quotes.load_pool)
                    if item.is_symlink() and not is_inside(Path(item.path), self.root):
                        problem = Problem(
                            display_path(Path(item.path), self.config),
                            "symlink points outside the content folder, or in a loop",
                            hint="copy the file into content/ instead",
                        )
                        found.append((item.path, None, problem))
                        continue
                    if item.is_dir(follow_symlinks=False):
                        stack.append(item.path)
                        continue
                    if not (name.endswith(ENTRY_SUFFIXES) and item.is_file()):
                        continue  # a symlink to an entry file inside content/ is read like the file
                path = item.path
                if path in known:
                    stat = item.stat()
                    found.append((path, (stat.st_mtime_ns, stat.st_size), None))
                else:
                    found.append((path, None, None))
            yield folder, found

    def _load_cache(self) -> dict[str, _Shard]:
        """Every folder's cache file that is whole (checksum) and of this version and config, by folder; the
        rest are ignored, and their files parsed again."""
        try:
            names = os.listdir(self.cache_dir)
        except OSError:
            return {}
        shards: dict[str, _Shard] = {}
        for name in names:
            if name.endswith(".pickle"):
                shard = self._load_shard(self.cache_dir / name)
                if shard is not None:
                    shards[shard.folder] = shard
        return shards

    def _load_shard(self, path: Path) -> _Shard | None:
        """One folder's cache file; the same file read again by this process (same inode, mtime and size) is
        taken from memory: a long-running process (`digest preview`, `digest serve`) rebuilding on every edit
        would otherwise unpickle the whole archive each time."""
        try:
            stat = os.stat(path)
        except OSError:
            return None
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size, self.fingerprint)
        kept = _READ_SHARDS.get(str(path))  # one entry per file: a rewritten file replaces what it held
        if kept is not None and kept[0] == seen:
            return kept[1]
        data = load_checked(path, CACHE_MAGIC)
        if not isinstance(data, dict) or data.get("fingerprint") != self.fingerprint:
            return None
        folder = data.get("folder", "")
        if path.name != self._shard_name(folder):
            return None
        shard = _Shard.of(folder, data["files"])
        _READ_SHARDS.put(str(path), (seen, shard))
        return shard

    def _shard_name(self, folder: str) -> str:
        return hashlib.blake2b(folder.encode(), digest_size=10).hexdigest() + ".pickle"

    def _save_cache(self, files: dict[str, Cached], folders: set[str]) -> None:
        """Rewrite the cache files of `folders` (a folder with no files left loses its cache file)."""
        grouped: dict[str, dict[str, Cached]] = {folder: {} for folder in folders}
        for path, cached in files.items():
            group = grouped.get(os.path.dirname(path))
            if group is not None:
                group[path] = cached
        for folder, group in grouped.items():
            self._save_folder(folder, group)

    def _save_folder(self, folder: str, files: dict[str, Cached]) -> bytes:
        """Write one folder's cache file; returns its bytes (a worker hands them to the scanning process)."""
        shard = self.cache_dir / self._shard_name(folder)
        packed = pack_checked(CACHE_MAGIC, {"fingerprint": self.fingerprint, "folder": folder, "files": files})
        try:
            if files:
                write_atomic(shard, packed, sync=False)
            else:
                shard.unlink(missing_ok=True)
        except OSError as exc:  # a read-only checkout still builds, only slower
            log.debug("content cache not written: %s", exc)
        return packed


_Found = tuple[str, tuple[int, int] | None, Problem | None]  # a file the walk found: path, (mtime, size), problem


class _Shard(NamedTuple):
    """One folder's cache file as read, with what a scan takes whole from it while the folder is unchanged."""

    folder: str
    files: dict[str, Cached]
    listing: list[_Found]  # what `_Scanner._walk` finds in the folder when no file changed
    records: tuple[Record, ...]  # by file name, as the walk finds them
    problems: tuple[Problem, ...]
    months: dict[date, tuple[Record, ...]]  # the published records by month (`_join_groups`)

    @classmethod
    def of(cls, folder: str, files: dict[str, Cached]) -> _Shard:
        ordered = sorted(files.items())  # by path: within a folder, by name as the walk goes
        records = tuple(c.record for _, c in ordered if c.record is not None)
        listing: list[_Found] = [(path, c.stat, None) for path, c in ordered]
        problems = tuple(p for _, c in ordered for p in c.problems)
        return cls(folder, files, listing, records, problems, _group_by_month(records))


CHECKPOINT_SECONDS = 1.0
_NAME = operator.attrgetter("name")
_READ_SHARDS = _Kept(4096)  # content-cache files' records by path, with the inode, mtime, size and config read


PARALLEL_MIN_FILES = 2000  # below this, starting worker processes costs more than it saves


def _share_out(stale: list[str], unchanged: set[str]) -> tuple[list[str], list[list[_FolderTask]]]:
    """This process's files, and the workers' tasks: whole folders, so each worker writes the cache files of
    the folders it parsed and no folder's file is written twice. On 2 cores this process and one worker
    take half each: the worker also packs its folders' cache files, which this process would have had to
    pack anyway, and hands their bytes over. That pays only where the two cores really run at once (see
    bench/README.md: on a virtual machine whose two CPUs share one host core, it does not)."""
    cores = min(os.cpu_count() or 1, 8)
    if len(stale) < PARALLEL_MIN_FILES or not _cores_to_spare(cores) or threading.active_count() > 1:
        return stale, []
    folders: dict[str, list[str]] = {}
    for path in stale:
        folders.setdefault(os.path.dirname(path), []).append(path)
    kept: dict[str, list[str]] = {}
    for path in unchanged:  # a folder's cache file holds its unchanged files too
        if os.path.dirname(path) in folders:
            kept.setdefault(os.path.dirname(path), []).append(path)
    mine: list[str] = []
    tasks: list[_FolderTask] = []
    share = len(stale) // cores
    for folder, files in folders.items():
        if len(mine) < share:
            mine += files
        else:
            tasks.append((folder, files, kept.get(folder, [])))
    per_task = max(len(tasks) // (4 * (cores - 1)), 1)  # a few tasks per worker: results arrive as they finish
    return mine, [tasks[i : i + per_task] for i in range(0, len(tasks), per_task)]


_FolderTask = tuple[str, list[str], list[str]]  # (folder, files to parse, unchanged files)
_FORKED: tuple[_Scanner, dict[str, Cached]] | None = None  # what forked workers inherit: the scanner, the old cache


class _Workers:
    """Forked processes that parse whole folders and write their cache files; `results()` gives each folder's
    files as written. No worker is started when there are no tasks."""

    def __init__(self, scanner: _Scanner, old: dict[str, Cached], tasks: list[list[_FolderTask]]):
        self.scanner, self.old, self.tasks = scanner, old, tasks
        self.pool: Any = None
        self.pending: Any = None

    def __enter__(self) -> _Workers:
        global _FORKED
        if self.tasks:
            import multiprocessing

            _FORKED = (self.scanner, self.old)
            cores = min(os.cpu_count() or 1, 8)
            self.pool = multiprocessing.get_context("fork").Pool(cores - 1)
            self.pending = self.pool.map_async(_parse_folders, self.tasks, chunksize=1)
        return self

    def __exit__(self, *exc: object) -> None:
        global _FORKED
        _FORKED = None
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()

    def results(self) -> Iterator[tuple[str, dict[str, Cached]]]:
        if self.pending is None:
            return
        for task in self.pending.get():
            for folder, packed in task:
                data = unpack_checked(packed, CACHE_MAGIC)
                if not isinstance(data, dict):
                    raise RuntimeError(f"a content-scan worker handed over damaged data for {folder}")
                yield folder, data["files"]


def _parse_folders(task: list[_FolderTask]) -> list[tuple[str, bytes]]:
    """In a forked worker: parse the folders' changed files, write each folder's cache file, and return
    their bytes (the scanning process unpacks them instead of its own parse)."""
    if _FORKED is None:
        raise RuntimeError("_parse_folders runs only in a worker forked by _Workers")
    scanner, old = _FORKED
    sections, tz, root = scanner.config.site.sections, scanner.config.site.tz, str(scanner.config.root)
    done = []
    for folder, files, unchanged in task:
        group = {path: old[path] for path in unchanged}
        for path in files:
            group[path] = Cached._make(_parse_file(path, sections, tz, root))
        done.append((folder, scanner._save_folder(folder, dict(sorted(group.items())))))
    return done


def _cores_to_spare(cores: int) -> bool:
    """A worker pays only on a core nobody else is using: with the 1-minute load (this process included)
    at 3.5-4 on 2 cores, forking took 20 % longer than parsing in one process; at 1.7 it saved 20-35 %."""
    return cores >= 2 and hasattr(os, "fork") and os.getloadavg()[0] <= cores


def _parse_file(
    path: str, sections: tuple[str, ...], tz: tzinfo, root: str
) -> tuple[tuple[int, int], Record | None, tuple[Problem, ...], None]:
    """One file's front matter, validated (the commentary's Markdown is left for later), as the cache keeps
    it: the (mtime, size) the file had when it was read, the record, the problems, no link warnings yet."""
    try:
        raw, key = _read_limited(path)
    except OSError as exc:  # never matches a stat: read again next time, in case it was fixed
        return (-1, -1), None, (Problem(Path(_relative(path, root)), f"cannot read file: {exc.strerror}"),), None
    parsed = read_entry(_SCANNED, raw, sections, tz)  # the entry's path is not kept, and a Path costs 2-5 us
    found: tuple[Problem, ...] = ()
    if parsed.problems:  # shown relative to the project; most files have none
        shown = Path(_relative(path, root))
        found = tuple(Problem(shown, p.message, p.line, p.hint, p.warning) for p in parsed.problems)
    entry = parsed.entry
    if entry is None:
        return key, None, found, None
    fields = EntryFields(
        entry.title, entry.url, entry.date, entry.section, entry.source, entry.tags, entry.draft, entry.quote,
        entry.body, entry.kind,
    )  # fmt: skip
    url_key = urls.url_key(entry.url) if entry.url else None  # http/https, www., utm_*, AMP: one link
    digest = hashlib.blake2b(raw, digest_size=16).hexdigest()
    month = month_of(entry.date, tz)
    return key, Record(path, fields, month, url_key, digest, parsed.key_lines.get("url"), parsed.body_line), found, None


_SCANNED = Path("scanned")  # what the scan's problems carry until they are given the file's own path


def _relative(path: str, root: str) -> str:
    prefix = root.rstrip(os.sep) + os.sep
    return path[len(prefix) :] if path.startswith(prefix) else path


def _read_limited(path: Path | str, limit: int = MAX_ENTRY_BYTES) -> tuple[bytes, tuple[int, int]]:
    """The bytes, read at most one past the entry size limit so a huge file costs no memory, and the file's
    (mtime, size) before the read (a file changed meanwhile is read again next time). The read asks for the
    size the file has (plus one byte, to see it grow): asking for the whole limit allocates a 1 MB buffer
    per file, which took three quarters of the reading time (23 us against 5 us a file)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        stat = os.fstat(fd)
        want = min(stat.st_size, limit) + 1
        parts = [os.read(fd, want)]
        total = len(parts[0])
        while total == want and total <= limit and (more := os.read(fd, limit + 1 - total)):
            parts.append(more)  # it grew since fstat: read on, up to the limit
            total = want = total + len(more)
        return b"".join(parts), (stat.st_mtime_ns, stat.st_size)
    finally:
        os.close(fd)
