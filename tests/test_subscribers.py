"""The subscriber store and its commands: validation, CSV import, removal that sticks, migrations."""

from __future__ import annotations

from pathlib import Path

import pytest
from delivery_support import digest
from sqlalchemy import inspect

from digest.config import load_config
from digest.publish import open_store
from digest.store import current_revision, head_revision
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
    refused = digest(project, "subscribers", "add", "lëser@example.com")  # a non-ASCII mailbox needs SMTPUTF8
    assert refused.returncode == 1 and "is not a valid email address" in refused.stderr


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
    assert "imported 2 new, 0 already on the list, 2 rejected" in result.stdout
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
