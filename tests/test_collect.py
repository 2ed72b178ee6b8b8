"""digest/collect.py: walk content/, the cross-file rules, and a month's entries grouped into an Issue."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import site_settings, to_toml

from digest.collect import load_archive, month_bounds, month_of
from digest.errors import ContentError, NothingToDo

BERLIN = ZoneInfo("Europe/Berlin")
FEBRUARY, MARCH = date(2025, 2, 1), date(2025, 3, 1)

# Around midnight at the end of February 2025: Berlin is UTC+1, New York UTC-5.
BOUNDARY = {
    "a-local-00-30.md": "2025-03-01T00:30:00",  # no offset: site time
    "b-berlin-23-30.md": "2025-02-28T23:30:00+01:00",
    "c-utc-23-30.md": "2025-02-28T23:30:00Z",  # 00:30 on March 1 in Berlin, 18:30 on Feb 28 in New York
    "d-date-only.md": "2025-03-01",  # midnight, site time
    "e-new-york-evening.md": "2025-02-28T20:00:00-05:00",  # 01:00 on March 1 UTC
}


@pytest.mark.parametrize(
    ("timezone", "march"),
    [
        ("Europe/Berlin", ["a-local-00-30.md", "c-utc-23-30.md", "d-date-only.md", "e-new-york-evening.md"]),
        ("America/New_York", ["a-local-00-30.md", "d-date-only.md"]),
        ("UTC", ["a-local-00-30.md", "d-date-only.md", "e-new-york-evening.md"]),
    ],
)
def test_the_month_follows_the_site_time_zone(new_project, timezone, march):
    project = new_project(timezone)
    for name, when in BOUNDARY.items():
        project.entry(name, date=when, folder="2025/02")  # the folder never decides the month
    archive = load_archive(project.config())
    in_march = sorted(e.path.name for e in archive.issue(MARCH).entries)
    in_february = sorted(e.path.name for e in archive.issue(FEBRUARY).entries)
    assert in_march == march
    assert in_february == sorted(set(BOUNDARY) - set(march))
    assert "b-berlin-23-30.md" in in_february  # 23:30 on Feb 28 in Berlin is February everywhere west of it


def test_a_date_only_value_is_read_in_the_site_time_zone(new_project):
    project = new_project("Europe/Berlin")
    project.entry("only-date", date="2025-03-01", folder="2025/03")
    [entry] = load_archive(project.config()).issue(MARCH).entries
    assert entry.date == datetime(2025, 3, 1, tzinfo=BERLIN)
    assert entry.date.utcoffset() == timedelta(hours=1)


def test_month_of_and_month_bounds():
    late = datetime.fromisoformat("2025-02-28T23:30:00+00:00")
    assert month_of(late, BERLIN) == MARCH
    assert month_of(late, ZoneInfo("America/New_York")) == FEBRUARY
    start, end = month_bounds(MARCH, BERLIN)  # half-open, and across the change to summer time
    assert (start.isoformat(), end.isoformat()) == ("2025-03-01T00:00:00+01:00", "2025-04-01T00:00:00+02:00")
    start, end = month_bounds(date(2024, 12, 1), BERLIN)
    assert (start.isoformat(), end.isoformat()) == ("2024-12-01T00:00:00+01:00", "2025-01-01T00:00:00+01:00")


def test_entries_are_ordered_by_configured_section_then_date_then_file_name(project):
    project.entry("news-late", date="2025-02-20T09:00:00", section="News")
    project.entry("paper", date="2025-02-25", section="Papers and Reports")
    project.entry("news-early", date="2025-02-02", section="News")
    project.entry("z-blog", date="2025-02-05", section="Articles and Blogs")
    project.entry("a-blog", date="2025-02-05", section="articles and blogs")  # same time: by file name
    project.entry("video", date="2025-02-01", section="YouTube and Podcasts")
    issue = load_archive(project.config()).issue(FEBRUARY)
    assert [s.name for s in issue.sections] == ["Articles and Blogs", "Papers and Reports", "YouTube and Podcasts", "News"]  # fmt: skip
    assert [e.path.stem for e in issue.entries] == ["a-blog", "z-blog", "paper", "video", "news-early", "news-late"]
    assert [[e.path.stem for e in s.entries] for s in issue.sections][-1] == ["news-early", "news-late"]


def test_section_order_comes_from_the_config(new_project):
    settings = site_settings()
    settings["site"]["sections"] = ["News", "Articles and Blogs"]
    project = new_project(settings=settings)
    project.entry("blog", section="Articles and Blogs", date="2025-02-01")
    project.entry("news", section="News", date="2025-02-28")
    issue = load_archive(project.config()).issue(FEBRUARY)
    assert [s.name for s in issue.sections] == ["News", "Articles and Blogs"]
    assert [e.path.stem for e in issue.entries] == ["news", "blog"]


def test_the_issue_carries_its_key_subject_permalink_and_stable_date(new_project):
    settings = site_settings()
    settings["email"] = {"subject": "{title} #{key}: {count} links in {month_name} {year} ({month})"}
    project = new_project(settings=settings)
    project.entry("first", date="2025-02-03T08:00:00", title="First & foremost")
    project.entry("second", date="2025-02-27T21:15:00+00:00", title="Second")
    issue = load_archive(project.config()).issue(FEBRUARY)
    assert issue.key == "2025-02" and issue.title == "February 2025"
    assert issue.subject == "Link Archive #2025-02: 2 links in February 2025 (02)"
    assert issue.permalink == "https://links.example.com/2025/02/"
    assert issue.preheader == "2 links this month: First & foremost; Second"
    assert issue.published == datetime(2025, 2, 27, 22, 15, tzinfo=BERLIN)  # the newest entry, not the build time


def test_a_long_preheader_is_cut_at_a_word(project):
    for n in range(12):
        project.entry(f"entry-{n:02d}", title=f"A rather long title number {n}")
    preheader = load_archive(project.config()).issue(FEBRUARY).preheader
    assert preheader.startswith("12 links this month: A rather long title number 0; A rather")
    assert len(preheader) <= 140 and preheader.endswith("…") and not preheader.endswith(" …")


def test_drafts_are_left_out_of_issues_and_months(project):
    project.entry("published", date="2025-02-10")
    project.entry("draft", date="2025-02-11", draft=True)
    project.entry("march-draft", date="2025-03-02", draft=True)
    archive = load_archive(project.config())
    assert archive.months() == [FEBRUARY]  # a month of drafts only is not a month
    assert [e.path.stem for e in archive.issue(FEBRUARY).entries] == ["published"]
    with pytest.raises(NothingToDo, match="no entries for 2025-03: nothing to build or send"):
        archive.issue(MARCH)


def test_an_empty_month_and_an_empty_archive_are_nothing_to_do(project):
    archive = load_archive(project.config())
    with pytest.raises(NothingToDo, match=r"no entries in .*content: add one with 'digest add URL --title \.\.\.'"):
        _ = archive.latest_month
    project.entry("one", date="2025-02-10")
    archive = load_archive(project.config())
    assert archive.latest_month == FEBRUARY
    with pytest.raises(NothingToDo, match="^no entries for 2023-01: nothing to build or send$"):
        archive.issue(date(2023, 1, 1))


def test_the_same_url_twice_in_a_month_is_an_error_naming_both_files(project):
    project.entry("a", url="https://example.com/same", date="2025-02-10")
    project.entry("b", url="https://EXAMPLE.com/same/", date="2025-02-12")  # same page: host case, trailing slash
    project.entry("c", url="https://example.com/same", date="2025-03-05")  # another month: fine
    project.entry("d", url="https://example.com/same", date="2025-02-14", draft=True)  # a draft: not sent
    archive = load_archive(project.config(), strict=False)
    assert [str(p) for p in archive.errors] == [
        "content/2025/02/b.md:3: same url as content/2025/02/a.md in 2025-02: https://EXAMPLE.com/same/ (merge the two entries or remove one)"
    ]
    with pytest.raises(ContentError) as raised:
        load_archive(project.config())
    assert str(raised.value).endswith("1 problem in content; nothing was written or sent")


def test_every_problem_in_the_tree_is_collected_at_once(project):
    project.entry("good")
    project.write("2025/02/no-title.md", "---\nurl: https://example.com/x\ndate: 2025-02-10\n---\n")
    project.write("2024/11/bad-date.md", "---\ntitle: T\nurl: https://example.com/y\ndate: someday\n---\n")
    project.write("2025/01/bad-section.md", "---\ntitle: T\nurl: https://example.com/z\ndate: 2025-01-10\nsection: Papres\n---\n")  # fmt: skip
    project.write("2025/02/no-url.md", "---\ntitle: Lost\ndate: 2025-02-10\n---\n")
    archive = load_archive(project.config(), strict=False)
    assert sorted(f"{p.path}:{p.line}" for p in archive.errors) == [
        "content/2024/11/bad-date.md:4", "content/2025/01/bad-section.md:5", "content/2025/02/no-title.md:1"
    ]  # fmt: skip
    assert [str(p) for p in archive.warnings] == ["content/2025/02/no-url.md: no url: the title renders without a link"]
    assert sorted(e.path.stem for e in archive.entries) == ["good", "no-url"]
    with pytest.raises(ContentError) as raised:
        load_archive(project.config())
    assert len(raised.value.problems) == 3
    assert str(raised.value).splitlines()[-1] == "3 problems in content; nothing was written or sent"


def test_only_markdown_files_count_and_hidden_ones_are_skipped(project):
    project.entry("kept")
    project.write("2025/02/.draft.md", "not an entry at all")
    project.write("2025/02/notes.txt", "scratch")
    project.write("2025/02/image.png", b"\x89PNG\r\n")
    project.write("2025/02/other.markdown", "---\ntitle: Other\nurl: https://example.com/o\ndate: 2025-02-11\n---\n")
    archive = load_archive(project.config())
    assert sorted(e.path.name for e in archive.entries) == ["kept.md", "other.markdown"]


def test_edits_are_seen_on_the_next_load_through_the_cache(project):
    path = project.entry("changing", title="Before")
    assert [e.title for e in load_archive(project.config()).entries] == ["Before"]
    assert list((project.root / "var" / "cache" / "content").glob("*.pickle"))
    path.write_text(path.read_text().replace("title: Before", "title: After the edit"))
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
    assert [e.title for e in load_archive(project.config()).entries] == ["After the edit"]
    path.unlink()
    assert load_archive(project.config()).entries == ()


def test_the_cache_does_not_outlive_a_config_change(new_project):
    project = new_project()
    project.entry("news", section="News")
    assert load_archive(project.config()).entries[0].section == "News"
    settings = site_settings()
    settings["site"]["sections"] = ["Articles and Blogs"]
    project.toml.write_text(to_toml(settings))
    archive = load_archive(project.config(), strict=False)
    assert [str(p) for p in archive.errors] == ["content/2025/02/news.md:5: unknown section 'News' (use one of: Articles and Blogs)"]  # fmt: skip


def test_a_missing_content_folder_and_an_outside_symlink_are_problems(project, tmp_path):
    outside = tmp_path / "secret.md"
    outside.write_text("---\ntitle: Outside\nurl: https://example.com/o\ndate: 2025-02-10\n---\n")
    (project.content / "2025").mkdir()
    (project.content / "2025" / "link.md").symlink_to(outside)
    archive = load_archive(project.config(), strict=False)
    [problem] = archive.errors
    assert str(problem).startswith("content/2025/link.md: symlink points outside the content folder")
    assert problem.hint == "copy the file into content/ instead"
    assert archive.entries == ()
    (project.content / "2025" / "link.md").unlink()
    (project.content / "2025").rmdir()
    project.content.rmdir()
    with pytest.raises(ContentError, match="content: content folder not found"):
        load_archive(project.config())


def test_recent_issues_are_the_newest_oldest_first(project):
    for month in ("2024-11", "2024-12", "2025-01", "2025-02"):
        project.entry(f"in-{month}", date=f"{month}-15")
    archive = load_archive(project.config())
    assert [i.key for i in archive.recent(3)] == ["2024-12", "2025-01", "2025-02"]
    assert [m.isoformat() for m in archive.months()] == ["2024-11-01", "2024-12-01", "2025-01-01", "2025-02-01"]


def test_a_months_warnings_are_matched_by_the_whole_path_not_the_file_name(new_project, cli):
    """December's notes.md has a warning; February's notes.md has none: February's build must not say it."""
    project = new_project("Europe/Berlin")
    project.entry("notes", date="2024-12-10", folder="2024/12", title="Décembre — 東京", tage="typo")
    project.entry("notes", date="2025-02-10", folder="2025/02", title="Février — שלום ✨")
    archive = load_archive(project.config())
    [december] = archive.warnings
    assert str(december.path) == "content/2024/12/notes.md" and "tage" in december.message
    assert archive.warnings_about(archive.issue(FEBRUARY).entries) == ()
    assert archive.warnings_about(archive.issue(date(2024, 12, 1)).entries) == (december,)

    result = cli(project.root, "-v", "build", "--month", "2025-02")
    assert result.code == 0, result.output
    assert "tage" not in result.err and "2024/12/notes.md" not in result.err, result.err
    assert "1 warning(s) in other months' entries" in result.err, result.err
    result = cli(project.root, "build", "--month", "2024-12")
    assert result.code == 0 and "content/2024/12/notes.md:5: unknown front-matter key 'tage'" in result.err, result.err


def test_the_preheader_takes_only_the_titles_that_show_and_reads_as_if_it_took_all():
    import random
    from pathlib import Path

    from digest.collect import BIDI_CONTROLS, _preheader, count_words
    from digest.content import Entry

    def whole(entries, quotes, limit=140):  # every title joined, then cut: what the preheader must equal
        titles = "; ".join(BIDI_CONTROLS.sub("", e.title) for e in entries)
        text = f"{count_words(entries, quotes)} this month" + (f": {titles}" if titles else "")
        return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"

    rng = random.Random(7)
    words = ["a", "Café", "读书笔记", "שלום", "\u202eevil", "word", "longer words here", "🎉", "x" * 60]
    for _ in range(500):
        entries = [
            Entry(Path(f"{n}.md"), " ".join(rng.choices(words, k=rng.randint(1, 6))), None, datetime(2025, 2, 1), "S")
            for n in range(rng.randint(0, 40))
        ]
        quotes = rng.randint(0, 2)
        assert _preheader(entries, quotes) == whole(entries, quotes)
