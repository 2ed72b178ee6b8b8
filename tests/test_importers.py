"""digest/importers.py: `digest import` on both archive formats (copies of the seed archives in
tests/data/seeds), and the entry writer `digest add` shares."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import REPO

from digest.collect import load_archive
from digest.content import parse_entry
from digest.errors import DigestError
from digest.importers import read_archive, slugify, write_entry

SEEDS = Path(__file__).parent / "data" / "seeds"
JEKYLL = SEEDS / "000_77ede25ea3d33641.txt"  # a Jekyll "Link Archive" post, February 2025
PLAIN = SEEDS / "001_99e4557bc9fc1e8e.txt"  # a plain-text "2024 December - What I Have Read" month
BERLIN = ZoneInfo("Europe/Berlin")

FEBRUARY = [
    ("DeepSeek, China, OpenAI, and AI Megaclusters | Lex Fridman Podcast #459", "https://youtube.com/watch?v=_1f-o0nqpEI"),
    ("How to Scale Your Model", "https://jax-ml.github.io/scaling-book/"),
    ("The Ultra-Scale Playbook: Training LLMs on GPU Clusters", "https://huggingface.co/spaces/nanotron/ultrascale-playbook"),
    ("Thinking like Transformer", "https://srush.github.io/raspy/"),
    ("Gwern - Anonymous Writer Who Predicted AI Trajectory on $12K/Year Salary", "https://www.youtube.com/watch?v=a42key59cZQ&list=WL&index=2"),
    ("The Melancholy of Subculture Society - Gwern", "https://gwern.net/subculture"),
    ("2024 Letter - Zhengdong Wang", "https://zhengdongwang.com/2024/12/29/2024-letter.html"),
    ("Sesame Research - Crossing the Uncanny Valley of Voice", "https://www.sesame.com/research/crossing_the_uncanny_valley_of_voice#demo"),
]  # fmt: skip
DECEMBER_SECTIONS = {"Substack": 26, "Articles and Blogs": 16, "Papers and Reports": 10, "YouTube and Podcasts": 11, "News": 13}  # fmt: skip
UBER = "Uber Technologies – A brilliant business executing to perfection (Quarterly Update)"


def entries_in(project, folder: str) -> list:
    config = project.config()
    parsed = []
    for path in sorted((project.content / folder).glob("[!_]*.md")):  # `_issue.md` is not an entry
        entry, problems = parse_entry(path, path.read_bytes(), config.site.sections, config.site.tz)
        assert entry is not None, problems
        parsed.append(entry)
    return parsed


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


# -- the Jekyll link archive -------------------------------------------------------------------


def test_the_jekyll_archive_holds_eight_links_with_their_commentary(config):
    when, items = read_archive(JEKYLL, config)
    assert when == datetime(2025, 2, 28, 22, 59, 59)  # no offset: read in the site's time zone when written
    assert [(" ".join(i.title.split()), i.url) for i in items] == FEBRUARY
    assert all(i.body.startswith("- ") for i in items)  # the bullet commentary, unindented
    assert items[1].body.startswith("- This is published by a group of researchers at Google DeepMind")
    assert "[gwern.net](http://gwern.net/)" in items[4].body  # Markdown links in commentary survive
    assert not any("Another month" in i.body or "Hope you enjoyed" in i.body for i in items)  # intro, sign-off


def test_importing_the_jekyll_archive_writes_eight_entries_dated_in_site_time(project, cli):
    result = cli(project.root, "import", str(JEKYLL))
    assert (result.code, result.out, result.err) == (0, "imported 8 new entries from 1 file\n", "")
    files = sorted((project.content / "2025" / "02").glob("[!_]*.md"))
    assert [f.name[:3] for f in files] == [f"{n:02d}-" for n in range(1, 9)]  # the archive's order
    assert (project.content / "2025" / "02" / "_issue.md").is_file()  # the text around the links
    assert files[0].name == "01-deepseek-china-openai-and-ai-megaclusters-lex-fridman.md"
    entries = entries_in(project, "2025/02")
    assert [(e.title, e.url) for e in entries] == FEBRUARY
    assert {e.date for e in entries} == {datetime(2025, 2, 28, 22, 59, 59, tzinfo=BERLIN)}
    assert [e.section for e in entries] == ["YouTube and Podcasts"] + ["Articles and Blogs"] * 3 + ["YouTube and Podcasts"] + ["Articles and Blogs"] * 3  # fmt: skip


# -- the plain-text month ----------------------------------------------------------------------


def test_the_plain_text_month_holds_76_entries_in_five_sections(config):
    when, items = read_archive(PLAIN, config)
    assert when == date(2024, 12, 31)  # the month's last day
    assert len(items) == 76
    assert list(Counter(i.section for i in items).items()) == list(DECEMBER_SECTIONS.items())  # in the file's order
    assert all(i.url is None for i in items)  # the archive's links were lost


def test_titles_and_sources_split_on_the_last_spaced_dash(config, tmp_path):
    _, items = read_archive(PLAIN, config)
    by_title = {i.title: i for i in items}
    assert by_title[UBER].source == "Rijnberk InvestInsights"  # the en dash stays in the title
    assert by_title["Where do LLMs spend their FLOPS?"].source == "Artificial Fintelligence"
    assert by_title["Speculations on Test-Time Scaling (o1)"].source == "Sasha Rush"  # "[Link] [GitHub]"
    assert by_title["Phi-4 Technical Report"].source is None  # "Title [Link]": no source
    month = tmp_path / "march.txt"
    month.write_text("2025 March - What I Have Read\nNews\nA - B - C [Link]\nNo source here [link]\n- leading dash - Someone [Link]\n")  # fmt: skip
    _, made_up = read_archive(month, config)
    assert [(i.title, i.source, i.section) for i in made_up] == [("A - B", "C", "News"), ("No source here", None, "News"), ("- leading dash", "Someone", "News")]  # fmt: skip


def test_an_entry_line_without_a_title_is_text_not_an_invalid_entry(config, project, cli, tmp_path):
    month = tmp_path / "january.txt"
    month.write_text(
        "2025 January - What I Have Read\nNews\nReal entry - Source [Link]\nA note.\n― [Link]\n\u200b [Link]\n"
    )
    _, items = read_archive(month, config)
    assert [(i.title, i.source) for i in items] == [("Real entry", "Source")]
    result = cli(project.root, "import", str(month))
    assert result.code == 0 and cli(project.root, "check").code == 0  # every written file is a valid entry


def test_a_quote_attribution_takes_the_lines_above_it(config):
    _, items = read_archive(PLAIN, config)
    by_title = {i.title: i for i in items}
    uber = by_title[UBER]
    assert uber.quote == (
        "the more the AV competition globally heats up, and the more large players invest in the technology, "
        "including Tesla, the higher the demand for the Uber platform will become for these AV players."
    )
    assert uber.body == "This article predicts Uber to be a massive beneficiary of the AV / Robotaxi revolution. There indeed is a moat."  # fmt: skip
    altman = by_title["How to Be Successful"]
    assert altman.source == "Sam Altman"
    assert "\n\n" in altman.quote  # each line of the archive is a paragraph of the quote (Markdown)
    lines = [line for line in altman.quote.split("\n") if line]
    assert len(lines) == 19  # the whole block between the previous entry and the attribution
    assert lines[0].startswith("I think the biggest competitive advantage in business")
    assert lines[-1] == "Eventually, you will define your success by performing excellent work in areas that are important to you. The sooner you can start off in that direction, the further you will be able to go."  # fmt: skip
    assert altman.body.startswith("Great advice. I need to keep in mind.\n\n- Compound yourself\n- Have almost too much self-belief")  # fmt: skip
    frameworks = [line for line in by_title["Great startup leadership frameworks"].quote.split("\n") if line]
    assert (len(frameworks), frameworks[1], frameworks[-1]) == (14, "- How to Be Successful - Sam Altman (blog)", "- Founder Mode - Paul Graham (blog)")  # fmt: skip
    assert by_title["Salesforce: The Agent Wave"].quote == "AI presents new challenges for incumbents but also drives significant innovation and growth."  # fmt: skip
    assert (
        "AI played a transformative role during Cyber Week" in by_title["E-Commerce Unleashed"].body
    )  # stays with its entry


def test_plain_commentary_renders_as_written(config):
    from digest.render.markdown import commentary_html

    _, items = read_archive(PLAIN, config)
    html = commentary_html(next(i for i in items if i.title == "Where do LLMs spend their FLOPS?").body)
    assert "<p>6d² for computing Query (Q), Key (K), and Value (V) matrices.</p>" in html  # one paragraph per line
    assert "4 * number of layers * d_model bytes" in html  # Markdown characters are escaped, not interpreted
    assert "<li>Theoretical Calculation: The formula for</li>" in html  # "- " lines stay a list


def test_importing_the_plain_month_warns_about_each_missing_url(project, cli):
    result = cli(project.root, "import", str(PLAIN))
    assert result.code == 0 and result.out == "imported 76 new entries from 1 file\n"
    warnings = result.err.splitlines()
    assert len(warnings) == 76
    assert warnings[0] == "warning: content/2024/12/01-uber-technologies-a-brilliant-business-executing-to.md: no url in the archive: the title renders without a link"  # fmt: skip
    entries = entries_in(project, "2024/12")
    assert len(entries) == 76 and all(e.url is None for e in entries)
    assert {e.date for e in entries} == {datetime(2024, 12, 31, tzinfo=BERLIN)}
    uber = entries[0]
    assert (uber.title, uber.source, uber.section) == (UBER, "Rijnberk InvestInsights", "Substack")
    assert uber.quote.startswith("the more the AV competition globally heats up")
    check = cli(project.root, "check")
    assert check.code == 0 and check.out.endswith("ok: content is valid (76 warnings)\n")


def test_the_import_order_is_the_issue_order(project, cli):
    assert cli(project.root, "import", str(PLAIN)).code == 0
    issue = load_archive(project.config()).issue(date(2024, 12, 1))
    assert [s.name for s in issue.sections] == ["Articles and Blogs", "Substack", "Papers and Reports", "YouTube and Podcasts", "News"]  # fmt: skip
    substack = next(s for s in issue.sections if s.name == "Substack")
    assert [e.title for e in substack.entries][:3] == [
        UBER,
        "Where do LLMs spend their FLOPS?",
        "Transformer inference tricks",
    ]


def test_importing_twice_writes_nothing_new(project, cli):
    assert cli(project.root, "import", str(JEKYLL), str(PLAIN)).code == 0
    before = snapshot(project.content)
    assert len(before) == 85  # 84 entries and February's _issue.md
    again = cli(project.root, "import", str(JEKYLL), str(PLAIN))
    assert (again.code, again.out, again.err) == (0, "imported 0 new entries (84 already there) from 2 files\n", "")
    assert snapshot(project.content) == before  # no new file, none rewritten


def test_importing_the_seeds_reproduces_the_shipped_content(tmp_path, cli):
    """The repository's content/ is exactly what `digest import` makes of the seed archives."""
    root = tmp_path / "fresh"
    (root / "content").mkdir(parents=True)
    (root / "templates").mkdir(exist_ok=True)
    shutil.copy(REPO / "digest.toml", root / "digest.toml")
    notes = sorted(SEEDS.glob("00[23]_*.txt"))  # the podcast notes and the topic notes
    assert cli(root, "import", str(JEKYLL), str(PLAIN), *map(str, notes)).code == 0
    assert cli(root, "import", "--format", "quotes", str(next(SEEDS.glob("004_*.txt")))).code == 0
    made = {p: data for p, (data, _) in snapshot(root / "content").items()}
    shipped = {str(p.relative_to(REPO / "content")): p.read_bytes() for p in sorted((REPO / "content").rglob("*.md"))}
    assert sorted(made) == sorted(shipped)
    assert made == shipped


