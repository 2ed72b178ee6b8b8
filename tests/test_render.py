"""digest/render (email HTML, text part, archive pages) and the pre-send checks in digest/checks.py."""

from __future__ import annotations

import shutil
from datetime import date

import pytest
from conftest import site_settings
from html_safety import executable

from digest.checks import email_problems, html_links
from digest.collect import load_archive
from digest.config import ConfigError
from digest.render import TemplateError
from digest.render.email import SLOT_PATTERN, render_email
from digest.render.site import render_article, render_site

FEBRUARY = date(2025, 2, 1)

TEXT_PART = """\
Link Archive: February 2025
===========================

3 links from A Writer.
Read it in your browser: https://links.example.com/2025/02/


ARTICLES AND BLOGS
------------------

* Lost link

  Just a note.


PAPERS AND REPORTS
------------------

* How to Scale Your Model (Google DeepMind)
  https://jax-ml.github.io/scaling-book/

  > A short quote worth keeping.

  - A guide to TPUs [1] and _rooflines_.
  - See https://example.com/roofline too.


YOUTUBE AND PODCASTS
--------------------

* A talk
  https://youtube.com/watch?v=x&t=1


Links
-----
[1] https://cloud.google.com/tpu


-- \n\
You receive Link Archive because you subscribed to it.
RSS: https://links.example.com/feed.xml
Atom: https://links.example.com/atom.xml
Unsubscribe:
%%SLOT%%
"""


def write_february(project) -> None:
    project.entry(
        "scaling", title="How to Scale Your Model", url="https://jax-ml.github.io/scaling-book/", date="2025-02-14",
        section="Papers and Reports", source="Google DeepMind", quote="A short quote worth keeping.",
        body="- A guide to [TPUs](https://cloud.google.com/tpu) and *rooflines*.\n- See https://example.com/roofline too.",
    )  # fmt: skip
    project.entry("no-link", title="Lost link", url=None, date="2025-02-03", body="Just a note.")
    project.entry("video", title="A talk", url="https://youtube.com/watch?v=x&t=1", date="2025-02-20", section="YouTube and Podcasts")  # fmt: skip


@pytest.fixture
def february(project):
    write_february(project)
    config = project.config()
    return load_archive(config).issue(FEBRUARY), config


def test_the_text_part_is_plain_text_with_links_as_footnotes(february):
    issue, config = february
    email = render_email(issue, config)
    assert email.text == TEXT_PART.replace("%%SLOT%%", email.slot)  # "-- " is the standard signature delimiter


def test_the_html_part_links_every_entry_in_section_order(february):
    issue, config = february
    html = render_email(issue, config).html
    assert html_links(html) == [
        "https://links.example.com/2025/02/",  # view in the browser
        "https://jax-ml.github.io/scaling-book/",
        "https://cloud.google.com/tpu",
        "https://example.com/roofline",
        "https://youtube.com/watch?v=x&t=1",
        "https://links.example.com/feed.xml",
        "https://links.example.com/atom.xml",
        html_links(html)[-1],
    ]
    assert SLOT_PATTERN.fullmatch(html_links(html)[-1])  # the unsubscribe slot, filled in per recipient
    sections = [
        html.index(f">{name}</h2>") for name in ("Articles and Blogs", "Papers and Reports", "YouTube and Podcasts")
    ]
    assert sections == sorted(sections)
    assert ">Lost link</p>" in html  # no url: the title without a link
    assert ">Google DeepMind</p>" in html and ">A short quote worth keeping.</p>" in html
    assert '<li>A guide to <a href="https://cloud.google.com/tpu"' in html and "<em>rooflines</em>" in html
    assert 'href="https://youtube.com/watch?v=x&amp;t=1"' in html


