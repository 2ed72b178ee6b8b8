"""digest/cli.py: every validation error stops build, send and publish with the file and line, the
right exit code (1 bad input or nothing to do, 2 usage), and nothing written to output/ or the outbox.

Commands run in-process through `digest.cli.main` (the `cli` fixture); two run the installed
console script, as a user would."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from email import message_from_bytes, policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import SECTIONS, site_settings, to_toml

from digest.content import parse_entry

BERLIN = ZoneInfo("Europe/Berlin")
LISTED = "use one of: " + ", ".join(SECTIONS)
GOOD = "---\ntitle: Fine\nurl: https://example.com/fine\ndate: 2025-02-10\n---\nGood.\n"

# name -> (file content, the exact problem line; {name} is the file's name)
BAD = {
    "missing title": ("---\nurl: https://example.com/x\ndate: 2025-02-10\n---\n", "content/2025/02/{name}:1: missing or empty title (add a line such as 'title: \"What I read\"')"),
    "empty title": ("---\ntitle: ''\nurl: https://example.com/x\ndate: 2025-02-10\n---\n", "content/2025/02/{name}:2: missing or empty title (add a line such as 'title: \"What I read\"')"),
    "unparseable date": ("---\ntitle: T\nurl: https://example.com/x\ndate: 31/02/2025\n---\n", "content/2025/02/{name}:4: unparseable date '31/02/2025' (use YYYY-MM-DD or an ISO datetime such as 2025-02-28T22:59:00+01:00)"),
    "javascript url": ("---\ntitle: T\nurl: javascript:alert(1)\ndate: 2025-02-10\n---\n", "content/2025/02/{name}:3: url scheme 'javascript' is not allowed in 'javascript:alert(1)' (use an http:// or https:// address)"),
    "data url": ("---\ntitle: T\nurl: data:text/html;base64,PHNjcmlwdD4=\ndate: 2025-02-10\n---\n", "content/2025/02/{name}:3: url scheme 'data' is not allowed in 'data:text/html;base64,PHNjcmlwdD4=' (use an http:// or https:// address)"),
    "file url": ("---\ntitle: T\nurl: file:///etc/passwd\ndate: 2025-02-10\n---\n", "content/2025/02/{name}:3: url scheme 'file' is not allowed in 'file:///etc/passwd' (use an http:// or https:// address)"),
    "unknown section": ("---\ntitle: T\nurl: https://example.com/x\nsection: Papres\ndate: 2025-02-10\n---\n", f"content/2025/02/{{name}}:4: unknown section 'Papres' (did you mean 'Papers and Reports'? {LISTED})"),
    "malformed yaml": ("---\ntitle: T\nurl: https://example.com/x: y\ndate: 2025-02-10\n---\n", "content/2025/02/{name}:3: malformed front matter: mapping values are not allowed in this context (fix the YAML between the '---' lines)"),
    "unclosed bracket": ("---\ntitle: [Unclosed\nurl: https://example.com/x\ndate: 2025-02-10\n---\n", "content/2025/02/{name}:2: malformed front matter: did not find expected ',' or ']' (fix the YAML between the '---' lines)"),
    "not utf-8": (b"---\ntitle: Caf\xe9\nurl: https://example.com/x\ndate: 2025-02-10\n---\n", "content/2025/02/{name}:2: not UTF-8 text (byte 0xe9) (save the file as UTF-8)"),
    "no front matter": ("Just some notes\n", "content/2025/02/{name}:1: no front matter (start the file with a '---' line, then 'title:', 'url:' and 'date:' lines, then '---')"),
    "same url twice": ("---\ntitle: Again\nurl: https://EXAMPLE.com/fine/\ndate: 2025-02-20\n---\n", "content/2025/02/{name}:3: same url as content/2025/02/fine.md in 2025-02: https://EXAMPLE.com/fine/ (merge the two entries or remove one)"),
}  # fmt: skip
REFUSING = [["build"], ["send"], ["publish"], ["send", "--to", "me@example.com"], ["send", "--dry-run"], ["check"]]


@pytest.fixture
def site(project, cli):
    """A valid project with one February entry and one subscriber: every command would write something."""
    project.write("2025/02/fine.md", GOOD)
    assert cli(project.root, "subscribers", "add", "reader@example.com").code == 0
    return project


def test_a_valid_site_does_write_output_and_mail(site, cli):
    """The control for every 'nothing written' below."""
    built = cli(site.root, "build")
    assert built.code == 0 and built.out.startswith("built 2025-02: 1 entry, email ")
    assert {"output/email/2025-02.html", "output/email/2025-02.txt", "output/site/feed.xml"} <= {p.relative_to(site.root).as_posix() for p in site.written()}  # fmt: skip
    sent = cli(site.root, "send")
    assert sent.code == 0 and sent.out.startswith("2025-02: sent 1, retried 0, failed 0")
    assert len(site.emls()) == 1


@pytest.mark.parametrize("case", BAD)
@pytest.mark.parametrize("command", REFUSING, ids=" ".join)
def test_invalid_content_stops_every_command_and_writes_nothing(site, cli, case, command):
    text, message = BAD[case]
    site.write("2025/02/bad.md", text)
    result = cli(site.root, *command)
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    if command == ["check"]:
        assert f"error: {message.format(name='bad.md')}\n" in result.out
        assert result.out.endswith("1 error, 0 warnings in content\n")
    else:
        assert (
            result.err == f"error: {message.format(name='bad.md')}\n1 problem in content; nothing was written or sent\n"
        )
    assert site.written() == []


def test_check_reports_every_problem_of_the_tree_at_once(site, cli):
    expected = []
    for number, (text, message) in enumerate(BAD.values()):
        name = f"bad{number:02d}.md"
        site.write(f"2025/02/{name}", text)
        expected.append(f"error: {message.format(name=name)}")
    site.write("2025/02/no-url.md", "---\ntitle: Lost link\ndate: 2025-02-11\n---\n")
    result = cli(site.root, "check")
    assert result.code == 1
    lines = result.out.splitlines()
    assert sorted(line for line in lines if line.startswith("error: ")) == sorted(expected)
    assert "warning: content/2025/02/no-url.md: no url: the title renders without a link" in lines
    assert lines[-1] == f"{len(BAD)} errors, 1 warning in content"


def test_an_invalid_file_in_another_month_still_stops_the_build(site, cli):
    site.write("2019/01/old.md", "---\ntitle: Old\ndate: whenever\n---\n")
    result = cli(site.root, "build", "--month", "2025-02")
    assert result.code == 1
    assert result.err.startswith("error: content/2019/01/old.md:3: unparseable date 'whenever'")
    assert site.written() == []


@pytest.mark.parametrize("command", [["build"], ["send"], ["publish"], ["check"], ["send", "--dry-run"], ["send", "--to", "me@example.com"]], ids=" ".join)  # fmt: skip
def test_an_empty_month_is_a_clear_message_exit_1_and_nothing_written(site, cli, command):
    result = cli(site.root, *command, "--month", "2023-01")
    assert (result.code, result.out, result.err) == (1, "", "error: no entries for 2023-01: nothing to build or send\n")
    assert site.written() == []


def test_no_content_at_all_is_a_clear_message(project, cli):
    result = cli(project.root, "build")
    assert result.code == 1
    assert result.err == f"error: no entries in {project.content}: add one with 'digest add URL --title ...'\n"
    assert project.written() == []


@pytest.mark.parametrize("month", ["2025-13", "2025-00", "2025/02", "feb", "25-02", ""])
def test_a_bad_month_is_a_usage_error(site, cli, month):
    result = cli(site.root, "build", "--month", month)
    assert result.code == 2
    assert f"Invalid value for '--month': {month!r} is not a month: use YYYY-MM, such as 2025-02" in result.err
    assert site.written() == []


@pytest.mark.parametrize(
    ("typed", "meant"), [("buidl", "build"), ("sned", "send"), ("publsh", "publish"), ("chekc", "check")]
)
def test_a_mistyped_command_suggests_the_right_one(site, cli, typed, meant):
    result = cli(site.root, typed)
    assert result.code == 2
    assert f"No such command '{typed}'. Did you mean '{meant}'?" in result.err


def test_a_mistyped_option_suggests_the_right_one(site, cli):
    result = cli(site.root, "build", "--mnth", "2025-02")
    assert result.code == 2 and "No such option '--mnth'. Did you mean '--month'?" in result.err


# -- digest.toml --------------------------------------------------------------------------------


def with_setting(table: str, key: str, value: object) -> dict:
    settings = site_settings()
    settings.setdefault(table, {})[key] = value
    return settings


def line_of(toml: str, text: str) -> int:
    return toml.splitlines().index(text) + 1


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (with_setting("site", "colour", "blue"), 'digest.toml:{line}: site.colour: unknown key (check the spelling; see the README for the keys this table takes)'),
        (with_setting("site", "timezone", "Mars/Olympus"), "digest.toml:{line}: site.timezone: unknown time zone 'Mars/Olympus': use an IANA name such as Europe/Berlin (got 'Mars/Olympus')"),
        (with_setting("email", "subject", "{title} {mnth}"), "digest.toml:{line}: email.subject: unknown placeholder {{mnth}}; use count, key, month, month_name, title, year (got '{{title}} {{mnth}}')"),
        (with_setting("site", "base_url", "ftp://links.example.com/"), "digest.toml:{line}: site.base_url: 'ftp://links.example.com/' is not a valid value here"),
        (with_setting("sender", "address", "not-an-address"), "digest.toml:{line}: sender.address: 'not-an-address' is not a valid email address: An email address must have an @-sign. (got 'not-an-address')"),
        (with_setting("feeds", "keep", 0), "digest.toml:{line}: feeds.keep: Input should be greater than or equal to 1 (got 0)"),
        (with_setting("delivery", "adapter", "pigeon"), "digest.toml:{line}: delivery.adapter: Input should be 'outbox', 'console', 'smtp', 'postmark', 'ses' or 'mailgun' (got 'pigeon')"),
        (with_setting("site", "sections", ["News", "news"]), "digest.toml:{line}: site.sections: sections must be unique (got ['News', 'news'])"),
    ],
)  # fmt: skip
def test_a_bad_config_value_is_named_with_its_key_and_line(new_project, cli, settings, message):
    project = new_project(settings=settings)
    project.write("2025/02/fine.md", GOOD)
    toml = project.toml.read_text()
    key = message.split(": ")[1].split(".")[-1]
    line = next(n for n, text in enumerate(toml.splitlines(), 1) if text.startswith(f"{key} = "))
    for command in (["check"], ["build"]):
        result = cli(project.root, *command)
        assert result.code == 1
        assert result.err == f"error: {message.format(line=line)}\n", result.err
    assert project.written() == []


def test_every_bad_key_is_reported_at_once(new_project, cli):
    settings = with_setting("site", "timezone", "Nowhere/Land")
    settings["sender"].pop("address")
    settings["feeds"] = {"kept": 3}
    project = new_project(settings=settings)
    result = cli(project.root, "check")
    assert result.code == 1
    assert result.err.splitlines() == [
        "error: digest.toml:7: site.timezone: unknown time zone 'Nowhere/Land': use an IANA name such as Europe/Berlin (got 'Nowhere/Land')",
        "digest.toml: sender.address: required key is missing",
        "digest.toml:18: feeds.kept: unknown key (check the spelling; see the README for the keys this table takes)",
    ]  # fmt: skip


def test_invalid_toml_names_the_line(new_project, cli):
    project = new_project(toml=to_toml(site_settings()).replace('title = "Link Archive"', 'title = "Link Archive'))
    result = cli(project.root, "check")
    assert result.code == 1 and result.err.startswith("error: digest.toml:2: not valid TOML:")


def test_config_comes_from_the_folder_or_the_flag(site, cli, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    missing = cli(elsewhere, "check")
    assert missing.code == 1
    assert (
        missing.err
        == "error: digest.toml: config file not found (run digest in the folder with digest.toml, or pass --config PATH)\n"
    )
    assert cli(elsewhere, "--config", str(site.toml), "check").code == 0


# -- add, send --------------------------------------------------------------------------------


def test_add_writes_an_entry_that_parses_back_to_the_same_values(site, cli):
    result = cli(
        site.root, "add", "https://gwern.net/improvement", "--title", "My Ordinary Life: Improvements Since the 1990s",
        "--source", "Gwern", "--section", "articles and blogs", "--note", "A *musing* on [progress](https://example.com/p).",
        "--quote", "Things got better: quietly.", "--tag", "history", "--tag", "tech", "--date", "2025-02-21",
    )  # fmt: skip
    assert (result.code, result.err) == (0, "")
    assert result.out == "wrote content/2025/02/my-ordinary-life-improvements-since-the-1990s.md\n"
    path = site.content / "2025" / "02" / "my-ordinary-life-improvements-since-the-1990s.md"
    config = site.config()
    entry, problems = parse_entry(path, path.read_bytes(), config.site.sections, config.site.tz)
    assert problems == []
    assert (entry.title, entry.url, entry.section, entry.source, entry.quote, entry.tags, entry.draft) == (
        "My Ordinary Life: Improvements Since the 1990s", "https://gwern.net/improvement", "Articles and Blogs", "Gwern",
        "Things got better: quietly.", ("history", "tech"), False,
    )  # fmt: skip
    assert entry.date == datetime(2025, 2, 21, tzinfo=BERLIN)
    assert entry.body == "A *musing* on [progress](https://example.com/p)."
    assert cli(site.root, "check").code == 0


def test_add_files_an_entry_under_its_local_month(site, cli):
    # 23:30 UTC on Feb 28 is 00:30 on March 1 in Berlin: the file goes to 2025/03, the instant is kept
    result = cli(site.root, "add", "https://example.com/late", "--title", "Late", "--date", "2025-02-28T23:30:00+00:00")
    assert result.out == "wrote content/2025/03/late.md\n"
    config = site.config()
    path = site.content / "2025" / "03" / "late.md"
    entry, _ = parse_entry(path, path.read_bytes(), config.site.sections, config.site.tz)
    assert entry.date == datetime(2025, 3, 1, 0, 30, tzinfo=BERLIN)


def test_add_without_a_url_warns_but_writes(site, cli):
    result = cli(site.root, "add", "--title", "Phi-4 Technical Report", "--date", "2025-02-12")
    assert result.code == 0 and result.out == "wrote content/2025/02/phi-4-technical-report.md\n"
    assert result.err.startswith("warning: ") and result.err.endswith("content/2025/02/phi-4-technical-report.md: no url: the title renders without a link\n")  # fmt: skip


def test_add_warnings_name_the_file_as_the_writer_sees_it(site, cli):
    result = cli(site.root, "add", "--title", "Phi-4 Technical Report", "--date", "2025-02-12")
    assert (
        result.err == "warning: content/2025/02/phi-4-technical-report.md: no url: the title renders without a link\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["javascript:alert(1)", "--title", "X"], "error: url scheme 'javascript' is not allowed in 'javascript:alert(1)': use an http:// or https:// address\n"),
        (["https://e.com/", "--title", "X", "--section", "Gossip"], f"error: unknown section 'Gossip' ({LISTED})\n"),
        (["https://e.com/", "--title", "X", "--date", "someday"], "error: --date 'someday' is not a date: use YYYY-MM-DD or an ISO datetime such as 2025-02-28T22:59:00+01:00\n"),
        (["https://e.com/", "--title", "   ", "--date", "2025-02-12"], "error: missing or empty title (add a line such as 'title: \"What I read\"')\n"),
    ],
)  # fmt: skip
def test_add_refuses_bad_values_and_writes_no_file(site, cli, args, message):
    before = sorted(p for p in site.content.rglob("*") if p.is_file())
    result = cli(site.root, "add", *args)
    assert (result.code, result.err) == (1, message)
    assert sorted(p for p in site.content.rglob("*") if p.is_file()) == before


def test_a_refused_add_leaves_no_empty_folders(site, cli):
    result = cli(site.root, "add", "https://e.com/", "--title", "X", "--section", "Gossip", "--date", "2025-03-02")
    assert result.code == 1
    assert not (site.content / "2025" / "03").exists()


def test_add_needs_a_title_when_it_may_not_fetch_one(site, cli):
    result = cli(site.root, "add", "https://e.com/", "--no-fetch")
    assert result.code == 1 and "--no-fetch needs --title" in result.err


def test_send_dry_run_writes_nothing(site, cli):
    result = cli(site.root, "send", "--dry-run")
    assert result.code == 0
    assert result.out == "dry run: 2025-02 ('Link Archive: February 2025') would go to 1 subscriber(s); 0 already have it; nothing sent\n"  # fmt: skip
    assert site.written() == []


def test_send_to_one_address_writes_one_eml_and_logs_nothing(site, cli):
    result = cli(site.root, "send", "--to", "x@example.com")
    assert (result.code, result.out) == (0, "sent: x@example.com\n")
    [eml] = site.emls()
    assert eml.parent == site.root / "outbox" / "2025-02"
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["To"] == "x@example.com" and message["Subject"] == "Link Archive: February 2025"
    assert not (site.root / "output").exists()  # a test copy renders, it doesn't build
    again = cli(site.root, "send", "--dry-run")  # a test copy is not a delivery: the subscriber still gets it
    assert "would go to 1 subscriber(s); 0 already have it" in again.out


# -- the installed console script ---------------------------------------------------------------

DIGEST = Path(sys.executable).parent / "digest"


def console(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(DIGEST), *args], cwd=root, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(root)})  # fmt: skip


def test_the_console_script_suggests_and_exits_2(site):
    result = console(site.root, "buidl")
    assert result.returncode == 2 and "No such command 'buidl'. Did you mean 'build'?" in result.stderr


def test_the_console_script_reports_bad_content_without_a_traceback(site):
    site.write("2025/02/a.md", BAD["unknown section"][0])
    result = console(site.root, "publish")
    assert result.returncode == 1
    assert result.stderr == (
        f"error: content/2025/02/a.md:4: unknown section 'Papres' (did you mean 'Papers and Reports'? {LISTED})\n"
        "1 problem in content; nothing was written or sent\n"
    )
    assert site.written() == []
