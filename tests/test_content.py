"""digest/content.py: one content file -> an Entry, or problems with file, line and what to fix."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from html_safety import executable

from digest.content import parse_entry, url_problem
from digest.render.markdown import commentary_html, with_html

SECTIONS = ("Articles and Blogs", "Papers and Reports", "News")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
FIX_YAML = "(fix the YAML between the '---' lines)"


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
    assert (entry.source, entry.tags, entry.quote, entry.draft) == (
        "Google DeepMind",
        ("scaling", "tpu"),
        "Breadcrumbs.",
        False,
    )
    assert entry.body == "- A guide."


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-02-14", datetime(2025, 2, 14, tzinfo=BERLIN)),
        ("2025-02-14 09:30:00", datetime(2025, 2, 14, 9, 30, tzinfo=BERLIN)),
        ("'2025-02-14 09:30'", datetime(2025, 2, 14, 9, 30, tzinfo=BERLIN)),
        ("2025-02-14T09:30:00+05:30", datetime(2025, 2, 14, 4, 0, tzinfo=UTC)),
        ("2025-02-28T23:30:00Z", datetime(2025, 2, 28, 23, 30, tzinfo=UTC)),
        ("'2025-02-28T23:30:00+01:00'", datetime(2025, 2, 28, 22, 30, tzinfo=UTC)),
    ],
)
def test_dates_without_an_offset_are_read_in_the_site_time_zone(value, expected):
    entry, _ = parse(f"---\ntitle: T\nurl: https://e.com/\ndate: {value}\n---\n")
    assert entry.date == expected and entry.date.utcoffset() is not None


def test_a_date_only_value_is_midnight_in_the_site_time_zone():
    text = "---\ntitle: T\nurl: https://e.com/\ndate: 2025-03-01\n---\n"
    berlin, _ = parse(text, BERLIN)
    new_york, _ = parse(text, NEW_YORK)
    assert berlin.date.astimezone(UTC) == datetime(2025, 2, 28, 23, 0, tzinfo=UTC)
    assert new_york.date.astimezone(UTC) == datetime(2025, 3, 1, 5, 0, tzinfo=UTC)


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
        ("title: ''\nurl: https://e.com/\ndate: 2025-02-01", "content/2025/02/a.md:2: missing or empty title"),
        ("title: \"\\u200b\"\nurl: https://e.com/\ndate: 2025-02-01", "content/2025/02/a.md:2: missing or empty title"),
        ("title: T\nurl: https://e.com/\ndate: last tuesday", "content/2025/02/a.md:4: unparseable date 'last tuesday'"),
        ("title: T\nurl: https://e.com/\ndate: 2025-02-30", "content/2025/02/a.md:4: unparseable date '2025-02-30'"),
        ("title: T\nurl: https://e.com/\ndate: 31/02/2025", "content/2025/02/a.md:4: unparseable date '31/02/2025'"),
        ("title: T\nurl: https://e.com/", "content/2025/02/a.md:1: missing date"),
        ("title: T\nurl: javascript:alert(1)\ndate: 2025-02-01", "content/2025/02/a.md:3: url scheme 'javascript' is not allowed in 'javascript:alert(1)' (use an http:// or https:// address)"),
        ("title: T\nurl: JavaScript:alert(1)\ndate: 2025-02-01", "content/2025/02/a.md:3: url scheme 'javascript' is not allowed in 'JavaScript:alert(1)'"),
        ("title: T\nurl: data:text/html,x\ndate: 2025-02-01", "content/2025/02/a.md:3: url scheme 'data' is not allowed"),
        ("title: T\nurl: file:///etc/passwd\ndate: 2025-02-01", "content/2025/02/a.md:3: url scheme 'file' is not allowed"),
        ("title: T\nurl: https://e.com/\ndate: 2025-02-01\nsection: Papres", "content/2025/02/a.md:5: unknown section 'Papres' (did you mean 'Papers and Reports'? use one of: Articles and Blogs, Papers and Reports, News)"),
        ("title: T\nurl: https://e.com/\ndate: 2025-02-01\nsection: Gossip", "content/2025/02/a.md:5: unknown section 'Gossip' (use one of: Articles and Blogs, Papers and Reports, News)"),
        ("title: T\nurl: https://e.com/\ndate: 2025-02-01\ntags: {a: b}", "content/2025/02/a.md:5: tags must be a list of words"),
        ("title: T\nurl: https://e.com/\ndate: 2025-02-01\ndraft: maybe", "content/2025/02/a.md:5: draft must be true or false"),
        ("title: T\nurl: https://e.com/\ndate: 2025-02-01\nquote: [a, b]", "content/2025/02/a.md:5: quote must be text"),
    ],
)  # fmt: skip
def test_each_problem_names_file_line_and_fix(front, message):
    found = errors(f"---\n{front}\n---\nBody.\n")
    assert any(e.startswith(message) for e in found), found


def test_every_problem_of_a_file_is_reported_at_once():
    found = errors("---\ntitle: ''\nurl: ftp://x\ndate: soon\nsection: Nope\n---\n")
    assert found == [
        "content/2025/02/a.md:2: missing or empty title (add a line such as 'title: \"What I read\"')",
        "content/2025/02/a.md:3: url scheme 'ftp' is not allowed in 'ftp://x' (use an http:// or https:// address)",
        "content/2025/02/a.md:4: unparseable date 'soon' (use YYYY-MM-DD or an ISO datetime such as 2025-02-28T22:59:00+01:00)",
        "content/2025/02/a.md:5: unknown section 'Nope' (use one of: Articles and Blogs, Papers and Reports, News)",
    ]


@pytest.mark.parametrize(
    ("front", "message"),
    [
        # where YAML noticed the problem
        ("title: T\nurl: https://e.com/: bad: yaml\ndate: 2025-02-01", "3: malformed front matter: mapping values are not allowed in this context"),
        ("title: T\n  url: https://e.com/\ndate: 2025-02-01", "3: malformed front matter: mapping values are not allowed in this context"),
        ("title: T\ntags:\n  - a\n - b\ndate: 2025-02-01", "5: malformed front matter: did not find expected key"),
        # an unclosed bracket or quote: the line it opened on, not where YAML gave up
        ("title: [Unclosed\nurl: https://e.com/\ndate: 2025-02-01", "2: malformed front matter: did not find expected ',' or ']'"),
        ("title: T\nurl: https://e.com/\ndate: 2025-02-01\nsource: {a: 1", "5: malformed front matter: did not find expected ',' or '}'"),
        ("title: \"Unclosed\nurl: https://e.com/\ndate: 2025-02-01", "2: malformed front matter: found unexpected end of stream"),
    ],
)  # fmt: skip
def test_malformed_yaml_names_the_line(front, message):
    assert errors(f"---\n{front}\n---\nBody.\n") == [f"content/2025/02/a.md:{message} {FIX_YAML}"]


def test_front_matter_that_is_never_closed_says_so():
    # python-frontmatter reads this as a body without metadata: "missing title" on line 2 would be wrong
    assert errors("---\ntitle: T\nurl: https://e.com/\ndate: 2025-02-01\n\nMy notes.\n") == [
        "content/2025/02/a.md:1: front matter is not closed (add a '---' line after the last key)"
    ]


def test_no_front_matter():
    assert errors("Just some text\n") == ["content/2025/02/a.md:1: no front matter (start the file with a '---' line, then 'title:', 'url:' and 'date:' lines, then '---')"]  # fmt: skip


@pytest.mark.parametrize("front", ["- a\n- b", "title My post (the colon forgotten)"])
def test_front_matter_that_is_not_a_mapping(front):
    # python-frontmatter drops such a block silently; "missing title" would send the writer looking elsewhere
    assert errors(f"---\n{front}\n---\nBody\n") == ["content/2025/02/a.md:2: front matter must be 'key: value' lines (such as 'title: What I read')"]  # fmt: skip


def test_empty_front_matter_lists_the_missing_keys():
    assert errors("---\n---\nBody\n") == [
        "content/2025/02/a.md:1: missing or empty title (add a line such as 'title: \"What I read\"')",
        "content/2025/02/a.md:1: missing date (use YYYY-MM-DD or an ISO datetime such as 2025-02-28T22:59:00+01:00)",
    ]


def test_not_utf8_names_the_line():
    found = errors(b"---\ntitle: T\nurl: https://e.com/\ndate: 2025-02-01\nsource: Caf\xe9\n---\n")
    assert found == ["content/2025/02/a.md:5: not UTF-8 text (byte 0xe9) (save the file as UTF-8)"]


def test_binary_and_huge_files_are_refused():
    assert errors(b"\x00\x01\x02binary") == ["content/2025/02/a.md: binary file, not a Markdown entry (remove it from content/)"]  # fmt: skip
    big = b"---\ntitle: T\nurl: https://e.com/\ndate: 2025-02-01\n---\n" + b"x" * 1_100_000
    assert errors(big)[0].startswith("content/2025/02/a.md: file is larger than 1,000,000 bytes")


def test_an_unknown_key_is_a_warning_with_a_suggestion():
    entry, problems = parse("---\ntitle: T\nurl: https://e.com/\ndate: 2025-02-01\nsorce: Gwern\n---\n")
    assert entry is not None and entry.source is None
    assert [str(p) for p in problems] == ["content/2025/02/a.md:5: unknown front-matter key 'sorce' is ignored (did you mean 'source'?)"]  # fmt: skip


def test_a_utf8_bom_and_crlf_line_ends_are_fine():
    entry, problems = parse("\ufeff---\r\ntitle: T\r\nurl: https://e.com/\r\ndate: 2025-02-01\r\n---\r\nBody\r\n")
    assert problems == [] and entry.title == "T" and entry.body == "Body"


def test_tags_as_a_comma_separated_string_and_whitespace_in_titles():
    entry, problems = parse(
        "---\ntitle: '  Two\n  lines  '\nurl: https://e.com/\ndate: 2025-02-01\ntags: ai, chips ,\n---\n"
    )
    assert problems == []
    assert entry.title == "Two lines" and entry.tags == ("ai", "chips")


def test_yaml_aliases_cannot_blow_up():
    bomb = (
        "---\ntitle: T\nurl: https://e.com/\ndate: 2025-02-01\n" + "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
        + "tags: *i\n---\n"
    )  # fmt: skip
    found = errors(bomb)
    assert found == ["content/2025/02/a.md:14: tags must be a list of words, such as 'tags: [ai, chips]'"]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://example.com/a?b=c#d", None),
        ("http://example.com", None),
        ("javascript:alert(1)", "url scheme 'javascript' is not allowed in 'javascript:alert(1)'"),
        (
            "data:text/html;base64,PHNjcmlwdD4=",
            "url scheme 'data' is not allowed in 'data:text/html;base64,PHNjcmlwdD4='",
        ),
        ("file:///etc/passwd", "url scheme 'file' is not allowed in 'file:///etc/passwd'"),
        ("example.com/page", "url scheme 'no scheme' is not allowed in 'example.com/page'"),
        ("https:///path", "url 'https:///path' has no host"),
        ("https://exa mple.com/", "url 'https://exa mple.com/' contains spaces or control characters"),
        ("https://example.com/\x07", "url 'https://example.com/\\x07' contains spaces or control characters"),
    ],
)
def test_url_problem(url, problem):
    assert url_problem(url) == problem


# -- commentary --------------------------------------------------------------------------------


def test_commentary_markdown_becomes_html():
    html = commentary_html(
        "*em* **strong** `code`\n\n- one\n- two\n\nsee https://example.com/x and [a](https://e.com/?a=1&b=2)"
    )
    assert "<p><em>em</em> <strong>strong</strong> <code>code</code></p>" in html
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in html
    assert '<a href="https://example.com/x">https://example.com/x</a>' in html  # bare URLs are linked
    assert '<a href="https://e.com/?a=1&amp;b=2">a</a>' in html


@pytest.mark.parametrize(
    "body",
    [
        "Raw <b onclick=alert(1)>html</b> and <script>alert(2)</script>.",
        "<img src=x onerror=alert(3)>",
        '<a href="javascript:alert(4)">a</a>',
        "[click](javascript:alert(5))",
        "[click](JaVaScRiPt:alert(6))",
        "[data](data:text/html;base64,PHNjcmlwdD4=) ![img](data:image/svg+xml;base64,PHN2Zz4=)",
        "[vb](vbscript:msgbox) [f](file:///etc/passwd)",
        "<iframe src=//evil.example></iframe>\n\n<svg/onload=alert(7)>",
    ],
)
def test_raw_html_and_script_links_in_commentary_stay_text(body):
    html = commentary_html(body)
    assert executable(html) == []
    assert "<script" not in html and "<img" not in html and "<a " not in html and "<iframe" not in html


def test_raw_html_is_shown_escaped_not_dropped():
    assert commentary_html("a <b>bold</b> claim") == "<p>a &lt;b&gt;bold&lt;/b&gt; claim</p>\n"


def test_absurdly_nested_commentary_is_flattened_to_paragraphs():
    html = commentary_html("> " * 30 + "deep\n\nnext")
    assert "<blockquote>" not in html
    assert html.endswith("deep</p>\n<p>next</p>\n") and html.startswith("<p>&gt; &gt;")


def test_with_html_fills_body_html_once():
    entry, _ = parse("---\ntitle: T\nurl: https://e.com/\ndate: 2025-02-01\n---\n\nA *note* <b>x</b>.\n")
    rendered = with_html(entry)
    assert rendered.body_html == "<p>A <em>note</em> &lt;b&gt;x&lt;/b&gt;.</p>\n"
    assert with_html(rendered) is rendered
    assert entry.body_html == ""  # entries are frozen: the original is unchanged