def test_the_html_part_keeps_what_mail_clients_need(february):
    issue, config = february
    html = render_email(issue, config).html
    assert html.startswith("<!DOCTYPE html>") and '<html lang="en"' in html
    assert '<meta name="color-scheme" content="light dark"' in html and "prefers-color-scheme: dark" in html
    assert "<!--[if mso" in html and 'role="presentation"' in html
    assert "@media only screen and (min-width:480px)" in html  # responsive rules survive CSS inlining
    assert '<p class="entry-title" style="display:block; margin:24px 0 2px;' in html  # inlined
    assert ">3 links this month: Lost link; How to Scale Your Model; A talk</div>" in html  # the hidden preheader
    assert "<title>Link Archive: February 2025</title>" in html


def test_the_pre_send_checks_pass_on_a_good_issue(february):
    issue, config = february
    assert email_problems(render_email(issue, config), issue, config) == []


def test_the_pre_send_checks_catch_a_missing_unsubscribe_link_and_a_link_only_in_html(project):
    write_february(project)
    text = project.root / "templates" / "email.txt"
    text.write_text(
        text.read_text().replace("Unsubscribe:\n{{ unsubscribe_url }}", "").replace("  {{ entry.url }}\n", "")
    )
    config = project.config()
    issue = load_archive(config).issue(FEBRUARY)
    assert [str(p) for p in email_problems(render_email(issue, config), issue, config)] == [
        "2025-02 email: the text part has no unsubscribe link (put the unsubscribe_url variable in the template)",
        "2025-02 email: link https://jax-ml.github.io/scaling-book/ is in the HTML but not in the text part (templates/email.txt should list every link)",
        "2025-02 email: link https://youtube.com/watch?v=x&t=1 is in the HTML but not in the text part (templates/email.txt should list every link)",
        "2025-02 email: the plain part has no unsubscribe link",  # the sample message read back says so too
    ]  # fmt: skip


def test_an_email_over_the_limit_with_overflow_refuse_is_whole_and_fails_the_check(new_project):
    settings = site_settings()
    settings["email"] = {"max_html_bytes": 5000, "overflow": "refuse"}
    project = new_project(settings=settings)
    write_february(project)
    config = project.config()
    issue = load_archive(config).issue(FEBRUARY)
    email = render_email(issue, config)
    assert len(email.warnings) == 1 and "will not be sent" in email.warnings[0] and not email.cut
    [problem] = [p for p in email_problems(email, issue, config) if "max_html_bytes" in str(p)]
    assert not problem.warning and "over [email] max_html_bytes (5,000)" in str(problem)
    assert "0 of 3 entries fit" in str(problem)


# -- hostile input -----------------------------------------------------------------------------

HOSTILE = {
    "title": "<script>alert(1)</script> & <img src=x onerror=alert(2)>",
    "source": '"><svg onload=alert(3)>',
    "quote": "<iframe src=javascript:alert(4)></iframe>",
    "url": "https://example.com/evil?a=1&b=<2>",
    "body": (
        "Raw <b onclick=alert(5)>html</b> and <script>alert(6)</script>.\n\n"
        '[click](javascript:alert(7)) [data](data:text/html;base64,PHNjcmlwdD4=) <a href="javascript:alert(8)">a</a>\n\n'
        "![pixel](data:image/svg+xml;base64,PHN2Zz4=) <img src=x onerror=alert(9)>"
    ),
}
ESCAPED_TITLE = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(2)&gt;"


@pytest.fixture
def hostile(project):
    project.entry("evil", date="2025-02-15", **HOSTILE)
    project.entry("plain", title="A plain neighbour", date="2025-02-16")
    config = project.config()
    return load_archive(config).issue(FEBRUARY), config


