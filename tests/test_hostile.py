"""Hostile content: each case gets a clear error or safe output; nothing executes in the email, the
archive or the feeds; nothing is read or written outside the project; memory stays bounded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import feedparser
import pytest
from delivery_support import digest, write_project
from test_pipeline import executable

ENTRY = "---\ntitle: {title}\nurl: https://example.com/{slug}\ndate: 2025-02-12\n---\n\n{body}\n"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_project(tmp_path / "site")


def add(site: Path, slug: str, title: str = "Fine", body: str = "Fine.") -> Path:
    path = site / "content" / "2025" / "02" / f"{slug}.md"
    path.write_text(ENTRY.format(title=title, slug=slug, body=body))
    return path


def outputs(site: Path) -> dict[str, str]:
    out = site / "output"
    found = {"email": (out / "email" / "2025-02.html").read_text(), "page": (out / "site" / "2025" / "02" / "index.html").read_text(),
             "index": (out / "site" / "index.html").read_text()}  # fmt: skip
    for name in ("feed.xml", "atom.xml"):
        parsed = feedparser.parse((out / "site" / name).read_bytes(), sanitize_html=False, resolve_relative_uris=False)
        found[name] = "".join(e.content[0].value for e in parsed.entries)
    found["feed.json"] = "".join(i["content_html"] for i in json.loads((out / "site" / "feed.json").read_text())["items"])
    return found


def assert_safe(site: Path) -> None:
    for name, html in outputs(site).items():
        assert executable(html) == [], name


def test_markup_and_script_urls_never_execute(site):
    add(site, "a", title='"<svg/onload=alert(1)>"', body="<img src=x onerror=alert(2)>\n\n[x](javascript:alert(3)) [y](vbscript:msgbox) [z](data:text/html,<script>)")
    add(site, "b", title='"\\u202eevil\\u200b\\u200dtitle"', body="<a href='javascript:alert(4)'>a</a> <iframe src=//evil></iframe>")
    digest(site, "build", check=True)
    assert_safe(site)


def test_right_to_left_and_zero_width_characters_are_kept_as_text(site):
    add(site, "rtl", title='"\\u202eabc\\u200bdef"')
    digest(site, "build", check=True)
    assert "\u202eabc\u200bdef" in outputs(site)["page"]


def test_a_ten_megabyte_commentary_is_refused_with_bounded_memory(site):
    add(site, "huge", body="word " * 2_100_000)
    process = subprocess.Popen([sys.executable, "-m", "digest", "build"], cwd=site, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)  # this child's own peak memory
    assert os.waitstatus_to_exitcode(status) == 1
    assert "content/2025/02/huge.md: file is larger than 1,000,000 bytes" in process.stderr.read()
    assert usage.ru_maxrss < 200 * 1024, f"peak RSS {usage.ru_maxrss / 1024:.0f} MB"
    assert not (site / "output").exists()


def test_a_binary_file_named_md_is_a_clear_error(site):
    (site / "content" / "2025" / "02" / "photo.md").write_bytes(bytes(range(256)) * 10)
    result = digest(site, "build")
    assert result.returncode == 1 and "content/2025/02/photo.md" in result.stderr and "Traceback" not in result.stderr


def test_a_symlink_out_of_content_is_refused_and_never_read(site, tmp_path):
    secret = tmp_path / "secret.md"
    secret.write_text(ENTRY.format(title="TOP SECRET", slug="secret", body="the launch codes"))
    (site / "content" / "2025" / "02" / "link.md").symlink_to(secret)
    result = digest(site, "build")
    assert result.returncode == 1 and "content/2025/02/link.md: symlink points outside the content folder" in result.stderr
    (site / "content" / "2025" / "02" / "link.md").unlink()
    digest(site, "build", check=True)
    assert all("launch codes" not in html for html in outputs(site).values())


def test_a_yaml_alias_bomb_is_refused_quickly(site):
    bomb = "---\ntitle: T\nurl: https://example.com/bomb\ndate: 2025-02-12\na: &a [x,x,x,x,x,x,x,x,x]\n"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        bomb += f"{name}: &{name} [*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous}]\n"
    (site / "content" / "2025" / "02" / "bomb.md").write_text(bomb + "source: *i\n---\n")
    process = subprocess.Popen([sys.executable, "-m", "digest", "check"], cwd=site, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1
    assert "content/2025/02/bomb.md:14: source must be text" in process.stdout.read()
    assert usage.ru_maxrss < 200 * 1024, f"peak RSS {usage.ru_maxrss / 1024:.0f} MB"


def test_deeply_nested_lists_and_quotes_render_flat_and_fast(site):
    add(site, "lists", body="\n".join("  " * n + "- level" for n in range(500)))
    add(site, "quotes", body=">" * 500 + " deep")
    result = digest(site, "build", timeout=60)
    assert result.returncode == 0, result.stderr
    page = outputs(site)["page"]
    assert page.count("<ul>") < 50 and page.count("<blockquote>") < 50
    assert_safe(site)


def test_nothing_is_written_outside_the_project(site, tmp_path):
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "site" not in p.relative_to(tmp_path).parts)
    add(site, "x", title='"../../../../etc/passwd"', body="[up](../../../etc/passwd)")
    digest(site, "build", check=True)
    digest(site, "send", "--to", "me@example.com", check=True)
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "site" not in p.relative_to(tmp_path).parts)
    assert after == before
    written = [p for p in site.rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to(site.resolve()) for p in written)
