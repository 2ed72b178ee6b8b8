"""The quote pool: which undated quote from content/quotes/ is an issue's "Quote of the month".

The rule, a pure function of the month and the pool, so every rebuild of an issue shows the same quote:

- the pool is ordered by each quote's file path under content/quotes/ (editing a quote's words keeps
  its place; renaming it moves it);
- months are numbered consecutively from the first issue (the earliest month with entries): that month
  is 0, the next calendar month 1, and so on, whether or not a month has an issue;
- month `i` of a pool of `n` quotes is in pass `i // n` and takes position `i % n` of that pass's
  permutation, a shuffle seeded by the pass number and the pool's paths: every quote shows once per
  pass, none twice in a pass. Where a pass would begin with the quote the last one ended on, its first
  two quotes change places, so no quote shows two months running.

Adding, removing or renaming a pool quote changes the pool, and so may change the quote of months
rendered after that; an email already sent keeps the quote it was sent with. A month with a dated
quote (`kind: quote` with a `date`) shows that instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache
from pathlib import Path

from digest.config import Config
from digest.content import Entry, read_entry
from digest.errors import Problem
from digest.files import load_checked, save_checked

QUOTES_FOLDER = "quotes"  # content/quotes/: undated quotes form the pool
MAX_QUOTE_BYTES = 1_000_000


@dataclass(frozen=True)
class Quote:
    """A quote as an issue shows it: its words (Markdown), who said them, and the words as HTML."""

    path: Path
    text: str
    source: str | None = None
    key: str = ""  # the pool's order: the path under content/quotes/ ("" for a dated quote)
    digest: str = ""  # BLAKE2b of the file's bytes, for the render cache
    html: str = ""


def from_entry(entry: Entry, digest: str = "", key: str = "") -> Quote:
    """A quote entry's words and source (and their HTML, if rendered)."""
    return Quote(entry.path, entry.quote or "", entry.source, key, digest, entry.quote_html)


def with_html(quote: Quote) -> Quote:
    from digest.render.markdown import quote_html

    return quote if quote.html else replace(quote, html=quote_html(quote.text))


def load_pool(config: Config) -> tuple[tuple[Quote, ...], list[Problem]]:
    """Every quote under content/quotes/ (drafts left out), in pool order, and the problems found. A file
    whose mtime and size are those of the last build is taken from the pool's cache in var/, not parsed."""
    folder = config.paths.content / QUOTES_FOLDER
    cache = _PoolCache(config)
    pool, problems = [], []
    for path in sorted(folder.rglob("*")) if folder.is_dir() else ():
        relative = path.relative_to(folder)
        if any(part.startswith((".", "_")) for part in relative.parts) or path.suffix not in (".md", ".markdown"):
            continue
        shown = path.relative_to(config.root) if path.is_relative_to(config.root) else path
        try:
            stat = path.stat()
            key = (stat.st_mtime_ns, stat.st_size)
            quote, found = cache.get(relative.as_posix(), key) or cache.put(
                relative.as_posix(), key, *_parse_quote(path, relative, shown, config)
            )
        except OSError as exc:
            problems.append(Problem(shown, f"cannot read file: {exc.strerror}"))
            continue
        problems += found
        if quote is not None:
            pool.append(quote)
    cache.save()
    return tuple(sorted(pool, key=lambda q: q.key)), problems


def _parse_quote(path: Path, relative: Path, shown: Path, config: Config) -> tuple[Quote | None, list[Problem]]:
    with open(path, "rb") as handle:
        raw = handle.read(MAX_QUOTE_BYTES + 1)
    parsed = read_entry(path, raw, config.site.sections, config.site.tz, pooled=True)
    found = [Problem(shown, p.message, p.line, p.hint, p.warning) for p in parsed.problems]
    if parsed.entry is None or parsed.entry.draft:
        return None, found
    return from_entry(parsed.entry, hashlib.blake2b(raw, digest_size=16).hexdigest(), relative.as_posix()), found


class _PoolCache:
    """What each pool file held the last time it had this (mtime, size): one checksummed file in var/cache/,
    rewritten only when something changed; a damaged or foreign one is ignored and the pool parsed again."""

    VERSION = 1
    MAGIC = b"digest-quote-pool\n"

    def __init__(self, config: Config):
        self.path = config.var_dir / "cache" / "quotes.pickle"
        folder = config.paths.content / QUOTES_FOLDER
        self.fingerprint = (self.VERSION, config.site.sections, config.site.timezone, str(folder))
        self.old = self._load()
        self.new: dict[str, tuple[tuple[int, int], Quote | None, list[Problem]]] = {}

    def get(self, name: str, key: tuple[int, int]) -> tuple[Quote | None, list[Problem]] | None:
        hit = self.old.get(name)
        if hit is None or hit[0] != key:
            return None
        self.new[name] = hit
        return hit[1], hit[2]

    def put(
        self, name: str, key: tuple[int, int], quote: Quote | None, found: list[Problem]
    ) -> tuple[Quote | None, list[Problem]]:
        self.new[name] = (key, quote, found)
        return quote, found

    def save(self) -> None:
        if self.new == self.old:
            return
        with contextlib.suppress(OSError):  # a read-only var/: the pool is parsed each time
            save_checked(self.path, self.MAGIC, {"fingerprint": self.fingerprint, "files": self.new})

    def _load(self) -> dict[str, tuple[tuple[int, int], Quote | None, list[Problem]]]:
        data = load_checked(self.path, self.MAGIC)
        if not isinstance(data, dict) or data.get("fingerprint") != self.fingerprint:
            return {}
        return data["files"]


def quote_of_the_month(month: date, first: date, pool: Sequence[Quote]) -> Quote | None:
    """The pool's quote for `month` (`choose`), or None without a pool."""
    by_key = {q.key: q for q in pool}
    key = choose(month, first, list(by_key))
    return by_key[key] if key is not None else None


def month_number(month: date, first: date) -> int:
    """Months since `first` (0 for `first` itself), counting every calendar month."""
    return (month.year - first.year) * 12 + month.month - first.month


def pool_order(keys: Sequence[str]) -> tuple[str, ...]:
    """The pool in its stable order: by path, duplicates dropped."""
    return tuple(sorted(set(keys)))


def _shuffled(cycle: int, pool: tuple[str, ...]) -> list[int]:
    seed = hashlib.blake2b(f"{cycle}\0".encode() + "\0".join(pool).encode(), digest_size=16).digest()
    order = list(range(len(pool)))
    random.Random(int.from_bytes(seed, "big")).shuffle(order)
    return order


@lru_cache(maxsize=256)
def permutation(cycle: int, pool: tuple[str, ...]) -> tuple[int, ...]:
    """Pass `cycle`'s order of the pool's positions (`pool` already in `pool_order`).

    Only the first two places ever swap, so with three or more quotes a pass ends where its plain
    shuffle ends; two quotes can only alternate, in the first pass's order every time."""
    if len(pool) == 2:
        cycle = 0
    order = _shuffled(cycle, pool)
    if cycle > 0 and len(order) > 2 and order[0] == _shuffled(cycle - 1, pool)[-1]:
        order[0], order[1] = order[1], order[0]  # no quote twice in a row across the passes' seam
    return tuple(order)


def choose(month: date, first: date, pool: Sequence[str]) -> str | None:
    """The key of `month`'s quote of the month, or None for an empty pool or a month before `first`."""
    ordered = pool_order(pool)
    number = month_number(month, first)
    if not ordered or number < 0:
        return None
    cycle, position = divmod(number, len(ordered))
    return ordered[permutation(cycle, ordered)[position]]
