"""`digest import` of the notes posts and the quote collection (copies of the seed archives in
tests/data/seeds), and the editor's note a Jekyll link archive brings. Counts come from the seeds."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from digest.collect import load_archive
from digest.content import parse_entry
from digest.errors import DigestError
from digest.importers import import_files, read_file
from digest.note_archives import read_quotes

SEEDS = Path(__file__).parent / "data" / "seeds"
JEKYLL = SEEDS / "000_77ede25ea3d33641.txt"  # a link archive with an introduction and a sign-off
PODCASTS = SEEDS / "002_afbeb462ed58c10d.txt"  # podcast notes: one '#' heading per episode
TOPICS = SEEDS / "003_f41bb5e3fdb15e2d.txt"  # dated notes: one '###' heading per topic
QUOTES = SEEDS / "004_e89653c4c3af3987.txt"  # quotes, one a line


def headings(path: Path, marks: str) -> list[str]:
    """The seed's headings of exactly this level, outside fenced code."""
    found, fenced = [], False
    for line in path.read_text(encoding="utf-8").split("\n"):
        fenced = not fenced if line.startswith(("```", "~~~")) else fenced
        if not fenced and re.match(rf"{marks}\s", line):
            found.append(line[len(marks) :].strip())
    return found


def quote_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def front_date(path: Path) -> str:
    return re.search(r"^date:\s*(\S+)", path.read_text(encoding="utf-8"), re.MULTILINE).group(1)


@pytest.mark.parametrize(("seed", "marks"), [(PODCASTS, "#"), (TOPICS, "###")])
def test_a_notes_post_gives_one_note_per_top_heading_dated_by_the_post(config, seed, marks):
    expected = headings(seed, marks)
    assert len(expected) >= 5  # the seed is what the test thinks it is
    read = read_file(seed, config)  # told from its text: front matter and headings, no links
    assert [e.title for e in read.entries] == expected
    assert all(e.kind == "note" and e.url is None and e.body for e in read.entries)
    assert str(read.when)[:10] == front_date(seed)


def test_deeper_headings_stay_inside_their_note(config, tmp_path):
    post = tmp_path / "post.md"
    post.write_text("---\ndate: 2025-03-02\n---\nLead-in ✨.\n## Épisode — 名言\n### Détail\n- a\n## שלום\n- b\n")
    read = read_file(post, config)
    assert [(e.title, e.body) for e in read.entries] == [("Épisode — 名言", "### Détail\n- a"), ("שלום", "- b")]
    assert read.intro == "Lead-in ✨."


SPEAKER_LINE = re.compile(r"^\D+ \d{2}:\d{2}:\d{2}$")  # a transcript's "Casey Handmer 00:33:33"


def quotes_expected(path: Path) -> tuple[list[str], list[str], list[str]]:
    """The seed's lines, and those that are no quote: speakers and the elision marks."""
    lines = quote_lines(path)
    return lines, [line for line in lines if SPEAKER_LINE.match(line)], [line for line in lines if line == "[…]"]


def test_a_quote_collection_gives_one_pool_quote_per_line(config):
    lines, speakers, elisions = quotes_expected(QUOTES)
    assert len(lines) == 219 and len(speakers) == 9 and len(elisions) == 2  # the seed is what the test thinks
    read = read_file(QUOTES, config, "quotes")
    parsed = read_quotes(QUOTES.read_text(encoding="utf-8"))
    assert read.when is None and all(e.kind == "quote" for e in read.entries)
    assert [(e.title, e.source) for e in read.entries] == [(q.text, q.source) for q in parsed.quotes]
    # every line is a quote, the source of the quote on the next line, an elision, or listed as left out
    quoted = {q.text for q in parsed.quotes}
    named = [q for q in parsed.quotes if q.source and q.text in lines]  # named by the line before
    left = {text for _, text in parsed.left_out}
    for number, line in enumerate(lines):
        if line in elisions or line in left or line in quoted or any(line.startswith(q.text) for q in parsed.quotes):
            continue
        name = line.rsplit(" ", 1)[0] if line in speakers else line
        assert (lines[number + 1], name) in [(q.text, q.source) for q in named], line
    assert len(lines) == len(parsed.quotes) + len(named) + len(elisions) + len(parsed.left_out)
    assert "Let’s get concrete here for a second." in next(q.text for q in named if q.source == "Casey Handmer")
    assert "AI - Erosion of Trust" in {q.source for q in named}
    assert all(len(q.text.split()) >= 5 or q.text not in lines for q in parsed.quotes)  # no "Yeah." of the month


