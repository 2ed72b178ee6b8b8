"""Never a traceback: every `digest` subcommand, given random and hostile arguments and files, ends
with a message and exit 0, 1 or 2 (Hypothesis, bounded; in-process through `digest.cli.main`).

Nothing reaches the network: the adapters are the outbox, the console, or SMTP on a loopback port
nobody listens on; `serve` and a `worker` without `--once` never run (they don't end by design).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest
from conftest import REPO, run_digest, site_settings, to_toml
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

# -- the projects: a good one and broken ones, made once ---------------------------------------


def closed_port() -> int:
    """A loopback port with nothing listening: an SMTP server that can't be reached."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_site(root: Path, **tables: dict) -> Path:
    import shutil

    settings_ = site_settings("America/New_York")
    settings_["smtp"] = {"host": "127.0.0.1", "port": closed_port(), "security": "none", "timeout": 2}
    settings_["delivery"].update({"retry_backoff": 0.01, "max_attempts": 2})
    for table, values in tables.items():
        settings_.setdefault(table, {}).update(values)
    root.mkdir(parents=True)
    shutil.copytree(REPO / "digest" / "theme", root / "templates")
    shutil.copytree(REPO / "content" / "2025" / "02", root / "content" / "2025" / "02")
    (root / "digest.toml").write_text(to_toml(settings_))
    return root


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("fuzz")
    rng = random.Random(11)
    good = make_site(base / "good")
    (good / "readers.csv").write_text("email,name\nann@example.com,Ann\nbob@example.com,=HYPERLINK(1)\n")
    assert run_digest(good, "subscribers", "import", "readers.csv").code == 0  # someone to send to
    garbage_content = make_site(base / "garbage-content")
    (garbage_content / "content" / "2025" / "02" / "noise.md").write_bytes(rng.randbytes(3000))
    (garbage_content / "content" / "2025" / "02" / "half.md").write_bytes(b"---\ntitle: [\n")
    bad_toml = make_site(base / "not-utf8")
    (bad_toml / "digest.toml").write_bytes(b'[site]\ntitle = "Caf\xe9"\n')
    typed = make_site(base / "bad-types")
    (typed / "digest.toml").write_text((typed / "digest.toml").read_text() + '\n[feeds]\nkeep = "12"\n')
    corrupt = make_site(base / "corrupt-db")
    (corrupt / "var").mkdir()
    (corrupt / "var" / "digest.sqlite").write_bytes(rng.randbytes(5000))
    empty = base / "no-config"
    empty.mkdir()
    files = base / "files"
    files.mkdir()
    (files / "garbage.csv").write_bytes(rng.randbytes(4000))
    (files / "quotes.csv").write_text('email,name\n"a@example.com,"Open\nb@example.com,"x"y\n' + "c" * 200_000 + "\n")
    (files / "latin1.csv").write_bytes("email,name\nj@example.com,Jos\xe9\n".encode("latin-1"))
    (files / "noheader.csv").write_text("")
    (files / "archive.md").write_bytes(b"**[Broken](javascript:alert(1))**\n- \xff\xfe\n")
    (files / "notes.txt").write_text("2024 December - What I Have Read\n\n\u2015 nothing - [Link]\n")
    (files / "utf16.toml").write_bytes("[site]\n".encode("utf-16"))
    (files / "binary.toml").write_bytes(rng.randbytes(500))
    (files / "dir.csv").mkdir()
    return {
        "good": good, "garbage-content": garbage_content, "not-utf8": bad_toml, "bad-types": typed,
        "corrupt-db": corrupt, "no-config": empty, "files": files,
    }  # fmt: skip


# -- hostile values ------------------------------------------------------------------------------

HOSTILE_TEXT = [
    "", " ", "-", "--", "\x00", "\u202e", "\ufeff", "a" * 5000, "💥", "../../../etc/passwd", "%s%n", "{title!r}",
    "'; DROP TABLE subscribers; --", "\r\n", "NaN", "-1", "0", str(10**30), "1e309", "=1+1",
]  # fmt: skip
text = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=40))
months = st.one_of(
    st.sampled_from(["2025-02", "2024-12", "2025-13", "0000-01", "9999-12", "99999-01", "2025-2", "１９９９-０１"]),
    text,
)
addresses = st.one_of(
    st.sampled_from(
        ["reader@example.com", "=1+1@example.com", "Leser@Bücher.example", "a@b", "@", "x" * 400 + "@e.com"]
    ),
    st.emails().map(str),
    text,
)
numbers = st.one_of(st.integers(min_value=-(10**20), max_value=10**20).map(str), text)
FILE_NAMES = [
    "garbage.csv", "quotes.csv", "latin1.csv", "noheader.csv", "archive.md", "notes.txt", "dir.csv", "missing.csv",
    "utf16.toml", "binary.toml",
]  # fmt: skip


@st.composite
def paths(draw, sites_root: Path) -> str:
    choice = draw(st.one_of(st.sampled_from(FILE_NAMES), text))
    return str(sites_root / choice) if choice in FILE_NAMES else choice


