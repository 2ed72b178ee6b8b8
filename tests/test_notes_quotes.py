"""Entry kinds: notes (their own section, headings moved down), dated quotes and the quote pool's quote
of the month, in the email (HTML and text), the web page and the feeds; and their checks."""

from __future__ import annotations

import json
import re
from datetime import date

import feedparser
import pytest
import yaml
from conftest import site_settings

from digest.collect import load_archive
from digest.quotes import choose


def write(project, relative: str, front: dict, body: str = "") -> None:
    text = (
        "---\n" + yaml.safe_dump(front, allow_unicode=True, sort_keys=False) + "---\n" + (f"\n{body}\n" if body else "")
    )
    project.write(relative, text)


def built(project, month: str = "2025-02") -> dict[str, str]:
    out = project.root / "output"
    site = out / "site"
    json_item = next(i for i in json.loads((site / "feed.json").read_text())["items"] if i["id"].endswith(month))
    atom = next(e for e in feedparser.parse((site / "atom.xml").read_bytes()).entries if e.id.endswith(month))
    rss = next(e for e in feedparser.parse((site / "feed.xml").read_bytes()).entries if e.id.endswith(month))
    html = (out / f"email/{month}.html").read_text()
    page = (site / month.replace("-", "/") / "index.html").read_text()
    return {  # the email and the page from where the issue starts: the preheader and description list titles
        "html": html[html.index("View this issue in your browser") :],
        "text": (out / f"email/{month}.txt").read_text(),
        "page": page[page.index('<article class="issue">') :],
        "json": json_item["content_html"],
        "atom": atom.content[0].value,
        "rss": rss.content[0].value,
    }


@pytest.fixture
def noted(new_project):
    settings = site_settings()
    settings["site"]["notes_section"] = "Field notes ✍️"
    project = new_project(settings=settings)
    project.entry("a-link", date="2025-02-10", title="A link — ünïcode")
    write(
        project,
        "2025/02/thoughts.md",
        {"kind": "note", "title": "Thoughts on 名言 and שלום", "date": "2025-02-11"},
        "# Big heading\n\nA paragraph with *emphasis* 🎉.\n\n## Smaller\n\n- a point\n",
    )
    return project


def test_a_note_needs_no_url_and_shows_after_the_links_under_its_own_heading(noted, cli):
    check = cli(noted.root, "check")
    assert check.code == 0 and "no url" not in check.output, check.output
    result = cli(noted.root, "build")
    assert result.code == 0, result.output
    outputs = built(noted)
    for name, body in outputs.items():
        assert body.index("A link — ünïcode") < body.index("Field notes ✍️" if name != "text" else "FIELD NOTES ✍️"), name
        assert body.index("Field notes ✍️" if name != "text" else "FIELD NOTES ✍️") < body.index(
            "Thoughts on 名言 and שלום"
        )
    for name in ("html", "page", "json", "atom", "rss"):
        body = outputs[name]
        assert not re.search(r"<h[12][^>]*>(Big heading|Smaller)", body), name  # below the note's title
        assert re.search(r"<h4[^>]*>Big heading</h4>", body) and re.search(r"<h5[^>]*>Smaller</h5>", body), name
    assert "1 link and 1 note" in outputs["html"] and "1 link and 1 note" in outputs["text"]


def test_a_dated_quote_is_its_months_quote_of_the_month(noted, cli):
    write(noted, "2025/02/quote.md", {"kind": "quote", "date": "2025-02-12", "source": "Rabbi Akiva — רבי עקיבא"},
          "All is foreseen,\nand freedom of choice is given. ✡")  # fmt: skip
    write(noted, "quotes/pooled.md", {"source": "Someone else"}, "A pool quote that must not show this month.")
    assert cli(noted.root, "build").code == 0
    for name, body in built(noted).items():
        assert "Quote of the month" in body or "QUOTE OF THE MONTH" in body, name
        assert "freedom of choice is given" in body and "Rabbi Akiva — רבי עקיבא" in body, name
        assert "must not show" not in body, name
    html = built(noted)["html"]
    assert html.index("freedom of choice") < html.index("A link — ünïcode")  # at the top of the issue
    assert "All is foreseen,<br" in html  # its line breaks kept


def test_each_issue_shows_the_pools_choice_the_same_on_every_rebuild(new_project, cli):
    project = new_project()
    for month in ("2025-01", "2025-02", "2025-04"):  # March has no issue, but still counts
        project.entry(f"link-{month}", date=f"{month}-10")
    words = {f"q{n}.md": f"Quote number {n} — ünïcode, 名言, שלום, 🙂" for n in range(3)}
    for name, text in words.items():
        write(project, f"quotes/{name}", {"kind": "quote", "source": f"Author {name}"}, text)
    archive = load_archive(project.config())
    assert len(archive.pool) == 3
    shown = {}
    for month in ("2025-01", "2025-02", "2025-04"):
        assert cli(project.root, "build", "--month", month).code == 0
        key = choose(date.fromisoformat(f"{month}-01"), date(2025, 1, 1), list(words))
        text = (project.root / f"output/email/{month}.txt").read_text()
        assert words[key] in text and all(words[other] not in text for other in words if other != key)
        for name, body in built(project, month).items():
            assert words[key] in body, (month, name)
        shown[month] = key
    assert shown["2025-01"] != shown["2025-02"]  # months 0 and 1 of one pass through the pool
    march = choose(date(2025, 3, 1), date(2025, 1, 1), list(words))  # month 2, though March has no issue
    assert {shown["2025-01"], shown["2025-02"], march} == set(words)
    before = {m: (project.root / f"output/email/{m}.html").read_bytes() for m in shown}
    assert cli(project.root, "build", "--all", "--month", "2025-04").code == 0
    assert cli(project.root, "build", "--all", "--month", "2025-01").code == 0
    assert (project.root / "output/email/2025-01.html").read_bytes() == before["2025-01"]
    assert (project.root / "output/email/2025-04.html").read_bytes() == before["2025-04"]


