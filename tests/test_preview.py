"""`digest preview`, as a writer uses it: a real `digest preview --port 0` on a copy of the shipped February
2025 content, driven by headless Chromium (Playwright) and httpx while the test edits the project's files.
Every wait has a generous deadline and asserts what the page shows, never how fast it changed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import run_digest
from delivery_support import digest, write_project
from test_browser import browser, watch  # noqa: F401 - the shared Chromium fixture

pytestmark = pytest.mark.slow

ORIGINAL = "Première — 北京 🎧 entry"  # the first entry's title, set before the preview starts
EDITED = "Édité — 漢字 ✓ שלום עולם 🎉 preview"
WAIT_MS = 60_000  # a re-render is well under a second; two shared cores under load can take far longer
BAND_LIGHT, BAND_DARK = "rgb(243, 244, 246)", "rgb(13, 17, 23)"  # .band in digest/theme/email.mjml: #f3f4f6, #0d1117


class Preview:
    """A running `digest preview` and the project it previews."""

    def __init__(self, root: Path, process: subprocess.Popen, log: Path, url: str):
        self.root, self.process, self.log, self.url = root, process, log, url

    @property
    def entry(self) -> Path:
        return first_entry(self.root)

    def set_title(self, title: str) -> None:
        set_title(self.entry, title)

    def output(self) -> str:
        return self.log.read_text()


def first_entry(root: Path) -> Path:
    """The entry file the tests edit: the first of February's, by name."""
    return sorted((root / "content" / "2025" / "02").glob("*.md"))[0]


def set_title(entry: Path, title: str) -> None:
    text = entry.read_text()
    entry.write_text(re.sub(r"^title: *.+$", lambda _: f'title: "{title}"', text, count=1, flags=re.M))