# -- refusals ----------------------------------------------------------------------------------


def test_an_unknown_format_is_a_clear_error_naming_the_file(project, cli, tmp_path):
    stray = tmp_path / "notes.txt"
    stray.write_text("Shopping list\n- eggs\n")
    result = cli(project.root, "import", str(stray))
    assert result.code == 1
    assert result.err == (
        f"error: {stray}: not an archive digest can import (expected a Jekyll post with '**[Title](url)**' "
        "lines or '#' headings, or a plain-text month starting '2024 December - What I Have Read'; "
        "for a collection of quotes, one a line, add --format quotes)\n"
    )
    assert list(project.content.rglob("*")) == []


def test_one_bad_archive_stops_the_whole_import(project, cli, tmp_path):
    broken = tmp_path / "broken.md"
    broken.write_bytes(b"---\ntitle: x\n---\n**[A](https://a.com)**\n\xff\xfe")
    result = cli(project.root, "import", str(JEKYLL), str(broken))
    assert result.code == 1 and result.err.startswith(f"error: {broken}: cannot read:")
    assert list(project.content.rglob("*.md")) == []  # not even the good archive's entries


def test_a_missing_file_is_a_usage_error(project, cli, tmp_path):
    result = cli(project.root, "import", str(tmp_path / "nope.txt"))
    assert result.code == 2 and "does not exist" in result.err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("---\ntitle: Link Archive\n---\n**[A](https://a.com/)**\n- note\n", "{path}: the front matter has no usable 'date:'"),
        ("---\ndate: 2025-02-28\n---\nNo links here at all.\n", "{path}: no '**[Title](url)**' lines found"),
        ("2024 Decembre - What I Have Read\nNews\nA - B [Link]\n", "{path}:1: expected a first line such as '2024 December - What I Have Read'"),
        ("2024 December - What I Have Read\nJust prose, no entries.\n", "{path}: no 'Title - Source [Link]' lines found"),
    ],
)  # fmt: skip
def test_broken_archives_are_digest_errors_naming_the_file(config, tmp_path, text, message):
    path = tmp_path / "archive.md"
    path.write_text(text)
    with pytest.raises(DigestError) as raised:
        read_archive(path, config)
    assert str(raised.value).startswith(message.format(path=path))


