"""Incremental builds: after each kind of change, `digest build` writes byte for byte what `digest build --all`
writes into a fresh output folder, and renders only the issue pages whose inputs changed."""

from __future__ import annotations

import itertools
import os
import shutil
from datetime import date
from pathlib import Path

import pytest
from conftest import site_settings, to_toml

from digest import publish

MONTH = "2025-02"  # every build is of this month, so the email files match too
fresh_roots = itertools.count()


def outputs(root: Path) -> dict[str, bytes]:
    output = root / "output"
    return {str(p.relative_to(output)): p.read_bytes() for p in sorted(output.rglob("*")) if p.is_file()}


def assert_same_as_full_build(project, cli, tmp_path: Path) -> None:
    """Build incrementally; then copy the project's inputs to a new folder and build everything there."""
    result = cli(project.root, "build", "--month", MONTH)
    assert result.code == 0, result.output
    fresh = tmp_path / f"fresh{next(fresh_roots)}"
    fresh.mkdir()
    for name in ("content", "templates"):
        shutil.copytree(project.root / name, fresh / name)
    shutil.copy(project.toml, fresh / "digest.toml")
    result = cli(fresh, "build", "--all", "--month", MONTH)
    assert result.code == 0, result.output
    incremental, full = outputs(project.root), outputs(fresh)
    assert sorted(incremental) == sorted(full)
    for name in full:
        assert incremental[name] == full[name], name


def touch(path: Path, text: str) -> None:
    """Rewrite and move the mtime on, as an editor saving a second later would."""
    assert text != path.read_text()
    old = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(old + 10**9, old + 10**9))


def rendered_pages(project) -> list[str]:
    """The issue pages a build renders now (the index and static files always are)."""
    pages = publish.render(project.config()).pages
    return [p.path for p in pages if p.path not in ("index.html", "style.css")]


@pytest.fixture
def archive(new_project):
    settings = site_settings()
    settings["feeds"] = {"keep": 3}
    project = new_project(settings=settings)
    for month, count in (("2024-11", 2), ("2024-12", 3), ("2025-01", 3), ("2025-02", 2)):
        for n in range(count):
            project.entry(
                f"{month}-{n}",
                date=f"{month}-{10 + n}",
                body=f"Commentary on [link {n}](https://example.com/{month}/{n}) in {month}.",
                quote="A line\nand another",
            )
    return project


def test_every_kind_of_change_builds_what_a_full_build_builds(archive, cli, tmp_path):
    project = archive
    assert_same_as_full_build(project, cli, tmp_path)
    assert rendered_pages(project) == []  # nothing changed: every issue page is reused

    entry = project.content / "2024/12/2024-12-1.md"  # an entry edited
    touch(entry, entry.read_text().replace("Commentary on", "Edited commentary on"))
    assert rendered_pages(project) == ["2024/12/index.html"]
    assert_same_as_full_build(project, cli, tmp_path)

    project.entry("added", date="2024-11-20", body="A new one.")  # an entry added
    assert_same_as_full_build(project, cli, tmp_path)

    moved = project.content / "2025/01/2025-01-2.md"  # an entry moved to another month
    touch(moved, moved.read_text().replace("2025-01-12", "2024-12-28"))
    assert sorted(rendered_pages(project)) == ["2024/12/index.html", "2025/01/index.html"]
    assert_same_as_full_build(project, cli, tmp_path)

    (project.content / "2025/01/2025-01-0.md").unlink()  # an entry deleted
    assert_same_as_full_build(project, cli, tmp_path)

    for path in (project.content / "2024/11").glob("*.md"):  # a whole month deleted: its page goes
        path.unlink()
    assert_same_as_full_build(project, cli, tmp_path)
    assert not (project.root / "output/site/2024/11").exists()

    project.entry("new-month", date="2024-06-02")  # a month added: its neighbour's page links to it
    assert sorted(rendered_pages(project)) == ["2024/06/index.html", "2024/12/index.html"]
    assert_same_as_full_build(project, cli, tmp_path)


