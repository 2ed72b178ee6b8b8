"""`digest add URL` without --title: the page is fetched from a real server on 127.0.0.1 and its
OpenGraph tags, <title>, charset and canonical link end up in the entry file."""

from __future__ import annotations

import pytest
import yaml
from web_pages import Site, og_page

from digest.adding import add_entry
from digest.content import parse_entry
from digest.errors import DigestError

TITLE = "Café “naïve” — 東京の夜 🚀 שלום & more"


@pytest.fixture
def web():
    site = Site().start()
    yield site
    site.stop()


def front_matter(path) -> tuple[dict, str]:
    text = path.read_text(encoding="utf-8")
    _, head, body = text.split("---\n", 2)
    return yaml.safe_load(head), body


def only_entry(project):
    [path] = project.content.rglob("*.md")
    return path


def test_title_source_note_and_canonical_url_come_from_the_page(project, web, cli):
    web.add(
        "/story",
        body=og_page(
            "Fallback title",
            lang="he",
            title=TITLE.replace("&", "&amp;").replace("“", "&ldquo;"),
            site_name="Le Monde — 世界 🌍",
            description="Une histoire\n   sur deux lignes: «citations» & <b>balises</b> — 終わり 🎉",
            canonical=f"{web.url}/story-canonical/?utm_source=feed&id=7&fbclid=abc",
        ),
        Content_Type="text/html; charset=utf-8",
    )
    result = cli(project.root, "add", f"{web.url}/story?utm_medium=social", "--date", "2025-02-12")
    assert (result.code, result.err) == (0, "")
    path = only_entry(project)
    assert result.out == f"wrote {path.relative_to(project.root)}\n"
    meta, body = front_matter(path)
    assert meta["title"] == TITLE
    assert meta["source"] == "Le Monde — 世界 🌍"
    assert meta["url"] == f"{web.url}/story-canonical/?id=7"  # the page's canonical link, without tracking
    assert body == ""
    text = path.read_text(encoding="utf-8")
    assert "# suggested note, from the page's description (a comment: readers never see it):\n" in text
    assert "#   Une histoire sur deux lignes: «citations» & <b>balises</b> — 終わり 🎉\n" in text
    config = project.config()
    entry, problems = parse_entry(path, path.read_bytes(), config.site.sections, config.site.tz)
    assert problems == []
    assert entry.title == TITLE and entry.body_html == "" and "histoire" not in repr(entry)
    assert cli(project.root, "check").code == 0


def test_title_falls_back_to_the_title_element_and_source_to_the_host(project, web, cli):
    page = "<html><head><title>\n  Plain &amp; simple — ünïcödé  </title></head><body>x</body></html>"
    web.add("/plain", body=page.encode(), Content_Type="text/html; charset=utf-8")
    url = f"http://LOCALHOST:{web.url.rsplit(':', 1)[1]}/plain"
    result = cli(project.root, "add", url, "--date", "2025-02-12")
    assert result.code == 0, result.err
    meta, _ = front_matter(only_entry(project))
    assert meta["title"] == "Plain & simple — ünïcödé"
    assert meta["source"] == "localhost"
    assert meta["url"] == f"http://localhost:{web.url.rsplit(':', 1)[1]}/plain"  # host lower-cased
    assert "suggested note" not in only_entry(project).read_text()


@pytest.mark.parametrize(
    ("charset_header", "meta", "encoding", "title"),
    [
        ("windows-1252", "", "cp1252", "Crème brûlée – “quoted”"),  # charset only in the header
        ("", '<meta charset="shift_jis">', "shift_jis", "東京の天気・ニュース"),  # only in <meta>
        ("", '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">', "koi8_r", "Привет, мир"),
        ("", "", "utf-8", "Emoji only in UTF-8 🎉 and עברית"),  # neither: UTF-8 is assumed
    ],
)
def test_non_utf8_pages_decode_by_their_charset(project, web, cli, charset_header, meta, encoding, title):
    page = f"<html><head>{meta}<title>{title}</title></head><body></body></html>".encode(encoding)
    content_type = f"text/html; charset={charset_header}" if charset_header else "text/html"
    web.add("/encoded", body=page, Content_Type=content_type)
    result = cli(project.root, "add", f"{web.url}/encoded", "--date", "2025-02-12")
    assert result.code == 0, result.err
    assert front_matter(only_entry(project))[0]["title"] == title