def test_hostile_input_is_inert_in_the_email_html(hostile):
    issue, config = hostile
    html = render_email(issue, config).html
    assert executable(html) == []
    assert ESCAPED_TITLE in html
    assert "&lt;iframe src=javascript:alert(4)&gt;&lt;/iframe&gt;</p>" in html  # the quote: Markdown, raw HTML as text
    assert '>"&gt;&lt;svg onload=alert(3)&gt;</p>' in html  # a quote in text content is harmless
    assert "Raw &lt;b onclick=alert(5)&gt;html&lt;/b&gt; and &lt;script&gt;alert(6)&lt;/script&gt;." in html
    assert not [h for h in html_links(html) if not h.startswith("https://") and not SLOT_PATTERN.fullmatch(h)]
    assert 'href="https://example.com/evil?a=1&amp;b=&lt;2&gt;"' in html or 'href="https://example.com/evil?a=1&amp;b=%3C2%3E"' in html  # fmt: skip


def test_hostile_input_is_shown_as_written_in_the_text_part_without_links(hostile):
    issue, config = hostile
    text = render_email(issue, config).text
    flat = " ".join(text.split())  # (the title line is wrapped at 76 columns)
    assert f"* {HOSTILE['title']} ({HOSTILE['source']}) {HOSTILE['url']} " in flat  # plain text: nothing to escape
    assert "[click](javascript:alert(7))" in text  # a script link stays words, never a footnote
    assert "Links\n-----" not in text and "[1]" not in text  # no footnote: every link in it was a script or data URL


