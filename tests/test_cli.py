"""The CLI: every validation error stops build/send/publish with a clear message, and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from delivery_support import digest, write_project

GOOD = "---\ntitle: Fine\nurl: https://example.com/fine\ndate: 2025-02-10\n---\nGood.\n"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = write_project(tmp_path / "site")
    digest(root, "subscribers", "add", "reader@example.com", check=True)
    return root


def write(root: Path, name: str, text: str | bytes) -> Path:
    path = root / "content" / "2025" / "02" / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def nothing_written(root: Path) -> bool:
    outbox = root / "outbox"
    return not (root / "output").exists() and (not outbox.exists() or not any(outbox.rglob("*.eml")))


BAD = {
    "missing title": ("---\nurl: https://e.com/x\ndate: 2025-02-10\n---\n", "content/2025/02/bad.md:1: missing or empty title"),
    "unparseable date": ("---\ntitle: T\nurl: https://e.com/x\ndate: 31/02/2025\n---\n", "content/2025/02/bad.md:4: unparseable date '31/02/2025'"),
    "javascript url": ("---\ntitle: T\nurl: javascript:alert(1)\ndate: 2025-02-10\n---\n", "content/2025/02/bad.md:3: url scheme 'javascript' is not allowed"),
    "unknown section": ("---\ntitle: T\nurl: https://e.com/x\ndate: 2025-02-10\nsection: Papres\n---\n", "content/2025/02/bad.md:5: unknown section 'Papres' (did you mean 'Papers and Reports'? use one of: Articles and Blogs, Substack, Papers and Reports, YouTube and Podcasts, News)"),
    "malformed yaml": ("---\ntitle: [T\nurl: https://e.com/x\ndate: 2025-02-10\n---\n", "content/2025/02/bad.md:"),
    "not utf-8": (b"---\ntitle: Caf\xe9\nurl: https://e.com/x\ndate: 2025-02-10\n---\n", "content/2025/02/bad.md:2: not UTF-8 text (byte 0xe9) (save the file as UTF-8)"),
    "same url twice": (
        "---\ntitle: Again\nurl: https://jax-ml.github.io/scaling-book\ndate: 2025-02-20\n---\n",
        "content/2025/02/02-how-to-scale-your-model.md: same url as content/2025/02/bad.md in 2025-02: https://jax-ml.github.io/scaling-book/",
    ),
}


@pytest.mark.parametrize("case", BAD)
@pytest.mark.parametrize("command", [["build"], ["send"], ["publish"], ["check"]])
def test_invalid_content_stops_everything_and_writes_nothing(site, case, command):
    text, message = BAD[case]
    write(site, "bad.md", text)
    result = digest(site, *command)
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert message in output, output
    assert "Traceback" not in output
    assert nothing_written(site)
    if command != ["check"]:
        assert "nothing was written or sent" in result.stderr


def test_check_reports_every_problem_of_the_tree_at_once(site):
    for n, (text, _) in enumerate(BAD.values()):
        write(site, f"bad{n}.md", text)
    result = digest(site, "check")
    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(BAD)
    assert f"{len(BAD)} errors" in result.stdout


def test_an_invalid_file_in_another_month_still_stops_the_build(site):
    (site / "content" / "2019").mkdir()
    (site / "content" / "2019" / "old.md").write_text("---\ntitle: Old\ndate: whenever\n---\n")
    result = digest(site, "build", "--month", "2025-02")
    assert result.returncode == 1 and "content/2019/old.md:3: unparseable date 'whenever'" in result.stderr
    assert nothing_written(site)


def test_an_empty_month_is_a_clear_message_and_nothing_is_sent(site):
    for command in (["build", "--month", "2023-01"], ["send", "--month", "2023-01"], ["publish", "--month", "2023-01"]):
        result = digest(site, *command)
        assert result.returncode == 1
        assert result.stderr.strip() == "error: no entries for 2023-01: nothing to build or send"
    assert nothing_written(site)


def test_usage_errors_exit_2_with_a_suggestion(site):
    bad_month = digest(site, "build", "--month", "2025-13")
    assert bad_month.returncode == 2 and "'2025-13' is not a month: use YYYY-MM, such as 2025-02" in bad_month.stderr
    typo = digest(site, "buidl")
    assert typo.returncode == 2 and "No such command 'buidl'. Did you mean 'build'?" in typo.stderr
    option = digest(site, "build", "--mnth", "2025-02")
    assert option.returncode == 2 and "No such option '--mnth'. Did you mean '--month'?" in option.stderr


def test_every_command_explains_itself_with_examples(site):
    for command in ("check", "build", "send", "publish", "add", "import", "status", "serve", "schedule", "worker", "subscribers"):
        help_text = digest(site, command, "--help", check=True).stdout
        assert "Example" in help_text, command
    top = digest(site, "--help", check=True).stdout
    assert "digest build --month 2025-02" in top


@pytest.mark.parametrize(
    ("toml_edit", "message"),
    [
        (('[site]', '[site]\ncolour = "blue"'), "digest.toml:"),
        (('timezone = "America/New_York"', 'timezone = "Mars/Olympus"'), "site.timezone: unknown time zone 'Mars/Olympus'"),
        (('[sender]', '[email]\nsubject = "{title} {mnth}"\n\n[sender]'), "email.subject: unknown placeholder {mnth}"),
        (('[delivery]', '[delivery]\nbatch_size = 0'), "delivery.batch_size: Input should be greater than or equal to 1"),
        (('base_url = "https://links.example.com/"', 'base_url = "ftp://x"'), "site.base_url:"),
    ],
)
def test_a_bad_config_names_the_key(site, toml_edit, message):
    toml = site / "digest.toml"
    old, new = toml_edit
    toml.write_text(toml.read_text().replace(old, new, 1))
    result = digest(site, "check")
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_config_key_is_named_with_its_line(site):
    toml = site / "digest.toml"
    toml.write_text(toml.read_text().replace("[site]", "[site]\ncolour = 'blue'", 1))
    result = digest(site, "check")
    line = toml.read_text().splitlines().index("colour = 'blue'") + 1
    assert f"digest.toml:{line}: site.colour: unknown key" in result.stderr


def test_config_comes_from_flag_or_environment(site, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert digest(elsewhere, "--config", str(site / "digest.toml"), "check").returncode == 0
    assert digest(elsewhere, "check", env={"DIGEST_CONFIG": str(site / "digest.toml")}).returncode == 0
    missing = digest(elsewhere, "check")
    assert missing.returncode == 1 and "digest.toml: config file not found" in missing.stderr


def test_add_writes_a_correctly_named_entry_that_checks(site):
    result = digest(site, "add", "https://gwern.net/improvement", "--title", "My Ordinary Life: Improvements Since the 1990s", "--source", "Gwern",
                    "--section", "articles and blogs", "--note", "A *musing*.", "--date", "2025-02-21", check=True)  # fmt: skip
    path = site / "content" / "2025" / "02" / "my-ordinary-life-improvements-since-the-1990s.md"
    assert result.stdout.strip() == "wrote content/2025/02/my-ordinary-life-improvements-since-the-1990s.md"
    text = path.read_text()
    assert "title: 'My Ordinary Life: Improvements Since the 1990s'\n" in text and "url: https://gwern.net/improvement\n" in text
    assert text.endswith("---\n\nA *musing*.\n")
    assert digest(site, "check").returncode == 0


def test_add_refuses_bad_values_and_writes_nothing(site):
    before = sorted((site / "content").rglob("*.md"))
    bad_url = digest(site, "add", "javascript:alert(1)", "--title", "X")
    assert bad_url.returncode == 1 and "url scheme 'javascript' is not allowed" in bad_url.stderr
    bad_section = digest(site, "add", "https://e.com/", "--title", "X", "--section", "Gossip")
    assert bad_section.returncode == 1 and "unknown section 'Gossip'" in bad_section.stderr
    bad_date = digest(site, "add", "https://e.com/", "--title", "X", "--date", "someday")
    assert bad_date.returncode == 1 and "--date 'someday' is not a date" in bad_date.stderr
    assert sorted((site / "content").rglob("*.md")) == before


def test_send_dry_run_and_test_copies(site):
    dry = digest(site, "send", "--dry-run", check=True)
    assert "would go to 1 subscriber(s)" in dry.stdout
    assert nothing_written(site)
    copy = digest(site, "send", "--to", "me@example.com", check=True)
    assert "sent: me@example.com" in copy.stdout
    assert len(list((site / "outbox").rglob("*.eml"))) == 1
