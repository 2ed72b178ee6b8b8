"""The render cache in var/cache/render/: each month's article and email, keyed by a hash of their inputs
(the month's entry files, editor's note and quote of the month, the templates, the configuration, the code),
and the manifest of the issue pages, index and feeds already in the output (the output is their cache), so an
incremental build renders only what changed.

Every file is written atomically and starts with a version, its key and a checksum of the rest: a file from
another version, for other inputs, or damaged in any way is a miss, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from functools import cache, cached_property
from pathlib import Path

from digest.collect import Archive, month_link_warnings
from digest.config import Config, tables_json
from digest.errors import Problem
from digest.files import write_atomic
from digest.render import template_folders
from digest.render.site import neighbours, page_path

log = logging.getLogger(__name__)

FORMAT = 2  # bump when what a cache file holds changes shape (2: the email as JSON fields, then its HTML and text)
MAGIC = f"digest-render-cache {FORMAT}\n".encode()
DIGEST = Path(__file__).resolve().parent.parent  # the digest package
# What the article, the pages and the email read of digest.toml (the renderers pass templates `site` and
# `sender` only): a renderer that starts reading another table must add it here, or a change to it is missed.
CONFIG_TABLES = {"site", "sender", "email"}


@cache
def code_version() -> str:
    """The renderer's own sources and the installed distributions (names carry versions): a change to either
    renders everything again. Reading them costs about a millisecond."""
    import jinja2

    h = hashlib.blake2b(digest_size=16)
    for folder in (DIGEST, DIGEST / "render"):
        for name in sorted(os.listdir(folder)):
            if name.endswith(".py"):
                h.update(name.encode() + b"\0" + (folder / name).read_bytes())
    site_packages = Path(jinja2.__file__).resolve().parent.parent
    h.update("\0".join(sorted(n for n in os.listdir(site_packages) if n.endswith(".dist-info"))).encode())
    return h.hexdigest()


def inputs_key(config: Config) -> str:
    """What every month's renders share: code, the relevant configuration and every template's bytes."""
    h = hashlib.blake2b(code_version().encode(), digest_size=16)
    h.update(tables_json(config, CONFIG_TABLES).encode())
    for folder in template_folders(config.paths.templates):  # the theme's files, then the site's overrides
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def pack(*parts: bytes) -> bytes:
    """Several byte strings as one cache payload, each after its length (JSON would escape megabytes)."""
    return b"".join(len(part).to_bytes(8, "big") + part for part in parts)


def unpack(payload: bytes, count: int) -> list[bytes]:
    """What `pack` joined; the payload was checksummed when read, so the lengths can be trusted."""
    parts, at = [], 0
    for _ in range(count):
        size = int.from_bytes(payload[at : at + 8], "big")
        parts.append(payload[at + 8 : at + 8 + size])
        at += 8 + size
    return parts


def _key(*parts: str) -> str:
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class PageRecord:
    """An issue page the output holds: the key it was rendered for, and its size and mtime once written."""

    key: str
    size: int
    mtime_ns: int


class RenderCache:
    """Month keys for one build, and the cached article and email per month. With `full`, nothing is read
    (every render is fresh) but everything is written, so the next incremental build starts from it."""

    def __init__(self, config: Config, archive: Archive, *, full: bool = False):
        self.config = config
        self.archive = archive
        self.full = full
        self.folder = config.var_dir / "cache" / "render"
        self.site = config.paths.output / "site"
        self._month_keys: dict[date, str] = {}

    @cached_property
    def inputs(self) -> str:
        return inputs_key(self.config)

    def month_key(self, month: date) -> str:
        """Everything a month's issue, article and email are made from: `month_digest` covers its entry
        files, its editor's note (`_issue.md`) and the pool quote it shows."""
        if month not in self._month_keys:
            self._month_keys[month] = _key(self.inputs, f"{month:%Y-%m}", self.archive.month_digest(month))
        return self._month_keys[month]

    def page_key(self, month: date, older: date | None, newer: date | None) -> str:
        """An issue page also shows its neighbours' titles and links."""
        return _key(self.month_key(month), f"{older or ''}", f"{newer or ''}")

    # -- articles and emails --------------------------------------------------------------------

    def index_key(self, months: Sequence[date]) -> str:
        """The index lists every issue."""
        return _key(self.inputs, *(self.month_key(m) for m in months))

    def feeds_key(self, recent: Sequence[date]) -> str:
        return _key(self.inputs, tables_json(self.config, {"feeds"}), *(self.month_key(m) for m in recent))

    def get(self, name: str, key: str) -> bytes | None:
        """What `put` saved under `name` for `key`; None if absent, for other inputs, or damaged."""
        return None if self.full else self._read(self.folder / name, key)

    def put(self, name: str, key: str, payload: bytes) -> None:
        self._write(self.folder / name, key, payload)

    def in_output(self, path: str, plan: SitePlan) -> bytes | None:
        """The bytes of a site file (the index, a feed) the output holds as rendered from its key in `plan`
        (the manifest says so, and its size and mtime are as written); None if it must be rendered. The output
        is its own cache: keeping a copy in var/ cost a megabyte's write on every build that changed it."""
        record = plan.kept.get(path)
        if record is None:
            return None
        try:
            body = (self.site / path).read_bytes()
        except OSError:
            return None
        return body if len(body) == record.size else None

    def article(self, month: date) -> str | None:
        payload = self.get(f"{month:%Y-%m}.article", self.month_key(month))
        return None if payload is None else payload.decode("utf-8")

    def store_article(self, month: date, html: str) -> None:
        self.put(f"{month:%Y-%m}.article", self.month_key(month), html.encode("utf-8"))

    def email(self, month: date) -> dict | None:
        """The RenderedEmail's fields, as `store_email` saved them."""
        payload = None if self.full else self._read(self._path(month, "email"), self.month_key(month))
        if payload is None:
            return None
        try:
            head, html, text = unpack(payload, 3)
            return {**json.loads(head), "html": html.decode("utf-8"), "text": text.decode("utf-8")}
        except (ValueError, TypeError):
            return None

    def store_email(self, month: date, email: object) -> None:
        """The email's HTML and text as they are, its other fields as JSON (escaping the HTML cost more)."""
        fields = asdict(email)  # type: ignore[call-overload]
        html, text = fields.pop("html"), fields.pop("text")
        try:
            payload = pack(json.dumps(fields, ensure_ascii=False).encode("utf-8"), html.encode(), text.encode())
        except (TypeError, ValueError):  # a field JSON or UTF-8 can't hold: render it each time rather than guess
            log.debug("the email of %s is not cached: a field JSON can't hold", f"{month:%Y-%m}")
            return
        self._write(self._path(month, "email"), self.month_key(month), payload)

    def link_warnings(self, month: date) -> list[Problem]:
        """The month's commentary link warnings: parsing its Markdown for them costs more than the rest of a
        build that renders nothing new."""
        payload = None if self.full else self._read(self._path(month, "links"), self.month_key(month))
        try:
            rows = json.loads(payload) if payload is not None else None
            return [Problem(Path(path), *rest) for path, *rest in rows] if rows is not None else self._links(month)
        except (ValueError, TypeError):
            return self._links(month)

    def _links(self, month: date) -> list[Problem]:
        found = month_link_warnings(self.archive.by_month[month], self.config)
        rows = [[str(p.path), p.message, p.line, p.hint, p.warning] for p in found]
        self._write(self._path(month, "links"), self.month_key(month), json.dumps(rows).encode())
        return found

    def _path(self, month: date, kind: str) -> Path:
        return self.folder / f"{month:%Y-%m}.{kind}"

    def _read(self, path: Path, key: str) -> bytes | None:
        """The payload if the file is whole, of this format and for `key`; None otherwise."""
        try:
            raw = path.read_bytes()
        except OSError:
            return None
        head = MAGIC + key.encode() + b"\n"
        checksum, payload = raw[len(head) : len(head) + 32], raw[len(head) + 32 :]
        if not raw.startswith(head) or hashlib.blake2b(payload, digest_size=32).digest() != checksum:
            return None
        return payload

    def _write(self, path: Path, key: str, payload: bytes) -> None:
        data = MAGIC + key.encode() + b"\n" + hashlib.blake2b(payload, digest_size=32).digest() + payload
        try:
            write_atomic(path, data, sync=False)  # checksummed: a file a power cut damaged is a miss
        except OSError as exc:  # a read-only var/ still builds, only slower next time
            log.debug("render cache not written: %s", exc)

    # -- the pages in the output ----------------------------------------------------------------

    def manifest(self) -> dict[str, PageRecord]:
        """The issue pages, the index and the feeds the last build wrote (relative to the site folder), as it
        recorded them."""
        payload = self._read(self.folder / "pages.json", _key(str(self.site)))
        try:
            pages = json.loads(payload) if payload is not None else {}
            return {path: PageRecord(*fields) for path, fields in pages.items()}
        except (ValueError, TypeError):
            return {}

    def page_is_current(self, path: str, key: str, manifest: dict[str, PageRecord]) -> bool:
        """The page in the output was rendered from `key` and nobody touched it since."""
        record = manifest.get(path)
        if self.full or record is None or record.key != key:
            return False
        try:
            stat = (self.site / path).stat()
        except OSError:
            return False
        return (stat.st_size, stat.st_mtime_ns) == (record.size, record.mtime_ns)

    def save_manifest(self, keys: dict[str, str], kept: dict[str, PageRecord]) -> None:
        """Record every page and feed: those reused as they were, the rest as just written."""
        pages = {}
        for path, key in keys.items():
            record = kept.get(path)
            if record is None or record.key != key:
                stat = (self.site / path).stat()
                record = PageRecord(key, stat.st_size, stat.st_mtime_ns)
            pages[path] = [record.key, record.size, record.mtime_ns]
        payload = json.dumps(pages, sort_keys=True).encode()
        if self._read(self.folder / "pages.json", _key(str(self.site))) != payload:
            self._write(self.folder / "pages.json", _key(str(self.site)), payload)