def test_speakers_and_titles_name_only_the_next_line(config, tmp_path):
    collection = tmp_path / "quotes.txt"
    collection.write_text(
        "Zoë Müller 00:01:02\nLe style, c’est l’homme même, et il ne se transmet pas.\n"
        "A line of the writer’s own, after the transcript, that nobody said.\n"
        "读书笔记 — 名言集\nA long enough line, after a quote with its own source, has none.\n"
        "Yeah.\n[…]\nShip it 🚀 — Anonymous engineer\n"
        "AI - Erosion of Trust\nI think the concept of erosion of trust is useful — שלום.\nA title with nothing after it\n"
    )
    read = read_file(collection, config, "quotes")
    assert [(e.title, e.source) for e in read.entries] == [
        ("Le style, c’est l’homme même, et il ne se transmet pas.", "Zoë Müller"),
        ("A line of the writer’s own, after the transcript, that nobody said.", None),
        ("读书笔记", "名言集"),  # a short line with its own "— source" is a quote, not a title
        ("A long enough line, after a quote with its own source, has none.", None),
        ("Ship it 🚀", "Anonymous engineer"),
        ("I think the concept of erosion of trust is useful — שלום.", "AI - Erosion of Trust"),
    ]
    assert read_quotes(collection.read_text()).left_out == [(6, "Yeah."), (11, "A title with nothing after it")]


def test_a_quote_collection_is_imported_only_when_asked_for(config):
    with pytest.raises(DigestError, match="--format quotes"):
        read_file(QUOTES, config)


@pytest.mark.parametrize(
    ("line", "quote", "source"),
    [
        ("Simplicity is prerequisite for reliability. — Edsger W. Dijkstra", "Simplicity is prerequisite for reliability.", "Edsger W. Dijkstra"),  # noqa: E501
        ("“Le style, c’est l’homme.” ― Buffon", "“Le style, c’est l’homme.”", "Buffon"),
        ("知之为知之，不知为不知 — 孔子", "知之为知之，不知为不知", "孔子"),
        ("הכל צפוי והרשות נתונה — רבי עקיבא", "הכל צפוי והרשות נתונה", "רבי עקיבא"),
        ("They take a thousand lifetimes — but that’s fine, they can live them.", None, None),  # a sentence's dash
        ("Ship it 🚀 — Anonymous engineer", "Ship it 🚀", "Anonymous engineer"),
        ("Changing Data With Confidence using DuckDB - Hannes Mühleisen", None, None),  # a hyphen: no source
    ],
)  # fmt: skip
def test_a_short_trailing_attribution_is_the_source(line, quote, source):
    [read] = read_quotes(line).quotes
    assert (read.text, read.source) == ((quote or line), source)


def test_importing_the_seeds_writes_notes_quotes_and_the_editors_note(project):
    config = project.config()
    report = import_files(config, [JEKYLL, PODCASTS, TOPICS])
    report_quotes = import_files(config, [QUOTES], "quotes")
    content = project.content
    assert len(list((content / "2024/07").glob("[!_]*.md"))) == len(headings(PODCASTS, "#"))
    assert len(list((content / "2025/06").glob("[!_]*.md"))) == len(headings(TOPICS, "###"))
    quote_count = len(read_file(QUOTES, config, "quotes").entries)
    assert len(list((content / "quotes").glob("*.md"))) == quote_count
    assert len(report.written) == 8 + len(headings(PODCASTS, "#")) + len(headings(TOPICS, "###"))
    assert len(report_quotes.written) == quote_count
    note = (content / "2025/02/_issue.md").read_text()
    assert note.startswith(
        "---\noutro: Hope you enjoyed this month’s picks—March should bring even more to explore!\n---\n"
    )
    assert "\nAnother month, another batch of interesting links" in note
    # every file is valid, and the second import writes nothing
    archive = load_archive(config)
    assert not archive.errors
    for path in report.written + report_quotes.written:
        pooled = path.parent.name == "quotes"
        entry, problems = parse_entry(path, path.read_bytes(), config.site.sections, config.site.tz, pooled=pooled)
        assert entry is not None, problems
        assert entry.kind == ("quote" if pooled else "note" if path.parent.name in ("07", "06") else "link")
    assert len(archive.pool) == quote_count
    assert archive.notes[date(2025, 2, 1)].outro.startswith("Hope you enjoyed")
    again = import_files(config, [JEKYLL, PODCASTS, TOPICS])
    assert again.written == () and not again.problems
    assert import_files(config, [QUOTES], "quotes").written == ()


def test_the_import_command_takes_a_format(project, cli):
    result = cli(project.root, "import", "--format", "quotes", str(QUOTES))
    assert result.code == 0, result.output
    assert f"imported {len(read_quotes(QUOTES.read_text()).quotes)} new entries" in result.out
    result = cli(project.root, "import", str(QUOTES))
    assert result.code == 1 and "--format quotes" in result.output
