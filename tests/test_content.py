"""One content file -> an Entry or problems with file, line and what to fix."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest.content import parse_entry

SECTIONS = ("Articles and Blogs", "Papers and Reports", "News")
BERLIN = ZoneInfo("Europe/Berlin")


def parse(text: str | bytes, tz=BERLIN):
    raw = text.encode() if isinstance(text, str) else text
    return parse_entry(Path("content/2025/02/a.md"), raw, SECTIONS, tz)


def errors(text: str | bytes) -> list[str]:
    _, problems = parse(text)
    return [str(p) for p in problems if not p.warning]


def test_a_full_entry_parses():
    entry, problems = parse(
        '---\ntitle: "How to Scale Your Model"\nurl: https://jax-ml.github.io/scaling-book/\ndate: 2025-02-14\n'
        "section: papers and reports\nsource: Google DeepMind\ntags: [scaling, tpu]\nquote: Breadcrumbs.\n---\n\n- A guide.\n"
    )
    assert problems == []
    assert entry.title == "How to Scale Your Model"
    assert entry.url == "https://jax-ml.github.io/scaling-book/"
    assert entry.date == datetime(2025, 2, 14, tzinfo=BERLIN)
    assert entry.section == "Papers and Reports"  # matched without regard to case
    assert (entry.source, entry.tags, entry.quote, entry.draft) == ("Google DeepMind", ("scaling", "tpu"), "Breadcrumbs.", False)
    assert entry.body == "- A guide."


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-02-14", datetime(2025, 2, 14, tzinfo=BERLIN)),
        ("2025-02-14 09:30:00", datetime(2025, 2, 14, 9, 30, tzinfo=BERLIN)),
        ("'2025-02-14 09:30'", datetime(2025, 2, 14, 9, 30, tzinfo=BERLIN)),
        ("2025-02-14T09:30:00+05:30", datetime(2025, 2, 14, 4, 0, tzinfo=UTC)),
    ],
)
def test_dates_without_an_offset_are_read_in_the_site_time_zone(value, expected):
    entry, _ = parse(f"---\ntitle: T\nurl: https://e.com/\ndate: {value}\n---\n")
    assert entry.date == expected and entry.date.tzinfo is not None


def test_section_defaults_to_the_first():
    entry, _ = parse("---\ntitle: T\nurl: https://e.com/\ndate: 2025-02-01\n---\n")
    assert entry.section == "Articles and Blogs"


def test_a_missing_url_is_only_a_warning():
    entry, problems = parse("---\ntitle: Lost link\ndate: 2025-02-01\n---\nNotes.\n")
    assert entry is not None and entry.url is None
    assert [str(p) for p in problems] == ["content/2025/02/a.md: no url: the title renders without a link"]
    assert problems[0].warning


@pytest.mark.parametrize(
    ("front", "message"),
    [
        ("url: https://e.com/\ndate: 2025-02-01", "content/2025/02/a.md:1: missing or empty title"),
        ("title: '  '\nurl: https://e.com/\ndate: 2025-02-01", "content/2025/02/a.md:2: missing or empty title"),
        ("title: T\nurl: https://e.com/\ndate: last tuesday", "content/2025/02/a.md:4: unparseable date 'last tuesday'"),
        ("title: T\nurl: https://e.com/", "content/2025/02/a.md:1: missing date"),
        ("title: T\nurl: javascript:alert(1)\ndate: 2025-02-01", "content/2025/02/a.md:3: url scheme 'javascript' is not allowed in 'javascript:alert(1)'"),
        ("title: T\nurl: data:text/html,x\ndate: 2025-02-01", "content/2025/02/a.md:3: url scheme 'data' is not allowed"),
        ("title: T\nurl: file:///etc/passwd\ndate: 2025-02-01", "content/2025/02/a.md:3: url scheme 'file' is not allowed"),
        ("title: T\nurl: https://e.com/\ndate: 2025-02-01\nsection: Papres", "content/2025/02/a.md:5: unknown section 'Papres' (did you mean 'Papers and Reports'? use one of: Articles and Blogs, Papers and Reports, News)"),
        ("title: T\nurl: https://e.com/\ndate: 2025-02-01\ntags: {a: b}", "content/2025/02/a.md:5: tags must be a list of words"),
        ("title: T\nurl: https://e.com/\ndate: 2025-02-01\ndraft: maybe", "content/2025/02/a.md:5: draft must be true or false"),
    ],
)
def test_each_problem_names_file_line_and_fix(front, message):
    found = errors(f"---\n{front}\n---\nBody.\n")
    assert any(e.startswith(message) for e in found), found


def test_every_problem_of_a_file_is_reported_at_once():
    found = errors("---\ntitle: ''\nurl: ftp://x\ndate: soon\nsection: Nope\n---\n")
    assert len(found) == 4


def test_malformed_yaml_names_the_line():
    assert errors("---\ntitle: T\nurl: https://e.com/\ndate: 2025-02-01\nsource: [unclosed\n---\n")[0].startswith("content/2025/02/a.md:")
    found = errors("---\ntitle: T\nurl: https://e.com/: bad: yaml\ndate: 2025-02-01\n---\n")
    assert found == ["content/2025/02/a.md:3: malformed front matter: mapping values are not allowed in this context (fix the YAML between the '---' lines)"]


def test_no_front_matter():
    assert errors("Just some text\n") == ["content/2025/02/a.md:1: no front matter (start the file with a '---' line, then 'title:', 'url:' and 'date:' lines, then '---')"]


def test_not_utf8_names_the_line():
    found = errors(b"---\ntitle: T\nurl: https://e.com/\ndate: 2025-02-01\nsource: Caf\xe9\n---\n")
    assert found == ["content/2025/02/a.md:5: not UTF-8 text (byte 0xe9) (save the file as UTF-8)"]


def test_binary_and_huge_files_are_refused():
    assert errors(b"\x00\x01\x02binary") == ["content/2025/02/a.md: binary file, not a Markdown entry (remove it from content/)"]
    big = b"---\ntitle: T\nurl: https://e.com/\ndate: 2025-02-01\n---\n" + b"x" * 1_100_000
    assert errors(big)[0].startswith("content/2025/02/a.md: file is larger than 1,000,000 bytes")


def test_an_unknown_key_is_a_warning_with_a_suggestion():
    entry, problems = parse("---\ntitle: T\nurl: https://e.com/\ndate: 2025-02-01\nsorce: Gwern\n---\n")
    assert entry is not None
    assert [str(p) for p in problems] == ["content/2025/02/a.md:5: unknown front-matter key 'sorce' is ignored (did you mean 'source'?)"]


def test_a_utf8_bom_and_crlf_line_ends_are_fine():
    entry, problems = parse("\ufeff---\r\ntitle: T\r\nurl: https://e.com/\r\ndate: 2025-02-01\r\n---\r\nBody\r\n")
    assert problems == [] and entry.title == "T"


def test_yaml_aliases_cannot_blow_up():
    bomb = "---\ntitle: T\nurl: https://e.com/\ndate: 2025-02-01\n" + "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ) + "tags: *i\n---\n"
    found = errors(bomb)
    assert found == ["content/2025/02/a.md:14: tags must be a list of words, such as 'tags: [ai, chips]'"]


def test_month_is_decided_by_date_not_folder():
    from digest.collect import month_of

    entry, _ = parse("---\ntitle: T\nurl: https://e.com/\ndate: 2025-03-01T00:30:00\n---\n")
    assert month_of(entry.date, BERLIN) == date(2025, 3, 1)
    entry, _ = parse("---\ntitle: T\nurl: https://e.com/\ndate: 2025-02-28T23:30:00+00:00\n---\n")
    assert month_of(entry.date, BERLIN) == date(2025, 3, 1)  # 00:30 on the 1st in Berlin
    assert month_of(entry.date, ZoneInfo("America/New_York")) == date(2025, 2, 1)
