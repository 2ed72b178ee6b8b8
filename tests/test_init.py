"""`digest init`: a new site from nothing, checked by the real config loader and the real pipeline.

The issue's own case runs the installed console script in an empty folder outside the repository (no
templates/, nothing copied from here): init, build, add a subscriber, send to the outbox, and the one
message that arrives parses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from datetime import datetime
from email import message_from_bytes, policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.config import load_config
from digest.content import parse_entry
from digest.scaffold import InitError, SiteAnswers, check_base_url, init_site

TITLE = "Café — 读书笔记"
DIGEST = Path(sys.executable).with_name("digest")  # the console script of this venv


def files_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_init_writes_a_commented_config_that_loads_and_one_entry_of_this_month(tmp_path, cli):
    result = cli(
        tmp_path, "init", "site", "--title", TITLE, "--base-url", "https://links.example.com",
        "--timezone", "Asia/Shanghai", "--author", "Zoë Ünï",
    )  # fmt: skip
    assert result.code == 0, result.output
    site = tmp_path / "site"
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    entries = [name for name in files_in(site) if name.startswith("content/")]
    assert files_in(site) == sorted(["digest.toml", *entries]) and len(entries) == 1  # nothing else: no templates/
    assert entries[0].startswith(f"content/{now:%Y}/{now:%m}/") and entries[0].endswith(".md")
    assert result.out.startswith(f"wrote site/digest.toml and site/{entries[0]}\n")

    config = load_config(site / "digest.toml")
    assert config.site.title == TITLE and config.sender.name == TITLE
    assert config.site.author == "Zoë Ünï"
    assert config.site.base_url == "https://links.example.com/"  # the trailing slash added
    assert config.site.timezone == "Asia/Shanghai"
    assert config.sender.address == "digest@links.example.com"
    assert config.delivery.adapter == "outbox" and config.store.url == "sqlite:///var/digest.sqlite"
    assert config.paths.templates == site / "templates"  # the default: overrides only when the folder exists

    text = (site / "digest.toml").read_text(encoding="utf-8")
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert len(comments) >= 15 and "DIGEST_SECRET_KEY" in text and "digest templates copy" in text
    assert set(tomllib.loads(text)) >= {"site", "sender", "paths", "email", "delivery", "smtp", "store", "schedule"}

    entry_path = site / entries[0]
    entry, problems = parse_entry(entry_path, entry_path.read_bytes(), config.site.sections, config.site.tz)
    assert entry is not None and not [p for p in problems if not p.warning]
    assert (entry.date.year, entry.date.month) == (now.year, now.month) and entry.url
    assert entry.section == config.site.sections[0]
    checked = cli(site, "check")
    assert checked.code == 0 and checked.out.startswith("ok: content is valid"), checked.output


def test_without_options_and_without_a_terminal_it_asks_nothing_and_uses_the_defaults(tmp_path, cli):
    (tmp_path / "here").mkdir()
    result = cli(tmp_path / "here", "init")  # the folder defaults to "."
    assert result.code == 0, result.output
    assert (
        result.out.splitlines()[1] == "next: digest build   (then 'digest subscribers add ADDRESS' and 'digest send')"
    )
    config = load_config(tmp_path / "here" / "digest.toml")
    assert config.site.title == "My Link Digest" and config.site.timezone == "UTC"
    assert config.site.base_url == "https://digest.example.com/"


def test_a_missing_folder_is_created_nested(tmp_path, cli):
    assert cli(tmp_path, "init", "a/b/c", "--title", "Deep").code == 0
    assert load_config(tmp_path / "a/b/c/digest.toml").site.title == "Deep"


def test_an_existing_digest_toml_is_refused_and_nothing_is_written(tmp_path, cli):
    (tmp_path / "digest.toml").write_text("# mine\n")
    result = cli(tmp_path, "init", ".", "--title", "Other")
    assert result.code == 1
    assert result.err == "error: digest.toml: already exists; nothing was written (edit it, or init another folder)\n"
    assert files_in(tmp_path) == ["digest.toml"] and (tmp_path / "digest.toml").read_text() == "# mine\n"


def test_a_file_in_the_folder_s_place_is_refused(tmp_path, cli):
    (tmp_path / "notes.txt").write_text("mine\n")
    result = cli(tmp_path, "init", "notes.txt")
    assert result.code == 2
    assert "Error: Invalid value for '[DIR]': Directory 'notes.txt' is a file." in result.err
    with pytest.raises(InitError, match="notes.txt: is a file, not a folder; nothing was written"):
        init_site(tmp_path / "notes.txt", SiteAnswers())
    assert files_in(tmp_path) == ["notes.txt"]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        (
            "--timezone",
            "Mars/Olympus_Mons",
            "unknown time zone 'Mars/Olympus_Mons': use an IANA name such as Europe/Berlin",
        ),
        ("--timezone", "../../etc/passwd", "unknown time zone '../../etc/passwd'"),
        (
            "--base-url",
            "ftp://links.example.com/",
            "'ftp://links.example.com/' is not a web address: use the http:// or https:// URL",
        ),
        ("--base-url", "links.example.com", "'links.example.com' is not a web address"),
        ("--base-url", "https:///nohost", "'https:///nohost' is not a web address"),
        ("--base-url", "https://a b.example/", "'https://a b.example/' is not a web address"),
    ],
)
def test_a_bad_timezone_or_base_url_is_a_usage_error_and_writes_nothing(tmp_path, cli, option, value, message):
    result = cli(tmp_path, "init", "new", "--title", "T", option, value)
    assert result.code == 2, result.output
    assert f"Error: Invalid value for '{option}': {message}" in result.err
    assert "Traceback" not in result.output and not (tmp_path / "new").exists()


def test_titles_that_toml_must_escape_survive_the_round_trip(tmp_path):
    title = 'Quotes "and" back\\slashes — עברית 📬'
    site = init_site(tmp_path / "s", SiteAnswers(title=title, base_url="http://127.0.0.1:8000"))
    config = load_config(site.config_path)
    assert config.site.title == title and config.site.base_url == "http://127.0.0.1:8000/"
    assert config.sender.address == "digest@example.com"  # an IP can't be a mail domain: the placeholder


def test_an_idn_base_url_gives_a_sender_address_in_punycode(tmp_path):
    site = init_site(tmp_path / "s", SiteAnswers(base_url="https://www.bücher.example/"))
    assert load_config(site.config_path).sender.address == "digest@xn--bcher-kva.example"


def test_the_checks_are_plain_library_functions_too():
    assert check_base_url(" https://x.example/path ") == "https://x.example/path/"
    assert check_base_url("HTTPS://Links.example") == "https://Links.example/"
    with pytest.raises(InitError):
        check_base_url("javascript:alert(1)")


def _run(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    result = subprocess.run([str(DIGEST), *args], cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"digest {' '.join(args)}: {result.stdout}{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


@pytest.mark.slow
def test_init_then_build_then_send_in_an_empty_folder_with_nothing_from_this_repo(tmp_path):
    folder = tmp_path / "fresh"
    folder.mkdir()
    _run(folder, "init", "--title", TITLE, "--base-url", "https://links.example.com/", "--timezone", "Europe/Paris")
    built = _run(folder, "build")
    assert built.stdout.startswith("built ") and ": 1 entry, email " in built.stdout
    key = built.stdout.split()[1].rstrip(":")
    assert not (folder / "templates").exists()  # the theme came from the package
    for page in ("output/site/index.html", f"output/site/{key[:4]}/{key[5:]}/index.html", "output/site/style.css"):
        assert TITLE in (folder / page).read_text(encoding="utf-8") or page.endswith(".css")
    _run(folder, "subscribers", "add", "reader@example.com", "--name", "Zoë 读者")
    sent = _run(folder, "send")
    assert sent.stdout.startswith(f"{key}: sent 1, retried 0, failed 0"), sent.stdout
    again = _run(folder, "send")  # the delivery log knows: nothing twice
    assert again.stdout.startswith(f"{key}: sent 0,"), again.stdout

    emls = sorted((folder / "outbox").rglob("*.eml"))
    assert len(emls) == 1
    message = message_from_bytes(emls[0].read_bytes(), policy=policy.strict)
    assert not message.defects
    assert TITLE in str(message["Subject"]) and message["From"].addresses[0].display_name == TITLE
    assert message["To"].addresses[0].addr_spec == "reader@example.com"
    assert message["To"].addresses[0].display_name == "Zoë 读者"
    assert message["List-Unsubscribe"] and message["Message-ID"]
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert TITLE in html and TITLE in text and "https://commonmark.org/help/" in html
    assert (folder / "var" / "secret.key").is_file()  # no DIGEST_SECRET_KEY: a key of its own, as documented


@pytest.mark.slow
def test_in_a_terminal_without_options_it_asks_and_checks_each_answer(tmp_path):
    """A real pseudo-terminal: the answers are typed, a bad URL is asked again, Enter takes the default."""
    import pty
    import select

    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")} | {"PYTHONIOENCODING": "utf-8"}
    process = subprocess.Popen(
        [str(DIGEST), "init", "asked"], cwd=tmp_path, env=env, stdin=slave, stdout=slave, stderr=slave
    )
    os.close(slave)
    os.write(master, f"{TITLE}\nftp://nope\nhttps://links.example.com\n\n\n".encode())
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        try:
            chunk = os.read(master, 4096) if ready else b""
        except OSError:  # the child closed the terminal
            chunk = b""
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert process.wait(timeout=60) == 0, seen.decode(errors="replace")
    said = seen.decode("utf-8", errors="replace")
    assert "Title [My Link Digest]:" in said and "Base URL [https://digest.example.com/]:" in said
    assert "'ftp://nope' is not a web address" in said and "Time zone [UTC]:" in said
    config = load_config(tmp_path / "asked" / "digest.toml")
    assert config.site.title == TITLE and config.site.base_url == "https://links.example.com/"
    assert config.site.timezone == "UTC" and config.site.author == f"The {TITLE} writer"


NO_NUL = st.characters(blacklist_characters="\x00")  # an argv can't hold one; main() refuses it


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    title=st.one_of(st.text(NO_NUL, max_size=60), st.sampled_from(["\x7f", 'a "quoted" \\ title', "\t\n"])),
    base_url=st.one_of(
        st.text(NO_NUL, max_size=40),
        st.sampled_from(["https://x.example", "http://[::1]:8000/a", "https://", "HTTP://0"]),
    ),
    timezone=st.one_of(
        st.text(NO_NUL, max_size=30), st.sampled_from(["Europe/Berlin", "UTC", "Asia/Kolkata", "/etc/passwd"])
    ),
)
def test_any_input_gives_a_site_that_loads_or_a_clear_error_never_a_traceback(tmp_path, cli, title, base_url, timezone):
    folder = tmp_path / "fuzz"
    shutil.rmtree(folder, ignore_errors=True)
    result = cli(tmp_path, "init", "fuzz", "--title", title, "--base-url", base_url, "--timezone", timezone)
    assert result.code in (0, 1, 2) and "Traceback" not in result.output, result.output
    if result.code == 0:
        config = load_config(folder / "digest.toml")
        assert config.site.base_url.startswith(("http://", "https://")) and config.site.base_url.endswith("/")
        assert config.site.title == (title.strip() or "My Link Digest")
        assert len(list((folder / "content").rglob("*.md"))) == 1
    else:
        assert result.err.strip() and not (folder / "digest.toml").exists()
