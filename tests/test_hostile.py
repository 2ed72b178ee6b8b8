"""Hostile content through the real CLI (`digest check`, `digest build`, `digest send --to`): every case
ends in a clear error naming the file, or in output where nothing can run: no <script>, no on*
attributes, no javascript:/data:/vbscript: URLs in the email, the archive pages or the feeds. Memory
and time stay bounded, nothing outside content/ is read, nothing outside the project is written."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from email import message_from_bytes, policy
from html.parser import HTMLParser
from pathlib import Path

import feedparser
import pytest
from delivery_support import write_project
from html_safety import executable

FEBRUARY = Path("content") / "2025" / "02"
MAX_RSS_KB = 200 * 1024
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

# -- what a reader gets (what "nothing executable" means is tests/html_safety.py) -------------------


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return "".join(parser.parts)


def published(root: Path) -> dict[str, str]:
    """Every HTML a reader can get: site pages, the email, the feeds' item content, the outbox's HTML parts."""
    out = root / "output"
    found = {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in sorted(out.rglob("*.html"))}
    for name in ("feed.xml", "atom.xml"):
        feed = feedparser.parse((out / "site" / name).read_bytes(), sanitize_html=False, resolve_relative_uris=False)
        assert not feed.bozo, (name, feed.bozo_exception)
        for number, item in enumerate(feed.entries):
            for key in ("title", "summary"):
                found[f"{name} item {number} {key}"] = item.get(key, "")
            for part, content in enumerate(item.get("content", [])):
                found[f"{name} item {number} content {part}"] = content.value
    for number, item in enumerate(json.loads((out / "site" / "feed.json").read_text())["items"]):
        found[f"feed.json item {number}"] = item["content_html"]
    for eml in sorted((root / "outbox").rglob("*.eml")):
        message = message_from_bytes(eml.read_bytes(), policy=policy.default)
        found[str(eml.relative_to(root))] = message.get_body(("html",)).get_content()
    return found


def assert_nothing_executable(root: Path) -> dict[str, str]:
    outputs = published(root)
    assert any("email" in name for name in outputs) and any("feed.xml" in name for name in outputs)
    for name, html in outputs.items():
        assert executable(html) == [], name
    return outputs


# -- running the CLI in a fenced-off project ----------------------------------------------------

# The peak is VmHWM, this process's own high-water mark: getrusage's ru_maxrss carries the forking
# parent's peak across exec, so a test process grown large would count against the CLI.
MEASURED = (
    "import atexit, re, sys\n"
    "peak = lambda: re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
    "atexit.register(lambda: sys.stderr.write(f'\\nPEAK_RSS_KB={peak()}\\n'))\n"
    "from digest.cli import main\n"
    "main(sys.argv[1:])\n"
)


class Project:
    """A temp project (the shipped February 2025) whose HOME and TMPDIR lie beside it, so any write
    outside the project shows up in a listing of the temp folder."""

    def __init__(self, parent: Path):
        self.parent = parent
        self.root = write_project(parent / "site")
        for name in ("home", "tmp"):
            (parent / name).mkdir()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        self.env.update(
            DIGEST_SECRET_KEY="test-secret",
            HOME=str(parent / "home"),
            TMPDIR=str(parent / "tmp"),
            XDG_CACHE_HOME=str(parent / "home" / ".cache"),
        )

    def write(self, name: str, content: str | bytes, folder: Path = FEBRUARY) -> Path:
        path = self.root / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return path

    def outside(self) -> dict[str, tuple[int, int]]:
        listing = {}
        for path in sorted(self.parent.rglob("*")):
            relative = path.relative_to(self.parent)
            if relative.parts[0] != "site":
                stat = path.lstat()
                listing[str(relative)] = (stat.st_size, stat.st_mtime_ns)
        return listing

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """The CLI as a user runs it, with its own peak RSS (`peak_kb`) and wall time (`seconds`)."""
        before = self.outside()
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-c", MEASURED, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=_cap_memory,
        )
        result.seconds = time.monotonic() - started
        assert result.returncode >= 0, (
            f"digest {' '.join(args)} died of signal {-result.returncode}:\n{result.stderr[-2000:]}"
        )
        assert "PEAK_RSS_KB=" in result.stderr, result.stderr[-2000:]
        result.peak_kb = int(result.stderr.rsplit("PEAK_RSS_KB=", 1)[1].split()[0])
        result.stderr = result.stderr.rsplit("\nPEAK_RSS_KB=", 1)[0]
        assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
        assert self.outside() == before, "something was written outside the project"
        return result


def _cap_memory() -> None:
    """4 GB of address space: a regression fails its test with MemoryError instead of taking the machine."""
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def entry(
    title: str = "Fine",
    url: str | None = "https://example.com/fine",
    date: str = "2025-02-12",
    body: str = "Fine.",
    **extra: str,
) -> str:
    """An entry file; every value goes through JSON, which YAML reads as a double-quoted string."""
    fields = {"title": title, "url": url, "date": date, **extra}
    front = "".join(f"{key}: {json.dumps(value)}\n" for key, value in fields.items() if value is not None)
    return f"---\n{front}---\n\n{body}\n"


# -- markup and script URLs: shown as text, never run -------------------------------------------

MARKUP = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "'><iframe src=javascript:alert(1)></iframe>",
    '<a href="javascript:alert(1)">x</a>',
    "</mj-text></mj-column><mj-raw><script>alert(1)</script></mj-raw>",
    "]]><script>alert(1)</script><![CDATA[",
    "<!--<script>alert(1)</script>-->",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "<style>body{background:url(javascript:alert(1))}</style>",
    "<base href=javascript:alert(1)//>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "{{ 7*7 }}{% if true %}x{% endif %}",
]
SCRIPT_LINKS = [
    "[a](javascript:alert(1))",
    "[b](JaVaScRiPt:alert(1))",
    "[c](&#106;avascript:alert(1))",
    "[d](java&#9;script:alert(1))",
    "[e](vbscript:msgbox(1))",
    "[f](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![g](data:image/png;base64,iVBORw0KGgo=)",  # markdown-it lets data:image/... through: dropped since
    "[h](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "[i](DATA:image/gif;base64,R0lGODlhAQABAAAAACw=)",
    "<javascript:alert(1)>",
    "[j][r]\n\n[r]: javascript:alert(1)",
    "[k](file:///etc/passwd)",
    "[l](&#1;javascript:alert(1))",
    "[m](<javascript:alert(1)>)",
    '[n](https://ok.example/"onmouseover="alert(1))',
    '![o](https://ok.example/x.png "t\\" onerror=\\"alert(1)")',
    "[fine](https://ok.example/fine)",
]


def test_markup_and_script_urls_are_shown_as_text_and_never_run(project):
    for number, markup in enumerate(MARKUP):
        project.write(
            f"m{number:02d}.md",
            entry(title=markup, url=f"https://example.com/m{number}", source=markup, quote=markup, body=markup),
        )
    project.write("links.md", entry(title="Links", url="https://example.com/links", body="\n\n".join(SCRIPT_LINKS)))
    check = project.run("check")
    assert check.returncode == 0, check.stdout
    build = project.run("build")
    assert build.returncode == 0, build.stderr
    assert project.run("send", "--to", "me@example.com").returncode == 0  # the outbox .eml too
    outputs = assert_nothing_executable(project.root)
    page = visible_text(outputs["output/site/2025/02/index.html"])
    email = visible_text(outputs["output/email/2025-02.html"])
    for markup in MARKUP:
        assert markup in page and markup in email, markup  # the writer's words, as text
    assert 'href="https://ok.example/fine"' in outputs["output/site/2025/02/index.html"]  # ordinary links still work
    footnotes = (project.root / "output" / "email" / "2025-02.txt").read_text().split("\nLinks\n-----\n", 1)[1]
    assert not re.search(
        r"^\[\d+\] (?i:javascript|vbscript|data|file):", footnotes, re.MULTILINE
    )  # the text part links nothing of it


BAD_URLS = [
    "javascript:alert(1)", "JAVASCRIPT:alert(1)", " javascript:alert(1)", "java\tscript:alert(1)", "data:text/html,<script>alert(1)</script>",
    "data:image/png;base64,iVBORw0KGgo=", "vbscript:msgbox(1)", "file:///etc/passwd", "//evil.example/x", "http:///nohost",
    "https://example.com/\u202egnp.exe", "https://example.com/\x01", "https://example.com/\ufffe",
]  # fmt: skip


def test_a_script_or_data_url_as_the_entry_url_is_a_clear_error(project):
    for number, url in enumerate(BAD_URLS):
        project.write(f"url-{number:02d}.md", entry(title="Bad", url=url))
    check = project.run("check")
    assert check.returncode == 1 and f"{len(BAD_URLS)} errors, 0 warnings" in check.stdout, check.stdout
    for number, url in enumerate(BAD_URLS):
        assert f"content/2025/02/url-{number:02d}.md:3: url " in check.stdout, url
    build = project.run("build")
    assert build.returncode == 1 and "nothing was written or sent" in build.stderr
    assert not (project.root / "output").exists()


# -- invisible and direction-changing characters ------------------------------------------------


def test_right_to_left_overrides_and_zero_width_characters_stay_in_their_title(project):
    project.write(
        "rtl.md",
        entry(
            title="\u202eevil\u200b\u200dtitle",
            url="https://example.com/rtl",
            source="\u202edrawkcab",
            date="2025-02-01",
        ),
    )
    project.write(
        "zw.md", entry(title="zero\u200bwidth\u2060joined\ufeff", url="https://example.com/zw", date="2025-02-02")
    )
    assert project.run("build").returncode == 0
    outputs = assert_nothing_executable(project.root)
    page = outputs["output/site/2025/02/index.html"]
    assert "\u202eevil\u200b\u200dtitle</a></h3>" in page  # kept as written, alone in its element
    preheaders = [outputs["output/email/2025-02.html"].split("this month: ", 1)[1].split("<", 1)[0]]
    preheaders += [v for k, v in outputs.items() if k.startswith("feed.xml") and k.endswith("summary")]
    preheaders += [
        item["summary"] for item in json.loads((project.root / "output" / "site" / "feed.json").read_text())["items"]
    ]
    assert not any(
        ch in text for text in preheaders for ch in BIDI_CONTROLS
    )  # no title reverses the next in a joined line
    index = outputs["output/site/index.html"]
    assert "<bdi>\u202eevil\u200b\u200dtitle</bdi>" in index  # the teaser isolates each title


def test_a_title_with_nothing_visible_is_a_clear_error(project):
    titles = ["\u200b", "\u200b\u200d\u2060", "\ufeff", "\u202e", " \u00a0 "]
    for number, title in enumerate(titles):
        project.write(f"blank-{number}.md", entry(title=title, url=f"https://example.com/{number}"))
    check = project.run("check")
    assert check.returncode == 1, check.stdout
    for number in range(len(titles)):
        assert f"content/2025/02/blank-{number}.md:2: missing or empty title" in check.stdout, check.stdout


# -- files that are not entries -----------------------------------------------------------------

NOT_ENTRIES = {
    "binary": (bytes(range(256)) * 40, "content/2025/02/bad.md:2: not UTF-8 text"),
    "png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), "content/2025/02/bad.md:1: not UTF-8 text"),
    "nul": (entry().encode() + b"\x00\x00", "content/2025/02/bad.md: binary file"),
    "escape codes": (
        entry(body="\x1b[31mred\x1b[0m").encode(),
        "content/2025/02/bad.md:7: unprintable character U+001B",
    ),
    "form feed": (
        entry(body="page one\x0cpage two").encode(),
        "content/2025/02/bad.md:7: unprintable character U+000C",
    ),
    "noncharacter": (entry(body="a\ufffeb").encode(), "content/2025/02/bad.md:7: unprintable character U+FFFE"),
    "control in title": (
        entry(title="bell\x07").encode(),
        "content/2025/02/bad.md:2: title contains the unprintable character U+0007",
    ),
    "control in source": (
        entry(source="a\x1bb").encode(),
        "content/2025/02/bad.md:5: source contains the unprintable character U+001B",
    ),
    "february 30": (
        entry(date="2025-02-30").encode().replace(b'"2025-02-30"', b"2025-02-30"),
        "content/2025/02/bad.md:4: unparseable date '2025-02-30'",
    ),
    "year 1": (
        entry(date="0001-01-01T00:00:00+14:00").encode(),
        "content/2025/02/bad.md:4: date 0001-01-01T00:00:00+14:00 is out of range",
    ),
    "year 9999": (
        entry(date="9999-12-31T23:00:00-12:00").encode(),
        "content/2025/02/bad.md:4: date 9999-12-31T23:00:00-12:00 is out of range",
    ),
    "offset of a day": (
        b"---\ntitle: T\ndate: 2025-02-01 10:00:00 +25:00\n---\n",
        "content/2025/02/bad.md:3: unparseable date",
    ),
    "lone surrogate": (
        b'---\ntitle: "\\ud800"\ndate: 2025-02-01\n---\n',
        "content/2025/02/bad.md:2: malformed front matter",
    ),
    "no front matter": (b"just text\n", "content/2025/02/bad.md:1: no front matter"),
    "yaml list": (b"---\n- a\n- b\n---\n", "content/2025/02/bad.md:2: front matter must be 'key: value' lines"),
    "python object": (
        b"---\ntitle: !!python/object/apply:os.system [touch /tmp/pwned]\ndate: 2025-02-01\n---\n",
        "content/2025/02/bad.md:2: malformed front matter",
    ),
}


def test_a_file_that_is_no_entry_is_a_clear_error(project):
    for number, (raw, _) in enumerate(NOT_ENTRIES.values()):
        project.write(f"bad-{number:02d}.md", raw)
    check = project.run("check")
    build = project.run("build")
    assert check.returncode == 1 and build.returncode == 1 and "nothing was written or sent" in build.stderr
    for number, (case, (_, message)) in enumerate(NOT_ENTRIES.items()):
        message = message.replace("bad.md", f"bad-{number:02d}.md")
        assert message in check.stdout and message in build.stderr, (case, check.stdout)
    assert not (project.root / "output").exists()


def test_a_ten_megabyte_commentary_is_refused_in_bounded_memory(project):
    project.write("huge.md", entry(body="All work and no play. " * 480_000))  # 10.5 MB
    for command in ("check", "build"):
        result = project.run(command)
        assert (
            result.returncode == 1
            and "content/2025/02/huge.md: file is larger than 1,000,000 bytes" in result.stdout + result.stderr
        )
        assert result.peak_kb < MAX_RSS_KB, f"{command}: peak RSS {result.peak_kb / 1024:.0f} MB"
    assert not (project.root / "output").exists()


# -- symlinks out of content/ ---------------------------------------------------------------------

SECRET = "the launch codes are 0000"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["file", "relative", "folder", "loop", "dangling outside"])
def test_a_symlink_out_of_content_is_refused_and_never_read(project, kind):
    secret = project.parent / "secret.md"
    secret.write_text(entry(title="TOP SECRET", url="https://example.com/secret", body=SECRET))
    (project.parent / "private").mkdir()
    (project.parent / "private" / "more.md").write_text(
        entry(title="TOP SECRET", url="https://example.com/more", body=SECRET)
    )
    link = project.root / FEBRUARY / "link.md"
    if kind == "file":
        link.symlink_to(secret)
    elif kind == "relative":
        link.symlink_to(Path("../../../../secret.md"))
    elif kind == "folder":
        link = project.root / "content" / "2025" / "03"
        link.symlink_to(project.parent / "private", target_is_directory=True)
    elif kind == "loop":
        link.symlink_to(Path("link.md"))
    else:
        link.symlink_to(project.parent / "gone.md")
    shown = str(link.relative_to(project.root))
    check = project.run("check")
    assert check.returncode == 1 and f"{shown}: symlink points outside the content folder" in check.stdout, check.stdout
    build = project.run("build")
    assert build.returncode == 1 and shown in build.stderr
    link.unlink()
    assert project.run("build").returncode == 0
    everything = [p.read_bytes() for p in project.root.rglob("*") if p.is_file() and "content" not in p.parts]
    assert not any(SECRET.encode() in data or b"TOP SECRET" in data for data in everything)
    assert all(SECRET not in text for text in (check.stdout, check.stderr, build.stdout, build.stderr))


# -- YAML bombs ---------------------------------------------------------------------------------


def test_a_billion_laughs_in_front_matter_is_refused_fast_in_bounded_memory(project):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    )
    for key in ("title", "date", "section", "draft", "tags", "source", "url"):
        fields = {k: v for k, v in {"title": "T", "date": "2025-02-12", "quote": "Q"}.items() if k != key}
        front = "".join(f"{k}: {v}\n" for k, v in list(fields.items())[:2])
        project.write(f"bomb-{key}.md", f"---\n{front}{bomb}{key}: *i\n---\n")
    check = project.run("check", timeout=60)
    assert check.returncode == 1 and check.seconds < 20, check.seconds
    assert check.peak_kb < MAX_RSS_KB, f"peak RSS {check.peak_kb / 1024:.0f} MB"
    for key in ("title", "date", "section", "draft", "tags", "source", "url"):
        assert f"content/2025/02/bomb-{key}.md:13:" in check.stdout, key  # the key's line, a short message
    assert max(len(line) for line in check.stdout.splitlines()) < 300


def test_front_matter_nested_a_hundred_thousand_deep_is_refused_not_a_crash(project):
    project.write("deep.md", "---\ntitle: T\ndate: 2025-02-12\nx: " + "[" * 100_000 + "]" * 100_000 + "\n---\n")
    project.write(
        "deeper.md",
        "---\ntitle: T\ndate: 2025-02-12\nx:\n" + "".join(" " * n + "- a:\n" for n in range(0, 400, 2)) + "---\n",
    )
    check = project.run("check")  # libyaml recursed until the process died of SIGSEGV
    assert check.returncode == 1 and check.peak_kb < MAX_RSS_KB
    assert "content/2025/02/deep.md:1: malformed front matter: nested more than 100 levels deep" in check.stdout
    assert "content/2025/02/deeper.md:1: malformed front matter" in check.stdout


# -- commentary that is hard to parse ------------------------------------------------------------

ABSURD = {
    "nested lists": "\n".join("  " * n + "- level" for n in range(500)),
    "nested ordered lists": "\n".join("   " * n + "1. level" for n in range(500)),
    "nested quotes": ">" * 500 + " deep",
    "spaced quotes": "> " * 500 + "deep",
    "quoted lists": "> - " * 500 + "deep",
    "list marker chain": "- " * 100_000 + "x",  # 30 s in the parser, then SIGSEGV
    "nested emphasis": "*" * 150_000 + "a" + "*" * 150_000,  # SIGSEGV when the tree was freed
    "nested underscores": "_" * 150_000 + "a" + "_" * 150_000,
    "nested images": "![" * 50_000 + "a" + "](b)" * 50_000,  # SIGSEGV
    "nested strikethrough": "~~a " * 30_000 + "b" + " a~~" * 30_000,  # 54 s, then SIGSEGV
    "strikethrough pairs": "~~a~~ " * 40_000,  # quadratic
    "reference definitions": "".join(f"[r{n}]: https://example.com/{n}\n" for n in range(20_000)),  # quadratic: minutes
    "quoted reference definitions": "> [a]: b\n" * 20_000,
    "unclosed code in a link": "See [the `spec](https://example.com/spec) for details.",  # a Rust panic
    "unclosed code in link text": "[`" * 1000,
}


@pytest.mark.slow
def test_absurd_commentary_builds_fast_without_a_crash_and_renders_safely(project):
    for number, (name, body) in enumerate(ABSURD.items()):
        project.write(
            f"absurd-{number:02d}.md", entry(title=name, url=f"https://example.com/absurd/{number}", body=body)
        )
    build = project.run("build", timeout=120)  # several of these killed the process or took minutes
    assert build.returncode == 0, build.stderr[-2000:]
    assert build.seconds < 60, f"build took {build.seconds:.0f} s"
    assert build.peak_kb < 600 * 1024, f"peak RSS {build.peak_kb / 1024:.0f} MB"
    assert "panicked" not in build.stderr  # the "[`" case is rewritten before the parser sees it
    outputs = assert_nothing_executable(project.root)
    page = outputs["output/site/2025/02/index.html"]
    assert (
        page.count("<ul>") < 40
        and page.count("<ol>") < 40
        and page.count("<blockquote>") < 60
        and page.count("<em>") < 200
    )
    assert (
        "See the `spec for details." in visible_text(page) and 'href="https://example.com/spec"' in page
    )  # still a link
    text = (project.root / "output" / "email" / "2025-02.txt").read_text()
    assert "* nested lists" in text and "level" in text