def test_editors_notes_notes_and_the_quote_pool_build_what_a_full_build_builds(archive, cli, tmp_path):
    project = archive
    assert_same_as_full_build(project, cli, tmp_path)

    note = project.write("2024/12/_issue.md", "---\nsubject: Décembre ✨\noutro: À bientôt\n---\nBonjour 👋\n")
    assert rendered_pages(project) == ["2024/12/index.html"]  # an editor's note added
    assert_same_as_full_build(project, cli, tmp_path)

    touch(note, note.read_text().replace("Bonjour", "Hello"))  # an editor's note edited: its month only
    assert rendered_pages(project) == ["2024/12/index.html"]
    assert_same_as_full_build(project, cli, tmp_path)
    assert "Hello 👋" in (project.root / "output/site/2024/12/index.html").read_text()

    note.unlink()  # and removed
    assert rendered_pages(project) == ["2024/12/index.html"]
    assert_same_as_full_build(project, cli, tmp_path)

    project.write("2025/01/thoughts.md", "---\nkind: note\ntitle: A note\ndate: 2025-01-20\n---\n# Heading\n")
    assert rendered_pages(project) == ["2025/01/index.html"]  # a note added
    assert_same_as_full_build(project, cli, tmp_path)

    for n in range(3):  # a quote pool appears: every issue now shows a quote
        project.write(f"quotes/q{n}.md", f"---\nsource: Author {n}\n---\nQuote {n} — 名言\n")
    assert len(rendered_pages(project)) == 4
    assert_same_as_full_build(project, cli, tmp_path)

    quote = project.content / "quotes/q1.md"  # a pool quote edited: only the issues that show it
    pages = {m: (project.root / f"output/site/{m}/index.html").read_text() for m in ("2024/11", "2024/12", "2025/01", "2025/02")}  # fmt: skip
    shown = [m for m, page in pages.items() if "Quote 1" in page]
    touch(quote, quote.read_text().replace("Quote 1", "Quote one"))
    assert sorted(rendered_pages(project)) == [f"{m}/index.html" for m in shown]
    assert_same_as_full_build(project, cli, tmp_path)


@pytest.mark.parametrize(
    "template, old, new",
    [
        ("site/_article.html", '<article class="entry">', '<article class="entry edited">'),
        ("site/issue.html", '<nav class="pager">', '<nav class="pager edited">'),
        ("site/index.html", "<h1>Every issue</h1>", "<h1>All the issues</h1>"),
        ("email.txt", "{{", "Edited.\n{{"),
    ],
)
def test_a_template_edit_builds_what_a_full_build_builds(archive, cli, tmp_path, template, old, new):
    assert_same_as_full_build(archive, cli, tmp_path)
    path = archive.root / "templates" / template
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    assert_same_as_full_build(archive, cli, tmp_path)


@pytest.mark.parametrize("table, key, value", [("site", "title", "Renamed Links"), ("feeds", "keep", 2)])
def test_a_config_change_builds_what_a_full_build_builds(archive, cli, tmp_path, table, key, value):
    assert_same_as_full_build(archive, cli, tmp_path)
    settings = site_settings()
    settings["feeds"] = {"keep": 3}
    settings[table][key] = value
    archive.toml.write_text(to_toml(settings))
    assert_same_as_full_build(archive, cli, tmp_path)


def test_a_damaged_or_foreign_cache_is_never_trusted(archive, cli, tmp_path):
    assert_same_as_full_build(archive, cli, tmp_path)
    cache = archive.root / "var/cache/render"
    article = cache / "2024-12.article"
    article.write_bytes(article.read_bytes()[:-40])  # cut short, as a disk that lost the end would
    email = cache / f"{MONTH}.email"
    email.write_bytes(email.read_bytes().replace(b"Link Archive", b"Lost Archive", 1))
    (cache / "pages.json").write_bytes(b"digest-render-cache 0\n{}")  # another version
    page = archive.root / "output/site/2025/01/index.html"
    page.write_text("edited by hand")  # the output changed behind the cache's back
    entry = archive.content / "2024/12/2024-12-0.md"
    touch(entry, entry.read_text().replace("Commentary on", "New commentary on"))
    assert_same_as_full_build(archive, cli, tmp_path)
    assert b"New commentary" in (archive.root / "output/site/2024/12/index.html").read_bytes()


