"""`digest import` on both archive formats, and `digest add`'s file writer."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from delivery_support import digest, write_project

from digest.config import load_config
from digest.content import parse_entry
from digest.errors import DigestError
from digest.importers import read_archive, slugify, write_entry

SEEDS = Path(__file__).parent / "data" / "seeds"
JEKYLL = SEEDS / "link-archive-2025-02.md"
PLAIN = SEEDS / "what-i-have-read-2024-12.txt"
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def empty_site(tmp_path: Path) -> Path:
    root = write_project(tmp_path / "site")
    for path in sorted((root / "content").rglob("*.md")):
        path.unlink()
    return root


@pytest.fixture
def config(empty_site):
    return load_config(empty_site / "digest.toml")


def entries_of(root: Path) -> list:
    config = load_config(root / "digest.toml")
    parsed = []
    for path in sorted((root / "content").rglob("*.md")):
        entry, problems = parse_entry(path, path.read_bytes(), config.site.sections, config.site.tz)
        assert entry is not None, problems
        parsed.append(entry)
    return parsed


def test_jekyll_link_archive(config):
    when, items = read_archive(JEKYLL, config)
    assert when == datetime(2025, 2, 28, 22, 59, 59)
    assert [" ".join(i.title.split()) for i in items][:3] == [
        "DeepSeek, China, OpenAI, and AI Megaclusters | Lex Fridman Podcast #459",
        "How to Scale Your Model",
        "The Ultra-Scale Playbook: Training LLMs on GPU Clusters",
    ]
    assert len(items) == 8
    assert items[1].url == "https://jax-ml.github.io/scaling-book/"
    assert items[1].body.startswith("- This is published by a group of researchers at Google DeepMind")
    assert "[gwern.net](http://gwern.net/)" in items[4].body  # Markdown links in commentary survive
    assert all("Hope you enjoyed" not in i.body and "Another month" not in i.body for i in items)  # intro and sign-off are not commentary


def test_plain_text_month(config):
    when, items = read_archive(PLAIN, config)
    assert when == date(2024, 12, 31)
    assert len(items) == 76
    sections = [i.section for i in items]
    assert sections[0] == "Substack" and sections[-1] == "News"
    assert {"Articles and Blogs", "Papers and Reports", "YouTube and Podcasts"} <= set(sections)
    by_title = {i.title: i for i in items}
    uber = by_title["Uber Technologies – A brilliant business executing to perfection (Quarterly Update)"]
    assert uber.source == "Rijnberk InvestInsights"  # split on the last " - "; the en dash stays in the title
    assert uber.quote.startswith("the more the AV competition globally heats up")
    assert uber.body == "This article predicts Uber to be a massive beneficiary of the AV / Robotaxi revolution. There indeed is a moat."
    altman = by_title["How to Be Successful"]
    assert altman.source == "Sam Altman"
    assert altman.quote.count("\n") >= 15 and altman.quote.startswith("I think the biggest competitive advantage")
    assert altman.body.startswith("Great advice. I need to keep in mind.")
    salesforce = by_title["Salesforce: The Agent Wave"]
    assert salesforce.quote == "AI presents new challenges for incumbents but also drives significant innovation and growth."
    assert "AI played a transformative role during Cyber Week" in by_title["E-Commerce Unleashed"].body  # stays with its entry
    assert by_title["Speculations on Test-Time Scaling (o1)"].source == "Sasha Rush"  # "[Link] [GitHub]"
    assert all(i.url is None for i in items)  # the archive's links were lost


def test_plain_text_commentary_renders_as_written(config):
    _, items = read_archive(PLAIN, config)
    flops = next(i for i in items if i.title == "Where do LLMs spend their FLOPS?")
    from digest.content import commentary_html

    html = commentary_html(flops.body)
    assert "<p>6d² for computing Query (Q), Key (K), and Value (V) matrices.</p>" in html  # one paragraph per line
    assert "4 * number of layers * d_model bytes" in html  # Markdown characters are escaped, not interpreted
    assert "<li>Theoretical Calculation: The formula for</li>" in html  # "- " lines stay a list


def test_import_writes_valid_entries_and_is_idempotent(empty_site):
    result = digest(empty_site, "import", str(JEKYLL), str(PLAIN), check=True)
    assert result.stdout.strip() == "imported 84 entries from 2 files"
    assert result.stderr.count("no url in the archive") == 76
    files = sorted((empty_site / "content").rglob("*.md"))
    assert len(files) == 84
    assert {f.parent.relative_to(empty_site / "content").as_posix() for f in files} == {"2025/02", "2024/12"}
    assert files[-8].name == "01-deepseek-china-openai-and-ai-megaclusters-lex-fridman.md"
    entries = entries_of(empty_site)
    february = [e for e in entries if e.date.month == 2]
    assert {e.section for e in february} == {"Articles and Blogs", "YouTube and Podcasts"}  # videos guessed by host
    assert digest(empty_site, "check").returncode == 0
    again = digest(empty_site, "import", str(JEKYLL), str(PLAIN), check=True)
    assert "imported 84 entries" in again.stdout
    assert sorted((empty_site / "content").rglob("*.md")) == files  # nothing new


def test_import_order_is_kept_in_the_issue(empty_site):
    digest(empty_site, "import", str(PLAIN), check=True)
    config = load_config(empty_site / "digest.toml")
    from digest.collect import load_archive

    issue = load_archive(config).issue(date(2024, 12, 1))
    substack = next(s for s in issue.sections if s.name == "Substack")
    assert [e.title for e in substack.entries][:3] == [
        "Uber Technologies – A brilliant business executing to perfection (Quarterly Update)",
        "Where do LLMs spend their FLOPS?",
        "Transformer inference tricks",
    ]


def test_an_unknown_format_is_a_clear_error(empty_site, tmp_path):
    stray = tmp_path / "notes.txt"
    stray.write_text("Shopping list\n- eggs\n")
    result = digest(empty_site, "import", str(stray))
    assert result.returncode == 1
    assert f"{stray}: not a link archive digest can import" in result.stderr
    assert not list((empty_site / "content").rglob("*.md"))


def test_an_unreadable_archive_writes_nothing_even_beside_a_good_one(empty_site, tmp_path):
    broken = tmp_path / "broken.md"
    broken.write_bytes(b"---\ntitle: x\n---\n**[A](https://a.com)**\n\xff\xfe")
    result = digest(empty_site, "import", str(JEKYLL), str(broken))
    assert result.returncode == 1 and str(broken) in result.stderr
    assert not list((empty_site / "content").rglob("*.md"))


def test_read_archive_errors_are_digest_errors(config, tmp_path):
    no_date = tmp_path / "post.md"
    no_date.write_text("---\ntitle: Link Archive\n---\n**[A](https://a.com/)**\n- note\n")
    with pytest.raises(DigestError, match="no usable 'date:'"):
        read_archive(no_date, config)


def test_write_entry_round_trips_awkward_values(config):
    path = write_entry(
        config, title='No: "null" - 2024-01-01 #1', url="https://example.com/a?b=c&d=e", when=datetime(2025, 2, 3, 4, 5, tzinfo=NEW_YORK),
        section="News", source="yes", note="- one\n- two", quote="Quote: with colon", tags=("ai", "no"),
    )  # fmt: skip
    entry, problems = parse_entry(path, path.read_bytes(), config.site.sections, config.site.tz)
    assert problems == []
    assert (entry.title, entry.url, entry.section, entry.source, entry.quote, entry.tags) == (
        'No: "null" - 2024-01-01 #1', "https://example.com/a?b=c&d=e", "News", "yes", "Quote: with colon", ("ai", "no"))  # fmt: skip
    assert entry.date == datetime(2025, 2, 3, 4, 5, tzinfo=NEW_YORK)
    assert entry.body == "- one\n- two"
    assert path.parent == config.paths.content / "2025" / "02"


def test_slugs_are_short_ascii_and_whole_words():
    assert slugify("Café Society: Ünïcode & Co.") == "cafe-society-unicode-co"
    assert slugify("x" * 10 + " " + "word " * 20, 30) == "xxxxxxxxxx-word-word-word-word"
    assert slugify("!!!") == "entry"