@dataclass(frozen=True)
class SitePlan:
    """Which issue pages, index and feeds a build renders, and which the output already holds as they would be
    rendered."""

    keys: dict[str, str]  # every issue page, the index and the feeds (relative to the site folder) -> their key
    kept: dict[str, PageRecord]  # what the output holds already rendered from its key: not rendered again
    stale: tuple[str, ...]  # pages an earlier build wrote for months that no longer have an issue: removed


def plan_site(renders: RenderCache, months: Sequence[date], others: dict[str, str]) -> SitePlan:
    """`months` oldest first, as the pages link to each other; `others`: the index and the feeds, with their keys."""
    manifest = renders.manifest()
    keys, kept = {}, {}
    for index, month in enumerate(months):
        keys[page_path(month)] = renders.page_key(month, *neighbours(months, index))
    keys.update(others)
    for path, key in keys.items():
        if renders.page_is_current(path, key, manifest):
            kept[path] = manifest[path]
    return SitePlan(keys, kept, tuple(path for path in manifest if path not in keys))


def remove_stale(site: Path, stale: Sequence[str]) -> None:
    """Pages of months that lost their last entry go, with the folders they leave empty."""
    for path in stale:
        page = site / path
        page.unlink(missing_ok=True)
        for folder in (page.parent, page.parent.parent):
            try:
                folder.rmdir()
            except OSError:  # not empty, or already gone
                break