def until(check: Callable[[], object], what: str, timeout: float = WAIT_MS / 1000) -> object:
    """Poll `check` until it returns something true; fail naming `what` past the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def preview(tmp_path: Path) -> Iterator[Preview]:
    """`digest preview --port 0` in a fresh project; stopped with Ctrl-C (SIGINT) at the end, which must be clean."""
    root = write_project(tmp_path / "site")
    set_title(first_entry(root), ORIGINAL)
    log = tmp_path / "preview.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "digest", "preview", "--port", "0"],
            cwd=root,
            env={k: v for k, v in os.environ.items() if k != "DIGEST_CONFIG"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        found = until(
            lambda: process.poll() is not None or re.search(r"at (http://127\.0\.0\.1:\d+/)", log.read_text()),
            "the preview's URL",
        )
        if found is True:
            pytest.fail(f"digest preview exited with {process.returncode}:\n{log.read_text()}", pytrace=False)
        yield Preview(root, process, log, found.group(1))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                pytest.fail(f"digest preview ignored Ctrl-C:\n{log.read_text()}", pytrace=False)
    assert process.returncode == 0, log.read_text()
    assert log.read_text().rstrip().endswith("stopped") and "Traceback" not in log.read_text(), log.read_text()


def test_the_text_part_and_email_are_served_with_a_harmless_unsubscribe_link(preview: Preview) -> None:
    text = httpx.get(preview.url + "email.txt", timeout=10)
    html = httpx.get(preview.url + "email.html", timeout=10)

    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert ORIGINAL in text.text and ORIGINAL in html.text
    placeholder = f"{preview.url}__preview/unsubscribe"
    assert placeholder in text.text and placeholder in html.text
    assert "%%UNSUBSCRIBE" not in text.text + html.text
    assert httpx.get(placeholder, timeout=10).status_code == 200
    page = httpx.get(preview.url, timeout=10).text
    assert "Link Archive: February 2025" in page and "8 links this month" in page  # subject and preheader


def test_the_site_pages_are_served_as_built_plus_the_reload_script(preview: Preview) -> None:
    issue = httpx.get(preview.url + "site/2025/02/", timeout=10)
    index = httpx.get(preview.url + "site/", timeout=10)
    style = httpx.get(preview.url + "site/style.css", timeout=10)

    assert issue.status_code == index.status_code == style.status_code == 200
    assert ORIGINAL in issue.text and "February 2025" in index.text
    assert style.headers["content-type"].startswith("text/css")
    assert style.content == (preview.root / "templates" / "site" / "style.css").read_bytes()
    assert "/__reload" in issue.text and "/__reload" in index.text
    assert 'href="/site/2025/02/"' in index.text  # the index links into the preview, not the live site


def test_digest_toml_edits_reload_the_config_and_a_bad_key_shows_its_line(preview: Preview) -> None:
    toml = preview.root / "digest.toml"
    original = toml.read_text()
    toml.write_text(original.replace('title = "Link Archive"', 'title = "Lettre — 月刊 📬"'))
    until(lambda: "Lettre — 月刊 📬: February 2025" in httpx.get(preview.url, timeout=10).text, "the new subject")

    toml.write_text(original.replace('title = "Link Archive"', 'title = "Link Archive"\ncolour = "blue"'))
    expected = digest(preview.root, "check").stderr.strip()  # what digest check says, word for word
    assert "digest.toml:" in expected and "colour" in expected
    page = until(
        lambda: (r := httpx.get(preview.url, timeout=10).text) and 'id="problems"' in r and r, "the config error"
    )
    assert _unescape(re.search(r'id="problems">(.*?)</pre>', page, re.S).group(1)) == expected

    toml.write_text(original)
    until(lambda: "Link Archive: February 2025" in httpx.get(preview.url, timeout=10).text, "the config fixed")
    assert not (preview.root / "output").exists()


def test_ctrl_c_stops_the_preview_while_a_page_still_listens_for_reloads(preview: Preview) -> None:
    since = re.search(r"/__reload\?since=(\d+)", httpx.get(preview.url, timeout=10).text).group(1)
    port = int(preview.url.rsplit(":", 1)[1].strip("/"))
    listener = socket.create_connection(("127.0.0.1", port), timeout=30)
    listener.sendall(f"GET /__reload?since={since} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    assert b"text/event-stream" in listener.recv(4096)  # the stream is open: the fixture's Ctrl-C must still stop
    preview.process.send_signal(signal.SIGINT)
    assert preview.process.wait(timeout=30) == 0
    listener.close()


def test_only_this_machines_host_names_are_served(preview: Preview) -> None:
    assert httpx.get(preview.url, headers={"Host": "attacker.example"}, timeout=10).status_code == 400
    local = preview.url.removeprefix("http://").replace("127.0.0.1", "localhost").strip("/")
    assert httpx.get(preview.url, headers={"Host": local}, timeout=10).status_code == 200


def test_a_templates_folder_made_during_the_preview_overrides_the_theme_and_removing_it_restores_it(
    preview: Preview,
) -> None:
    templates = preview.root / "templates"
    theme_text = (templates / "email.txt").read_text()
    shutil.rmtree(templates)  # the theme in the package from now on
    templates.mkdir()
    (templates / "email.txt").write_text("Ausgabe — 特別号 ✉️\n\n" + theme_text)
    until(lambda: "Ausgabe — 特別号 ✉️" in httpx.get(preview.url + "email.txt", timeout=10).text, "the override")

    shutil.rmtree(templates)
    until(lambda: "Ausgabe" not in httpx.get(preview.url + "email.txt", timeout=10).text, "the theme again")
    assert ORIGINAL in httpx.get(preview.url + "email.txt", timeout=10).text


@pytest.mark.browser
def test_a_folder_removed_before_its_watch_starts_does_not_end_the_watch(tmp_path: Path) -> None:
    """The watch lists the folders, then starts on them: a folder removed in between (the writer deleting
    templates/ while the preview restarts its watch) made the watcher raise, and the preview stopped seeing
    edits. Here the first listing names a folder that is gone; edits must still be rendered."""
    import anyio

    from digest.config import load_config
    from digest.preview import Previewer

    root = write_project(tmp_path / "site")
    previewer = Previewer(load_config(root / "digest.toml"), root / "digest.toml", None, "https://example.invalid/u")
    previewer.refresh(first=True)
    listed, real = [], previewer.folders
    previewer.folders = lambda: real() + ((root / "gone",) if not listed and not listed.append(1) else ())  # type: ignore[method-assign]

    async def edit_until_rendered() -> None:
        stop = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(previewer.watch, stop)
            first = previewer.generation
            with anyio.fail_after(WAIT_MS / 1000):
                for n in range(10**6):
                    if previewer.generation != first:
                        break
                    set_title(first_entry(root), f"Watched again {n} — 再次 ✓")
                    await anyio.sleep(0.25)
            stop.set()
            previewer.stop()

    anyio.run(edit_until_rendered)
    assert listed and "Watched again" in previewer.snapshot.text


def test_an_edit_shows_up_in_the_open_page_without_a_reload(preview: Preview, browser) -> None:  # noqa: F811
    from playwright.sync_api import expect

    page = browser.new_page()
    problems = watch(page)
    page.goto(preview.url)
    email = page.frame_locator("#email")
    expect(email.get_by_text(ORIGINAL, exact=True)).to_be_visible(timeout=WAIT_MS)

    preview.set_title(EDITED)

    expect(email.get_by_text(EDITED, exact=True)).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#text")).to_contain_text(EDITED, timeout=WAIT_MS)
    page.goto(preview.url + "site/2025/02/")
    expect(page.get_by_text(EDITED, exact=True)).to_be_visible(timeout=WAIT_MS)
    assert not (preview.root / "output").exists(), "preview wrote output/"
    assert not (preview.root / "var" / "cache" / "render").exists(), "preview wrote the render cache"
    assert not problems, problems


@pytest.mark.browser
def test_a_broken_edit_shows_the_error_and_fixing_it_brings_the_preview_back(preview: Preview, browser) -> None:  # noqa: F811
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(preview.url)
    email = page.frame_locator("#email")
    expect(email.get_by_text(ORIGINAL, exact=True)).to_be_visible(timeout=WAIT_MS)
    good = preview.entry.read_text()

    preview.entry.write_text(good.replace("title: ", "title: [unclosed ", 1))
    expected = digest(preview.root, "check").stdout.splitlines()[0]  # the same text digest check prints
    assert expected.startswith(f"error: content/2025/02/{preview.entry.name}:2: malformed front matter")
    expect(page.locator("#problems")).to_have_text(expected, timeout=WAIT_MS)

    preview.entry.write_text(good)
    expect(email.get_by_text(ORIGINAL, exact=True)).to_be_visible(timeout=WAIT_MS)

    template = preview.root / "templates" / "email.mjml"
    theme = template.read_text()
    template.write_text(theme.replace("{% for name, entries in sections %}", "{% for name, entries in %}", 1))
    expect(page.locator("#problems")).to_contain_text(f"{template}:", timeout=WAIT_MS)
    expect(page.locator("#problems")).to_contain_text("template syntax error")

    template.write_text(theme)
    expect(email.get_by_text(ORIGINAL, exact=True)).to_be_visible(timeout=WAIT_MS)


@pytest.mark.browser
def test_the_toggles_set_the_width_and_the_colour_scheme_inside_the_email(preview: Preview, browser) -> None:  # noqa: F811
    from playwright.sync_api import expect

    page = browser.new_page(color_scheme="dark")  # the viewer's own setting must not decide what the email shows
    page.goto(preview.url)
    band = page.frame_locator("#email").locator(".band").first
    expect(band).to_be_visible(timeout=WAIT_MS)
    assert band.evaluate("e => getComputedStyle(e).backgroundColor") == BAND_LIGHT

    page.locator("[data-scheme=dark]").click()
    expect(page.locator("[data-scheme=dark]")).to_have_attribute("aria-pressed", "true", timeout=WAIT_MS)
    expect(band).to_be_visible(timeout=WAIT_MS)
    assert band.evaluate("e => getComputedStyle(e).backgroundColor") == BAND_DARK

    page.locator("[data-width='375']").click()
    expect(page.locator("[data-width='375']")).to_have_attribute("aria-pressed", "true", timeout=WAIT_MS)
    assert page.locator("#email").evaluate("e => e.contentWindow.innerWidth") == 375
    assert band.evaluate("e => getComputedStyle(e).backgroundColor") == BAND_DARK  # the scheme stays chosen


def test_no_month_with_entries_is_a_clear_error(new_project) -> None:
    project = new_project()

    result = run_digest(project.root, "preview", "--port", "0")

    assert result.code == 1
    assert "error: no entries in" in result.err and "digest add" in result.err, result.output
    assert "Traceback" not in result.output and not (project.root / "output").exists()


def test_a_month_without_entries_names_the_months_that_have_some(tmp_path: Path) -> None:
    root = write_project(tmp_path / "site")

    result = run_digest(root, "preview", "--month", "2025-03", "--port", "0")

    assert result.code == 1
    assert "no entries for 2025-03" in result.err and "2025-02" in result.err, result.output


def _unescape(html: str) -> str:
    import html as html_module

    return html_module.unescape(html).strip()
