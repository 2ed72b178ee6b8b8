"""A quote keeps its paragraphs and line breaks (a YAML block scalar, or Markdown) in the email, the text
part, the web page and the feeds."""

from __future__ import annotations

from datetime import date

import feedparser
import lxml.html

from digest.collect import load_archive
from digest.render.email import render_email
from digest.render.feed import render_feeds
from digest.render.site import render_article

QUOTE = (
    "Two roads diverged in a wood, and I—\nI took the one less traveled by,\n\nAnd that has made all the difference."
)
FEBRUARY = date(2025, 2, 1)


def paragraphs(html: str) -> list[list[str]]:
    """Each <p> of the quote as its lines (split at <br>)."""
    quote = lxml.html.fromstring(html).xpath("//blockquote")[0]
    out = []
    for p in quote.xpath(".//p"):
        lines, current = [], p.text or ""
        for child in p:
            if child.tag == "br":
                lines.append(current.strip())
                current = child.tail or ""
            else:
                current += child.text_content() + (child.tail or "")
        lines.append(current.strip())
        out.append(lines)
    return out


EXPECTED = [
    ["Two roads diverged in a wood, and I—", "I took the one less traveled by,"],
    ["And that has made all the difference."],
]


def test_a_block_quote_keeps_its_lines_and_paragraphs_everywhere(project):
    path = project.write(
        "2025/02/poem.md",
        "---\ntitle: The Road Not Taken\nurl: https://example.com/poem\ndate: 2025-02-10\nquote: |\n"
        + "".join(f"  {line}\n" if line else "\n" for line in QUOTE.split("\n"))
        + "---\n",
    )
    assert path.exists()
    config = project.config()
    issue = load_archive(config).issue(FEBRUARY)
    [entry] = issue.entries
    assert entry.quote == QUOTE
    email = render_email(issue, config)
    assert paragraphs(email.html) == EXPECTED
    assert (
        "  > Two roads diverged in a wood, and I—\n  > I took the one less traveled by,\n  >\n"
        "  > And that has made all the difference.\n"
    ) in email.text
    article = render_article(issue, config)
    assert paragraphs(article) == EXPECTED
    feeds = render_feeds([issue], {issue.key: article}, config)
    for xml in (feeds.rss, feeds.atom):
        [item] = feedparser.parse(xml, sanitize_html=False).entries
        assert paragraphs(item.content[0].value) == EXPECTED
