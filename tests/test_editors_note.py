"""The editor's note, content/YYYY/MM/_issue.md: introduction and outro in every channel, the subject
and preheader overrides, the same sanitising as commentary, and `digest check` on it."""

from __future__ import annotations

import json
from email import message_from_bytes, policy

import feedparser
import pytest

INTRO = "Bonjour ✨ — this month: 名言, שלום, and *one* [good link](https://example.com/intro)."
OUTRO = "À bientôt 👋 — see you in [March](https://example.com/outro)."
NOTE = f"""---
subject: "Février — a special issue 🎉 שלום"
preheader: "Eight links, one letter — 名言"
outro: |
  {OUTRO}
---

{INTRO}
"""


@pytest.fixture
def noted(project):
    project.entry("first", date="2025-02-10", title="First link", body="Commentary one.")
    project.entry("second", date="2025-02-12", title="Second link", body="Commentary two.")
    project.write("2025/02/_issue.md", NOTE)
    return project


def outputs(project) -> dict[str, str]:
    out = project.root / "output"
    return {
        "html": (out / "email/2025-02.html").read_text(),
        "text": (out / "email/2025-02.txt").read_text(),
        "page": (out / "site/2025/02/index.html").read_text(),
        "rss": (out / "site/feed.xml").read_text(),
        "atom": (out / "site/atom.xml").read_text(),
        "json": (out / "site/feed.json").read_text(),
    }


def test_the_note_is_not_an_entry_and_shows_around_the_entries_everywhere(noted, cli):
    result = cli(noted.root, "build")
    assert result.code == 0, result.output
    assert result.out.startswith("built 2025-02: 2 entries")
    built = outputs(noted)
    for name in ("html", "page"):
        body = built[name]
        intro, first, last, outro = (
            body.index("Bonjour ✨"),
            body.index("First link"),
            body.index("Second link"),
            body.index("À bientôt 👋"),
        )
        assert intro < first < last < outro, name
        assert 'href="https://example.com/intro"' in body and "<em>one</em>" in body
    text = built["text"]
    assert text.index("Bonjour ✨") < text.index("First link") < text.index("Second link") < text.index("À bientôt 👋")
    assert "https://example.com/intro" in text and "https://example.com/outro" in text  # as footnotes
    for name in ("rss", "atom"):
        [item] = feedparser.parse(built[name]).entries
        assert "Bonjour ✨" in item.content[0].value and "À bientôt 👋" in item.content[0].value
        assert item.title == "Février — a special issue 🎉 שלום"
    [item] = json.loads(built["json"])["items"]
    assert "Bonjour ✨" in item["content_html"] and "À bientôt 👋" in item["content_html"]
    assert item["summary"] == "Eight links, one letter — 名言"


def test_subject_and_preheader_overrides_reach_the_message(noted, cli):
    assert cli(noted.root, "subscribers", "add", "reader@example.com").code == 0
    result = cli(noted.root, "publish")
    assert result.code == 0, result.output
    [eml] = noted.emls()
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["Subject"] == "Février — a special issue 🎉 שלום"
    html = message.get_body(("html",)).get_content()
    assert 'class="preheader"' in html and "Eight links, one letter — 名言</div>" in html
    assert "<title>Février — a special issue 🎉 שלום</title>" in html


def test_without_a_note_the_subject_comes_from_the_pattern(project, cli):
    project.entry("first", date="2025-02-10", title="First link")
    assert cli(project.root, "build").code == 0
    [item] = json.loads((project.root / "output/site/feed.json").read_text())["items"]
    assert item["title"] == "Link Archive: February 2025"
    assert item["summary"] == "1 link this month: First link"


def test_the_note_is_sanitised_like_commentary(project, cli):
    project.entry("first", date="2025-02-10")
    project.write(
        "2025/02/_issue.md",
        '---\noutro: "<img src=x onerror=alert(1)> [bad](javascript:alert(1))"\n---\n'
        "<script>alert(1)</script>\n\n# A heading\n\n![pixel](https://tracker.example/p.gif)\n",
    )
    result = cli(project.root, "build")
    assert result.code == 0, result.output
    built = outputs(project)
    assert "<script>alert(1)</script>" in built.pop("text")  # the text part shows it as the words they are
    for body in built.values():
        assert "<script" not in body and "<img src=x" not in body and 'href="javascript' not in body
    html, page = outputs(project)["html"], outputs(project)["page"]
    assert "&lt;script&gt;" in page
    assert "<h1>A heading" not in page and "<h3>A heading</h3>" in page  # below the issue's own headings
    assert 'src="https://tracker.example' not in html  # no remote image in the email


def test_a_month_with_only_a_note_is_not_an_issue(project, cli):
    project.entry("first", date="2025-01-10")
    project.write("2025/02/_issue.md", "Just an introduction.\n")
    result = cli(project.root, "build", "--month", "2025-02")
    assert result.code == 1 and "no entries for 2025-02" in result.output
    assert cli(project.root, "build").out.startswith("built 2025-01")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("---\noutro_text: hi\n---\nIntro\n", "content/2025/02/_issue.md:2: unknown front-matter key 'outro_text' (did you mean 'outro'?)"),  # noqa: E501
        ("---\nsubject: [a, b]\n---\n", "content/2025/02/_issue.md:2: subject must be text"),
        ("---\noutro: 12\npreheader: {a: 1}\n---\n", "content/2025/02/_issue.md:2: outro must be text (Markdown)"),
        ('---\nsubject: "one\\ntwo"\n---\n', "content/2025/02/_issue.md:2: subject must be one line"),
        ("---\nsubject: Fine\npreheader: [unclosed\n---\n", "content/2025/02/_issue.md:3: malformed front matter"),
        (f"---\nsubject: {'x' * 201}\n---\n", "content/2025/02/_issue.md:2: subject is 201 characters, over 200"),
    ],
)  # fmt: skip
def test_check_reports_a_bad_note_with_file_and_line(project, cli, text, expected):
    project.entry("first", date="2025-02-10")
    project.write("2025/02/_issue.md", text)
    result = cli(project.root, "check")
    assert result.code == 1
    assert f"error: {expected}" in result.output, result.output
    assert "Traceback" not in result.output
    assert cli(project.root, "build").code == 1  # nothing is built from bad input


def test_a_link_warning_in_the_note_names_its_line(project, cli):
    project.entry("first", date="2025-02-10")
    project.write("2025/02/_issue.md", "---\nsubject: Fine\n---\n\nSee [this](ftp://example.com/x).\n")
    result = cli(project.root, "check")
    assert result.code == 0, result.output
    assert "content/2025/02/_issue.md:5: link 'ftp://example.com/x' is shown as plain text" in result.output
