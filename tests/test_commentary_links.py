"""Links and images in commentary: only absolute http, https and mailto URLs become links; every other
scheme, scheme-relative and site-relative URL is plain text and `check` warns with file and line. Images
never load remote content in the email; the web page shows them only with `[site] images = true`."""

from __future__ import annotations

from datetime import date

import lxml.html
import pytest
from conftest import site_settings
from html_safety import executable

from digest.checks import email_problems
from digest.collect import load_archive
from digest.render.email import render_email
from digest.render.markdown import commentary_html, link_allowed
from digest.render.site import render_article

FEBRUARY = date(2025, 2, 1)
REFUSED = [
    "smb://fileserver/share/file.docx",
    "ssh://root@host.example",
    "search-ms:query=invoice&crumb=location:\\\\evil.example\\share",
    "ms-officecmd:eyJpZCI6M30=",
    "//evil.example/path",
    "/admin/send",
    "admin/send",
    "javascript:alert(1)",
    "vbscript:msgbox",
    "data:text/html;base64,PHNjcmlwdD4=",
    "file:///etc/passwd",
    "ftp://files.example.com/x",
    "tel:+15551234567",
    "https:/one-slash.example",
    "http://",
    "mailto:",
]
ALLOWED = ["https://example.com/a?b=1", "http://example.com/", "mailto:writer@example.com", "HTTPS://EXAMPLE.COM/"]


@pytest.mark.parametrize("url", REFUSED)
def test_a_link_to_anything_else_is_plain_text(url):
    assert not link_allowed(url)
    html = commentary_html(f"see [the file]({url}) and <{url}>")
    assert "<a" not in html and "the file" in html and executable(html) == []


@pytest.mark.parametrize("url", ALLOWED)
def test_http_https_and_mailto_links_stay_links(url):
    assert link_allowed(url)
    html = commentary_html(f"see [the page]({url})")
    [anchor] = lxml.html.fragment_fromstring(html, create_parent="div").xpath("//a")
    assert anchor.get("href") == url and anchor.text == "the page"


def test_an_image_is_a_link_with_its_alt_text_in_the_email_never_an_img():
    html = commentary_html("A chart: ![the chart](https://tracker.example/p.gif?id=42) and ![](http://t.example/x.png)")
    assert "<img" not in html
    anchors = lxml.html.fragment_fromstring(html, create_parent="div").xpath("//a")
    assert [(a.get("href"), a.text_content()) for a in anchors] == [
        ("https://tracker.example/p.gif?id=42", "the chart"),
        ("http://t.example/x.png", ""),
    ]


def test_an_image_with_a_refused_url_is_its_alt_text_only():
    html = commentary_html("![pixel](//evil.example/p.gif) ![x](smb://h/p.png)")
    assert "<img" not in html and "<a" not in html and "pixel" in html


def entries(project):
    body = (
        "Intro with [smb](smb://fileserver/share) on line one.\n\n"
        "Then [site](/admin/send) and [ok](https://ok.example/).\n\n"
        "![tracker](https://tracker.example/p.gif)"
    )
    return project.entry("links", date="2025-02-10", body=body)


def test_check_warns_with_file_and_line_for_each_link_shown_as_text(project, cli):
    path = entries(project)
    lines = path.read_text().split("\n")
    result = cli(project.root, "check")
    assert result.code == 0, result.output
    where = "content/2025/02/links.md"
    smb_line = next(n for n, line in enumerate(lines, 1) if "smb://" in line)
    site_line = next(n for n, line in enumerate(lines, 1) if "/admin/send" in line)
    image_line = next(n for n, line in enumerate(lines, 1) if "tracker" in line)
    assert f"{where}:{smb_line}: link 'smb://fileserver/share' is shown as plain text" in result.output
    assert f"{where}:{site_line}: link '/admin/send' is shown as plain text" in result.output
    assert f"{where}:{image_line}: image https://tracker.example/p.gif is shown as a link in the email" in result.output
    assert "ok.example" not in result.output


def test_the_email_page_and_feeds_load_no_remote_image_unless_the_page_opts_in(new_project):
    project = new_project()
    entries(project)
    config = project.config()
    issue = load_archive(config).issue(FEBRUARY)
    email = render_email(issue, config)
    assert "<img" not in email.html.split("<body", 1)[1] and "tracker.example/p.gif" in email.html
    article = render_article(issue, config)
    assert "<img" not in article

    settings = site_settings()
    settings["site"]["images"] = True
    shown = new_project(settings=settings)
    entries(shown)
    config = shown.config()
    issue = load_archive(config).issue(FEBRUARY)
    article = render_article(issue, config)
    [image] = lxml.html.fragment_fromstring(article, create_parent="div").xpath("//img")
    assert image.get("src") == "https://tracker.example/p.gif" and image.get("alt") == "tracker"
    assert "<img" not in render_email(issue, config).html.split("<body", 1)[1]  # never in the email


def test_check_month_compares_non_ascii_urls_after_normalisation(project):
    project.entry("idn", title="Bücher", url="https://bücher.example/wiki/Straße", date="2025-02-10",
                  body="See [the talk](https://例え.jp/パス?q=値) too.")  # fmt: skip
    config = project.config()
    issue = load_archive(config).issue(FEBRUARY)
    problems = [str(p) for p in email_problems(render_email(issue, config), issue, config) if not p.warning]
    assert problems == []


def test_content_holding_the_unsubscribe_placeholder_is_refused(project, cli):
    project.entry("grab", date="2025-02-10", url="https://evil.example/?u=%%UNSUBSCRIBE_URL%%")
    project.entry("grab2", date="2025-02-11", body="Click %%UNSUBSCRIBE_URL_0123456789abcdef0123456789abcdef%%")
    result = cli(project.root, "check")
    assert result.code == 1
    assert "content/2025/02/grab.md:3: %%UNSUBSCRIBE_URL... is the email's per-reader unsubscribe placeholder" in (
        result.output
    )
    assert "content/2025/02/grab2.md:" in result.output


def test_the_unsubscribe_slot_is_derived_from_the_email_never_from_content(project):
    project.entry("a", date="2025-02-10", title="Fake %%UNSUBSCRIBE_URL_ slot")
    assert load_archive(project.config(), strict=False).errors  # content can't hold the prefix at all
    project.entry("a", date="2025-02-10")
    config = project.config()
    issue = load_archive(config).issue(FEBRUARY)
    first, second = render_email(issue, config), render_email(issue, config)
    assert first == second and first.html.count(first.slot) == 1  # reproducible; only the template's slot
    project.entry("b", date="2025-02-11")
    other = render_email(load_archive(project.config()).issue(FEBRUARY), project.config())
    assert other.slot != first.slot