def test_hostile_input_is_inert_in_the_archive_pages(hostile):
    issue, config = hostile
    articles = {issue.key: render_article(issue, config)}
    pages = {page.path: page.body.decode() for page in render_site([issue], articles, config)}
    for name in ("2025/02/index.html", "index.html"):
        assert executable(pages[name]) == [], name
        assert "<script>" not in pages[name] and "<img" not in pages[name], name
    assert ESCAPED_TITLE in pages["2025/02/index.html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages["index.html"]  # the teaser


# -- the archive -------------------------------------------------------------------------------


def test_the_archive_has_a_page_per_issue_an_index_and_the_stylesheet(project):
    project.entry("december", date="2024-12-20", title="December link")
    project.entry("february", date="2025-02-10", title="February link")
    config = project.config()
    archive = load_archive(config)
    issues = [archive.issue(m) for m in archive.months()]
    pages = {
        p.path: p.body.decode() for p in render_site(issues, {i.key: render_article(i, config) for i in issues}, config)
    }
    assert list(pages) == ["2024/12/index.html", "2025/02/index.html", "index.html", "style.css"]
    february, index = pages["2025/02/index.html"], pages["index.html"]
    assert '<link rel="canonical" href="https://links.example.com/2025/02/">' in february
    assert '<a rel="prev" href="https://links.example.com/2024/12/">← December 2024</a>' in february
    assert '<a rel="next" href="https://links.example.com/2025/02/">' in pages["2024/12/index.html"]
    assert (
        '<link rel="stylesheet" href="../../style.css">' in february
        and '<link rel="stylesheet" href="style.css">' in index
    )
    assert '<a href="https://example.com/february">February link</a>' in february
    assert index.index("February 2025") < index.index("December 2024")  # newest first
    for kind in ("rss+xml", "atom+xml", "feed+json"):
        assert f'type="application/{kind}"' in index


def test_the_article_is_plain_html_with_absolute_links_and_no_mail_markup(february):
    issue, config = february
    article = render_article(issue, config)
    assert "<table" not in article and "style=" not in article and "%%UNSUBSCRIBE_URL" not in article
    assert all(href.startswith("https://") for href in html_links(article))
    assert '<h3><a href="https://jax-ml.github.io/scaling-book/">How to Scale Your Model</a></h3>' in article


# -- template errors ---------------------------------------------------------------------------


def test_a_template_syntax_error_names_the_file_and_line(project):
    write_february(project)
    template = project.root / "templates" / "email.txt"
    lines = template.read_text().splitlines()
    lines[3] = "{% for %}"
    template.write_text("\n".join(lines) + "\n")
    config = project.config()
    with pytest.raises(TemplateError, match=r"email\.txt:4: template syntax error"):
        render_email(load_archive(config).issue(FEBRUARY), config)


def test_an_undefined_variable_and_an_unknown_mjml_tag_are_named(project):
    write_february(project)
    text, mjml = project.root / "templates" / "email.txt", project.root / "templates" / "email.mjml"
    config = project.config()
    issue = load_archive(config).issue(FEBRUARY)
    mjml.write_text(mjml.read_text().replace("<mj-divider ", "<mj-dividr "))
    with pytest.raises(TemplateError, match=r"email\.mjml: unknown MJML tag <mj-dividr"):
        render_email(issue, config)
    mjml.write_text(mjml.read_text().replace("<mj-dividr ", "<mj-divider "))
    text.write_text(text.read_text() + "{{ issue.editor }}\n")
    with pytest.raises(TemplateError, match=r"templates/email\.txt: .*'editor'"):
        render_email(issue, config)


def test_a_missing_templates_folder_that_was_named_is_a_clear_error(new_project):
    settings = site_settings()
    settings["paths"] = {"templates": "no-such-folder"}
    project = new_project(settings=settings)
    with pytest.raises(ConfigError, match=r"no-such-folder \(create it, or remove the key"):
        project.config()


def test_without_a_templates_folder_the_built_in_theme_renders(new_project):
    project = new_project()
    shutil.rmtree(project.root / "templates")
    write_february(project)
    config = project.config()
    rendered = render_email(load_archive(config).issue(FEBRUARY), config)
    assert rendered.text.startswith("Link Archive: February 2025\n") and "3 links from A Writer." in rendered.text


def test_a_site_template_overrides_only_its_own_file(new_project):
    project = new_project()
    shutil.rmtree(project.root / "templates")
    (project.root / "templates").mkdir()
    (project.root / "templates" / "email.txt").write_text("Only this: {{ issue.title }}\n")
    write_february(project)
    config = project.config()
    rendered = render_email(load_archive(config).issue(FEBRUARY), config)
    assert rendered.text.startswith("Only this: ")
    assert "<!DOCTYPE html>" in rendered.html and rendered.shown == 3  # the MJML still comes from the theme


PLAIN_PREMAILER = """
import logging, sys
import premailer
html = sys.stdin.read()
sys.stdout.write(premailer.Premailer(html, keep_style_tags=True, strip_important=False, allow_network=False,
                 disable_validation=True, cssutils_logging_level=logging.CRITICAL).transform())
"""


@pytest.mark.parametrize("month", ["2024/07", "2025/02", "2025/06"])
def test_inlining_without_the_validating_parse_gives_what_premailer_gives(project, monkeypatch, month):
    """digest.render.email._premailer skips a validation premailer makes despite disable_validation: the
    shipped months' emails inline to the same bytes as with premailer left alone (in a process of its own)."""
    import subprocess
    import sys

    from digest.render import email as email_module

    project.copy_shipped(month)
    config = project.config()
    archive = load_archive(config)
    captured = []
    inline = email_module.inline_css
    monkeypatch.setattr(email_module, "inline_css", lambda html: captured.append(html) or inline(html))
    render_email(archive.issue(archive.months()[-1]), config)
    assert captured
    for html in captured:
        plain = subprocess.run(
            [sys.executable, "-c", PLAIN_PREMAILER], input=html, capture_output=True, text=True, check=True
        ).stdout
        assert inline(html) == plain
        assert inline(html) == plain  # the second time with the style sheets' rules as the first read them


STAND_IN = """
import sys
from digest.render.email import inline_css
html = inline_css("<html><head><style>p {color: red}</style></head><body><p>x</p></body></html>")
assert 'style="color:red"' in html, html
print("urllib3" in sys.modules)
import requests  # the stand-in premailer imported: the real package on first use
print(requests.Session.__module__, type(sys.modules["requests"]).__name__)
"""


def test_inlining_does_not_import_requests_until_something_uses_it():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", STAND_IN], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "requests.sessions", "module"]