def test_without_a_pool_an_issue_shows_no_quote(project, cli):
    project.entry("a-link", date="2025-02-10")
    assert cli(project.root, "build").code == 0
    for name, body in built(project).items():
        assert "of the month" not in body.lower(), name


def test_a_draft_pool_quote_stays_out_of_the_pool(project, cli):
    project.entry("a-link", date="2025-02-10")
    write(project, "quotes/draft.md", {"draft": True}, "Not ready yet.")
    assert load_archive(project.config()).pool == ()


@pytest.mark.parametrize(
    ("relative", "front", "body", "expected"),
    [
        ("2025/02/x.md", {"kind": "essay", "title": "X", "date": "2025-02-10"}, "", "content/2025/02/x.md:2: unknown kind 'essay' (use one of: link, note, quote)"),  # noqa: E501
        ("2025/02/x.md", {"kind": "quote", "date": "2025-02-10"}, "", "content/2025/02/x.md:2: a quote without words"),
        ("2025/02/x.md", {"kind": "quote", "date": "2025-02-10", "quote": "Two"}, "One", "content/2025/02/x.md:4: a quote's words are the body, not a 'quote:' key"),  # noqa: E501
        ("2025/02/x.md", {"kind": "quote"}, "Undated", "content/2025/02/x.md:1: missing date (use YYYY-MM-DD or an ISO datetime such as 2025-02-28T22:59:00+01:00; an undated quote belongs in content/quotes/, the quote pool)"),  # noqa: E501
        ("2025/02/x.md", {"kind": "note", "date": "2025-02-10"}, "Words", "content/2025/02/x.md:1: missing or empty title"),
        ("quotes/x.md", {"date": "2025-02-10"}, "Dated", "content/quotes/x.md:2: a quote in content/quotes/ has no date: it is in the quote pool"),  # noqa: E501
        ("quotes/x.md", {"kind": "note", "title": "N"}, "Words", "content/quotes/x.md:2: content/quotes/ holds quotes, not a note"),
        ("quotes/x.md", {"sauce": "typo"}, "Words", "content/quotes/x.md:2: unknown front-matter key 'sauce' is ignored (did you mean 'source'?)"),  # noqa: E501
    ],
)  # fmt: skip
def test_check_names_the_file_and_line_of_a_bad_kind(project, cli, relative, front, body, expected):
    project.entry("a-link", date="2025-02-10")
    write(project, relative, front, body)
    result = cli(project.root, "check")
    assert expected in result.output, result.output
    assert "Traceback" not in result.output


def test_a_note_section_may_not_repeat_a_section(new_project, cli):
    settings = site_settings()
    settings["site"]["notes_section"] = "news"
    project = new_project(settings=settings)
    result = cli(project.root, "check")
    assert result.code == 1 and "notes_section 'news' is also one of sections" in result.output


def test_the_import_of_a_notes_post_builds(project, cli, tmp_path):
    post = tmp_path / "post.md"
    post.write_text("---\ndate: 2025-02-20\n---\n# Épisode un\n- point 名言\n# שלום\n- point two\n")
    assert cli(project.root, "import", str(post)).code == 0
    result = cli(project.root, "build")
    assert result.code == 0 and result.out.startswith("built 2025-02: 2 entries"), result.output
    assert "2 notes from A Writer" in (project.root / "output/email/2025-02.txt").read_text()


def test_the_pool_is_read_from_its_cache_until_a_quote_changes(project, monkeypatch):
    from digest import quotes

    project.entry("a-link", date="2025-02-10")
    for n in range(3):
        write(project, f"quotes/q{n}.md", {"kind": "quote"}, f"Quote {n} — 名言")
    first = load_archive(project.config()).pool
    parsed = []
    real = quotes._parse_quote
    monkeypatch.setattr(quotes, "_parse_quote", lambda path, *rest: parsed.append(path.name) or real(path, *rest))
    assert load_archive(project.config()).pool == first and parsed == []  # nothing changed: nothing parsed
    write(project, "quotes/q1.md", {"kind": "quote", "source": "Ada"}, "Quote 1, edited")
    pool = load_archive(project.config()).pool
    assert parsed == ["q1.md"] and [(q.text, q.source) for q in pool][1] == ("Quote 1, edited", "Ada")
    (project.root / "var/cache/quotes.pickle").write_bytes(b"digest-quote-pool\n\x00\x00\x00\x00garbage")
    parsed.clear()
    assert load_archive(project.config()).pool == pool and sorted(parsed) == ["q0.md", "q1.md", "q2.md"]