@st.composite
def command(draw, files: Path) -> list[str]:
    """One subcommand with drawn arguments: valid-looking, hostile, or missing."""
    maybe = lambda flag, values: [flag, draw(values)] if draw(st.booleans()) else []  # noqa: E731
    adapter = maybe("--adapter", st.sampled_from(["outbox", "console", "smtp", "pigeon", ""]))
    kind = draw(st.sampled_from([
        "check", "build", "send-dry", "send-to", "send", "publish", "status", "schedule", "worker", "add", "import",
        "sub-add", "sub-remove", "sub-list", "sub-import", "sub-export", "help", "nonsense",
    ]))  # fmt: skip
    match kind:
        case "check" | "build" | "status":
            return [kind, *maybe("--month", months)]
        case "send-dry":
            return ["send", "--dry-run", *maybe("--month", months), *adapter]
        case "send-to":
            return ["send", "--to", draw(addresses), *maybe("--month", months), *adapter]
        case "send":
            return ["send", *maybe("--month", months), *adapter, *(["--retry-failed"] if draw(st.booleans()) else [])]
        case "publish":
            return ["publish", *maybe("--month", months), *adapter, *(["--queue-only"] if draw(st.booleans()) else [])]
        case "schedule":
            return ["schedule", *maybe("--count", numbers)]
        case "worker":
            return ["worker", "--once", *adapter]
        case "add":
            url = draw(
                st.one_of(
                    st.sampled_from(["https://example.com/x", "https://exаmple.com:99999/", "javascript:x"]), text
                )
            )
            return [
                "add",
                url,
                "--title",
                draw(text),
                *maybe("--date", text),
                *maybe("--section", text),
                *maybe("--tag", text),
            ]
        case "import":
            return ["import", *[draw(paths(files)) for _ in range(draw(st.integers(0, 3)))]]
        case "sub-add":
            return [
                "subscribers",
                "add",
                draw(addresses),
                *maybe("--name", text),
                *(["--pending"] if draw(st.booleans()) else []),
            ]
        case "sub-remove":
            return ["subscribers", "remove", draw(addresses)]
        case "sub-list" | "sub-export":
            return ["subscribers", kind[4:], *maybe("--status", st.sampled_from(["active", "bounced", "gone", ""]))]
        case "sub-import":
            return ["subscribers", "import", draw(paths(files)), *(["--pending"] if draw(st.booleans()) else [])]
        case "help":
            return [draw(st.sampled_from(["--help", "send", "subscribers", "schedule"])), "--help"]
        case _:
            return draw(st.lists(text, max_size=4))


def run_safely(root: Path, argv: list[str]):
    try:
        return run_digest(root, *argv)
    except BaseException as exc:  # what main() let through is the bug this test is for
        pytest.fail(f"digest {argv!r} in {root.name} raised {type(exc).__name__}: {exc}")


def assert_clean(root: Path, argv: list[str]) -> None:
    result = run_safely(root, argv)
    where = f"digest {argv!r} in {root.name}: exit {result.code}\n{result.output[-3000:]}"
    assert "Traceback" not in result.output, where
    assert result.code in (0, 1, 2), where


FUZZ = settings(
    max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


SITES = ["good", "garbage-content", "not-utf8", "bad-types", "corrupt-db", "no-config"]


@pytest.mark.slow
@pytest.mark.parametrize("site", SITES)  # 6 x 50 = 300 examples
def test_no_command_ever_prints_a_traceback(sites, site):
    files = sites["files"]

    configs = st.sampled_from([None] * 8 + ["digest.toml", "missing.toml", "utf16", "binary", "dir"])  # mostly its own

    @FUZZ
    @seed(SITES.index(site))  # each project its own sequence, the same on every run
    @given(argv=command(files), config=configs)
    def fuzz(argv: list[str], config: str | None) -> None:
        flags = {
            None: [], "digest.toml": ["--config", "digest.toml"], "missing.toml": ["--config", "missing.toml"],
            "utf16": ["--config", str(files / "utf16.toml")], "binary": ["--config", str(files / "binary.toml")],
            "dir": ["--config", str(files)],
        }[config]  # fmt: skip
        assert_clean(sites[site], [*flags, *argv])

    fuzz()


@pytest.mark.parametrize(
    "argv",
    [
        ["schedule", "--count", str(10**30)],
        ["schedule", "--count", "100000"],
        ["subscribers", "import", "dir.csv"],
        ["add", "https://example.com/long", "--title", "t" * 5000],
        ["send", "--adapter", "smtp", "--to", "reader@example.com"],
        ["send", "--adapter", "smtp"],
        ["status", "--month", "9999-12"],
        ["check", "--month", "0000-01"],
        ["build", "--month", "\uff12\uff10\uff12\uff15-02"],
        ["send", "--adapter", "console", "--month", "2025-02"],
        ["--config", "\x00", "check"],
        ["--config", "x" * 5000, "check"],
    ],
)
def test_hostile_arguments_found_once_stay_fixed(sites, argv):
    files = sites["files"]
    argv = [str(files / a) if a == "dir.csv" else a for a in argv]
    assert_clean(sites["good"], argv)


def test_output_to_a_full_disk_or_a_closed_pipe_is_no_traceback(sites):
    """As a shell runs it: `digest subscribers export > /dev/full`, `digest subscribers export | head -1`."""
    import os
    import subprocess
    import sys

    root = sites["good"]
    (root / "many.csv").write_text("email\n" + "".join(f"m{n}@example.com\n" for n in range(3000)))
    assert run_digest(root, "subscribers", "import", "many.csv").code == 0
    command = [sys.executable, "-m", "digest", "subscribers", "export"]
    env = {k: v for k, v in os.environ.items() if k not in ("DIGEST_CONFIG", "DIGEST_DATABASE_URL")}
    if Path("/dev/full").exists():
        with open("/dev/full", "w") as full:
            result = subprocess.run(command, cwd=root, env=env, stdout=full, stderr=subprocess.PIPE, text=True)
        assert (result.returncode, result.stderr) == (1, "error: No space left on device\n")
    reader = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader.stdout.readline()
    reader.stdout.close()  # as `head -1` does
    _, err = reader.communicate(timeout=60)
    assert reader.returncode in (0, 1) and b"Traceback" not in err, err.decode()