def test_the_index_and_feeds_are_taken_from_the_output_until_someone_changes_them(archive, cli, tmp_path, monkeypatch):
    """The output is the index's and the feeds' cache: an unchanged build renders neither, and one edited, cut
    short or removed by hand is rendered again."""
    from digest.render import feed, site

    assert_same_as_full_build(archive, cli, tmp_path)
    rendered: list[str] = []
    for module, name in ((feed, "render_feeds"), (site, "render_index_page")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *args, real=real, name=name: rendered.append(name) or real(*args))
    output = archive.root / "output/site"
    for change in (None, "feed.xml", "atom.xml", "feed.json", "index.html"):
        if change == "atom.xml":
            (output / change).unlink()
        elif change:
            body = (output / change).read_bytes()
            (output / change).write_bytes(body[: len(body) // 2])
        rendered.clear()
        publish.build(archive.config(), date(2025, 2, 1))
        assert rendered == (
            [] if change is None else ["render_index_page"] if change == "index.html" else ["render_feeds"]
        )
        assert_same_as_full_build(archive, cli, tmp_path)


def test_the_cache_is_written_atomically_and_versioned(archive, cli):
    assert cli(archive.root, "build", "--month", MONTH).code == 0
    cache = archive.root / "var/cache/render"
    assert not list(cache.glob(".*.tmp"))  # no temp file left behind
    for path in cache.iterdir():
        assert path.read_bytes().startswith(b"digest-render-cache 2\n"), path


# -- the content cache: a cold scan that dies midway keeps what it parsed; a damaged cache is ignored ----------

CRASHING_SCAN = """
import os, sys
from digest import collect
from digest.config import load_config

collect.CHECKPOINT_SECONDS = 0  # save after every file
parse, parsed = collect._parse_file, []

def dying(*args, **kwargs):
    if len(parsed) == int(sys.argv[2]):
        os._exit(9)  # as a kill -9 would: no cleanup, no final save
    parsed.append(args[0])
    return parse(*args, **kwargs)

collect._parse_file = dying
collect.load_archive(load_config(sys.argv[1]))
"""


def many_entries(project, count: int) -> None:
    for n in range(count):
        project.entry(f"entry-{n}", date=f"2025-0{1 + n % 2}-{1 + n % 27:02d}", body=f"Commentary {n}.")


def scanned(project) -> tuple:
    from digest.collect import load_archive

    archive = load_archive(project.config(), strict=False)
    return tuple(sorted((r.path, r.fields, r.month, r.digest) for r in archive.records))


def test_a_cold_scan_killed_midway_leaves_a_cache_the_next_scan_resumes_from(project, monkeypatch):
    import subprocess
    import sys

    from digest import collect

    many_entries(project, 40)
    done = subprocess.run([sys.executable, "-c", CRASHING_SCAN, str(project.toml), "25"], cwd=project.root)
    assert done.returncode == 9
    reparsed = []
    parse = collect._parse_file
    monkeypatch.setattr(collect, "_parse_file", lambda *a, **k: reparsed.append(a[0]) or parse(*a, **k))
    resumed = scanned(project)
    assert len(reparsed) == 15  # the 25 files parsed before the crash came from the cache
    shutil.rmtree(project.root / "var/cache/content")
    assert scanned(project) == resumed  # the same as a scan from nothing


@pytest.mark.parametrize("damage", ["truncate", "flip", "foreign", "moved"])
def test_a_damaged_content_cache_is_never_trusted(project, damage):
    many_entries(project, 6)
    clean = scanned(project)
    shards = sorted((project.root / "var/cache/content").glob("*.pickle"))
    assert len(shards) == 2  # one per content folder
    for shard in shards:
        raw = shard.read_bytes()
        if damage == "truncate":
            shard.write_bytes(raw[: len(raw) // 2])
        elif damage == "flip":  # one byte of a title changed: the pickle still loads, the checksum doesn't match
            shard.write_bytes(raw.replace(b"Entry 3", b"Entry X", 1).replace(b"Entry 2", b"Entry Y", 1))
        elif damage == "foreign":
            shard.write_bytes(b"not a digest cache at all")
    if damage == "moved":  # each folder's file under the other's name
        first, second = (s.read_bytes() for s in shards)
        shards[0].write_bytes(second)
        shards[1].write_bytes(first)
    assert scanned(project) == clean


def test_an_edit_rewrites_only_its_folders_cache_file(project):
    many_entries(project, 6)
    scanned(project)
    shards = {p: p.stat().st_mtime_ns for p in (project.root / "var/cache/content").glob("*.pickle")}
    edited = project.content / "2025/02/entry-1.md"
    touch(edited, edited.read_text().replace("Commentary 1.", "Commentary one."))
    scanned(project)
    rewritten = [p for p, mtime in shards.items() if p.stat().st_mtime_ns != mtime]
    assert len(rewritten) == 1


def test_a_cold_scan_in_worker_processes_finds_what_one_process_finds(project, monkeypatch):
    import multiprocessing

    from digest import collect

    many_entries(project, 30)
    project.write("2025/01/broken.md", "---\ntitle: [unclosed\n---\n")
    monkeypatch.setattr(collect, "PARALLEL_MIN_FILES", 10**9)
    one = scanned(project), collect.load_archive(project.config(), strict=False).problems
    cache_files = content_cache(project)
    shutil.rmtree(project.root / "var/cache/content")
    monkeypatch.setattr(collect, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(collect.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(collect.os, "getloadavg", lambda: (0.0, 0.0, 0.0))  # a core to spare
    monkeypatch.setattr(collect.threading, "active_count", lambda: 1)
    contexts = []
    get_context = multiprocessing.get_context
    monkeypatch.setattr(multiprocessing, "get_context", lambda method: contexts.append(method) or get_context(method))
    many = scanned(project), collect.load_archive(project.config(), strict=False).problems
    assert contexts == ["fork"]  # the first scan forked; the second read the cache
    assert many == one
    assert content_cache(project) == cache_files  # the worker wrote its folder's cache file as one process would


def content_cache(project) -> dict:
    """Each content-cache file's folder and files, unpacked."""
    from digest import collect
    from digest.files import load_checked

    shards = {}
    for shard in (project.root / "var/cache/content").glob("*.pickle"):
        data = load_checked(shard, collect.CACHE_MAGIC)
        assert isinstance(data, dict)
        shards[data["folder"]] = data["files"]
    assert len(shards) == 2
    return shards


def test_the_months_link_warnings_are_said_on_every_build_cached_or_not(project, cli):
    project.entry("links", date="2025-02-10", body="See [share](smb://fileserver/share).")
    warning = "content/2025/02/links.md:7: link 'smb://fileserver/share' is shown as plain text"
    for _ in range(2):  # rendered, then from the render cache
        result = cli(project.root, "build")
        assert result.code == 0 and warning in result.err, result.output


def test_front_matter_is_read_with_libyaml_when_pyyaml_has_it():
    import yaml

    from digest import content

    if not yaml.__with_libyaml__:
        pytest.skip("this PyYAML was built without libyaml")
    assert issubclass(content._Loader, yaml.CSafeLoader)


def test_a_content_cache_of_the_old_layout_is_rebuilt_not_misread(project):
    """A cache file written before the typed records (version 6: each entry a tuple read by index) for
    the very files on disk, same (mtime, size), but with other values: the scan parses the files again."""
    import hashlib
    import pickle
    import zlib
    from datetime import UTC, date, datetime

    from digest import collect
    from digest.config import load_config

    path = project.entry("café-é", date="2025-02-10", title="Über — 東京 ✨", body="Commentary.")
    config = load_config(project.toml)
    stat = path.stat()
    old_fields = ("Stale title", "https://example.com/stale", datetime(2024, 12, 1, tzinfo=UTC), "Notes", None,
                  (), True, None, "Stale commentary.")  # fmt: skip
    old_record = collect.Record(str(path), old_fields, date(2024, 12, 1), None, "0" * 32)  # type: ignore[arg-type]
    folder = str(path.parent)
    data = {
        "fingerprint": (6, config.site.sections, config.site.timezone, str(config.paths.content)),
        "folder": folder,
        "files": {str(path): ((stat.st_mtime_ns, stat.st_size), old_record, (), None)},
    }
    payload = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
    shard = (
        project.root / "var/cache/content" / (hashlib.blake2b(folder.encode(), digest_size=10).hexdigest() + ".pickle")
    )
    shard.parent.mkdir(parents=True)
    shard.write_bytes(collect.CACHE_MAGIC + zlib.crc32(payload).to_bytes(4, "big") + payload)

    archive = collect.load_archive(config)
    [entry] = archive.issue(date(2025, 2, 1), html=False).entries
    assert (entry.title, entry.url, entry.body, entry.draft) == ("Über — 東京 ✨", "https://example.com/café-é",
                                                                 "Commentary.", False)  # fmt: skip
    assert archive.months() == [date(2025, 2, 1)]
    rewritten = pickle.loads(shard.read_bytes()[len(collect.CACHE_MAGIC) + 4 :])
    assert rewritten["fingerprint"][0] == collect.CACHE_VERSION > 6
    cached = rewritten["files"][str(path)]
    assert isinstance(cached, collect.Cached) and isinstance(cached.record.fields, collect.EntryFields)
    assert cached.record.fields.title == "Über — 東京 ✨"
    assert collect.load_archive(config).entries == archive.entries  # and the new file is read back the same


def test_a_long_running_process_sees_every_change_its_memory_of_the_archive_could_hide(archive, tmp_path):
    """The content-cache files and the issues a process keeps in memory (`digest preview`, `digest serve`) give
    what a new process gives, after each kind of change: an edit that keeps the file's size, a file moved to
    another folder of the same month, a setting changed, a cache file rewritten in place."""
    from dataclasses import replace

    from digest import collect

    def issues(config) -> tuple:
        """Each month's issue and digest (the render cache's key), and every problem, duplicates included."""
        archive = collect.load_archive(config, strict=False)
        months = archive.months()
        return (
            [archive.issue(m, html=False) for m in months],
            [archive.month_digest(m) for m in months],
            archive.problems,
        )

    def from_scratch(config) -> tuple:
        collect._READ_SHARDS.clear()
        collect._MADE.clear()
        collect._FACTS.clear()
        return issues(config)

    config = archive.config()
    assert issues(config) == from_scratch(config)
    issues(config)  # now from memory

    entry = archive.content / "2024/12/2024-12-1.md"
    touch(entry, entry.read_text().replace("Commentary on", "Commentary in"))  # the same size
    assert issues(config) == from_scratch(config)

    (archive.content / "2025/01/sub").mkdir()
    (archive.content / "2025/01/2025-01-1.md").rename(archive.content / "2025/01/sub/2025-01-1.md")
    seen = issues(config)
    assert seen == from_scratch(config)
    assert any("sub" in str(e.path) for i in seen[0] for e in i.entries)

    twin = archive.content / "2025/01/2025-01-0.md"  # the same URL in another folder of the month: an error
    (archive.content / "2025/01/sub/twin.md").write_text(twin.read_text().replace("2025-01-10", "2025-01-20"))
    seen = issues(config)
    assert seen == from_scratch(config)
    assert [p.path.name for p in seen[2] if "same url" in p.message] == ["twin.md"]
    (archive.content / "2025/01/sub/twin.md").unlink()
    assert issues(config) == from_scratch(config)
    assert not any("same url" in p.message for p in issues(config)[2])

    renamed = replace(config, site=replace(config.site, title="Another Title"))
    assert issues(renamed) == from_scratch(renamed) != from_scratch(config)

    shard = next((archive.root / "var/cache/content").glob("*.pickle"))
    shard.write_bytes(shard.read_bytes()[:-1] + b"\0")  # damaged in place: the checksum fails, the files are read
    assert issues(config) == from_scratch(config)