def test_redirects_are_followed(project, web, cli):
    result = cli(project.root, "add", f"{web.url}/moved", "--date", "2025-02-12")  # 301 to /ok
    assert result.code == 0, result.err
    meta, _ = front_matter(only_entry(project))
    assert meta["title"] == "OK"


def test_a_canonical_link_that_is_not_http_is_ignored(project, web, cli):
    web.add("/sly", body=og_page("Sly", url="javascript:alert(1)", canonical="ftp://x/"), Content_Type="text/html")
    result = cli(project.root, "add", f"{web.url}/sly?gclid=1", "--date", "2025-02-12")
    assert result.code == 0, result.err
    assert front_matter(only_entry(project))[0]["url"] == f"{web.url}/sly"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/gone", "the server answered 404 Not Found"),
        ("/broken", "the server answered 500 Internal Server Error"),
        ("/pdf", "not an HTML page (Content-Type: application/pdf)"),
        ("/loop", "more than 5 redirects"),
    ],
)
def test_a_page_that_cannot_be_read_is_a_clear_error_and_writes_nothing(project, web, cli, path, reason):
    result = cli(project.root, "add", f"{web.url}{path}", "--date", "2025-02-12")
    assert (result.code, result.out) == (1, "")
    assert result.err == f"error: could not fetch {web.url}{path}: {reason}; pass --title to add it without fetching\n"
    assert list(project.content.rglob("*")) == []


def test_a_page_without_a_title_is_an_error(project, web, cli):
    web.add("/untitled", body=b"<html><head></head><body>text</body></html>", Content_Type="text/html")
    result = cli(project.root, "add", f"{web.url}/untitled")
    assert result.err == (
        f"error: could not fetch {web.url}/untitled: the page has neither og:title nor a <title>; "
        "pass --title to add it without fetching\n"
    )


def test_a_host_that_does_not_resolve_says_so(project, cli):
    result = cli(project.root, "add", "https://nowhere.invalid/post")
    assert result.code == 1
    assert result.err.startswith("error: could not fetch https://nowhere.invalid/post: cannot connect (")
    assert result.err.endswith("); are you offline?; pass --title to add it without fetching\n")


def test_a_server_that_never_answers_times_out(project, web):
    with pytest.raises(DigestError) as caught:
        add_entry(project.config(), url=f"{web.url}/hang", title=None, fetch_timeout=0.3)
    assert str(caught.value) == (
        f"could not fetch {web.url}/hang: no answer within 0.3 s; pass --title to add it without fetching"
    )


def test_only_the_first_two_megabytes_are_read(project, web, cli):
    result = cli(project.root, "add", f"{web.url}/big", "--date", "2025-02-12")
    assert result.code == 0, result.err
    assert front_matter(only_entry(project))[0]["title"] == "Big page 📦"
    web.release.set()  # stop the server's loop if it is still writing
    assert web.big_bytes_sent < 20_000_000  # of 50 MB: the client hung up after its 2 MB


def test_no_fetch_needs_a_title(project, web, cli):
    result = cli(project.root, "add", f"{web.url}/ok", "--no-fetch")
    assert (result.code, result.err) == (
        1,
        'error: --no-fetch needs --title: pass --title "...", or leave out --no-fetch to read it from the page\n',
    )
    assert sum(web.requests.values()) == 0


def test_a_given_title_means_no_fetch_and_the_url_is_still_made_canonical(project, web, cli):
    url = f"HTTP://127.0.0.1:{web.url.rsplit(':', 1)[1]}/ok?utm_source=news&b=2&mc_cid=9#part"
    result = cli(project.root, "add", url, "--title", "Given", "--date", "2025-02-12")
    assert result.code == 0, result.err
    assert front_matter(only_entry(project))[0]["url"] == f"{web.url}/ok?b=2#part"
    assert sum(web.requests.values()) == 0


def test_a_title_is_required_without_a_url(project, cli):
    result = cli(project.root, "add", "--date", "2025-02-12")
    assert (result.code, result.err) == (1, 'error: --title is required without a URL: pass --title "..."\n')


def test_characters_yaml_refuses_never_reach_the_file(project, web, cli):
    web.add(
        "/odd",
        body=og_page("Odd", title="Bell\x07 and\u202e trick", description="Non\ufffe-character\x0b here"),
        Content_Type="text/html; charset=utf-8",
    )
    result = cli(project.root, "add", f"{web.url}/odd", "--date", "2025-02-12")
    assert result.code == 0, result.err
    path = only_entry(project)
    assert front_matter(path)[0]["title"] == "Bell and trick"
    assert "#   Non-character here\n" in path.read_text(encoding="utf-8")