def test_urls_with_parentheses_and_script_urls_in_a_jekyll_archive(config, tmp_path):
    path = tmp_path / "post.md"
    path.write_text(
        "---\ndate: 2025-02-28\n---\n**[Fine](https://a.com/)**\n- note a\n"
        "**[Transformer](https://en.wikipedia.org/wiki/Transformer_(deep_learning_architecture))**\n- note t\n"
        "**[Evil](javascript:alert(1))**\n- note e\n"
    )
    _, items = read_archive(path, config)
    assert [(i.title, i.url, i.body) for i in items] == [
        ("Fine", "https://a.com/", "- note a"),  # not the next link folded into its commentary
        ("Transformer", "https://en.wikipedia.org/wiki/Transformer_(deep_learning_architecture)", "- note t"),
        ("Evil", None, "- note e"),  # kept, but never as a link
    ]


# -- the entry writer --------------------------------------------------------------------------


def test_write_entry_round_trips_awkward_values(config):
    path = write_entry(
        config, title='No: "null" - 2024-01-01 #1', url="https://example.com/a?b=c&d=e", when=datetime(2025, 2, 3, 4, 5, tzinfo=BERLIN),
        section="News", source="yes", note="- one\n- two", quote="Quote: with colon", tags=("ai", "no"),
    ).path  # fmt: skip
    entry, problems = parse_entry(path, path.read_bytes(), config.site.sections, config.site.tz)
    assert problems == []
    assert (entry.title, entry.url, entry.section, entry.source, entry.quote, entry.tags) == (
        'No: "null" - 2024-01-01 #1', "https://example.com/a?b=c&d=e", "News", "yes", "Quote: with colon", ("ai", "no"))  # fmt: skip
    assert entry.date == datetime(2025, 2, 3, 4, 5, tzinfo=BERLIN)
    assert entry.body == "- one\n- two"
    assert path == config.paths.content / "2025" / "02" / "no-null-2024-01-01-1.md"


def test_write_entry_never_overwrites_a_different_entry(config):
    first = write_entry(config, title="Same title", url="https://a.com/", when=date(2025, 2, 1)).path
    second = write_entry(config, title="Same title", url="https://b.com/", when=date(2025, 2, 1)).path
    again = write_entry(config, title="Same title", url="https://a.com/", when=date(2025, 2, 1))
    assert (first.name, second.name, again.path, again.exists) == ("same-title.md", "same-title-2.md", first, True)
    assert "url: https://a.com/" in first.read_text() and "url: https://b.com/" in second.read_text()


def test_slugs_are_short_ascii_and_whole_words():
    assert slugify("Café Society: Ünïcode & Co.") == "cafe-society-unicode-co"
    assert slugify("x" * 10 + " " + "word " * 20, 30) == "xxxxxxxxxx-word-word-word-word"
    assert slugify("!!!") == "entry"
