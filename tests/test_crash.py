"""A crash at any moment of `build` or `publish` (SIGKILL, over and over) never leaves a half-written
page, feed or email where readers look: every public file under output/ is complete and is either the
previous build's or the next build's, byte for byte; every .eml in the outbox is a whole message.
Temp files may be left behind only as dotfiles (.<name>.<pid>.<hex>.tmp), which nothing serves."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from delivery_support import REPO, digest

pytestmark = pytest.mark.slow

KILLS = 25  # at a random moment in the first 1.5 s
AIMED_KILLS = 10  # just after the new build starts writing: inside the write phase
TEMP_FILE = re.compile(r"^\.(.+)\.\d+\.[0-9a-f]+\.tmp$")
LATEST = "2025-06"  # the latest shipped month: what `digest build` and `digest publish` make
NEW_ENTRY = f"---\ntitle: A late addition\nurl: https://example.com/late\ndate: {LATEST}-27\n---\n\nAdded after the first build.\n"


def project(root: Path, months: int = 18) -> Path:
    """The shipped project plus `months` generated older months, so a build writes many files."""
    shutil.copytree(REPO / "digest" / "theme", root / "templates")
    shutil.copytree(REPO / "content", root / "content")
    shutil.copy(REPO / "digest.toml", root / "digest.toml")
    for number in range(months):
        year, month = 2023 + number // 12, number % 12 + 1
        folder = root / "content" / str(year) / f"{month:02d}"
        folder.mkdir(parents=True)
        for item in range(8):
            body = (
                f"Commentary {item} on month {month}: "
                + "a paragraph of notes with a [link](https://example.com/{item}). " * 12
            )
            (folder / f"{item:02d}-generated.md").write_text(
                f"---\ntitle: Generated {year}-{month:02d} number {item}\nurl: https://example.com/{year}/{month}/{item}\n"
                f"date: {year}-{month:02d}-{item + 10}\n---\n\n{body}\n"
            )
    return root


def change(root: Path) -> None:
    """The edit between the two builds: a new entry, and a description shown on every page and feed."""
    (root / "content" / LATEST.replace("-", "/") / "late.md").write_text(NEW_ENTRY)
    config = root / "digest.toml"
    config.write_text(config.read_text().replace('description = "', 'description = "Now with more links. ', 1))


def public(folder: Path) -> dict[str, bytes]:
    """What readers can fetch: every file but the dotfiles."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def assert_complete(name: str, data: bytes) -> None:
    if name.endswith(".html"):
        assert data.rstrip().endswith(b"</html>"), f"{name} is cut short"
    elif name.endswith(".xml"):
        ET.fromstring(data)
    elif name.endswith(".json"):
        json.loads(data)
    elif name.endswith(".txt"):
        assert re.search(rb"Unsubscribe:\n\S+\n$", data), f"{name} is cut short"
    elif name.endswith(".css"):
        assert data.rstrip().endswith(b"}"), f"{name} is cut short"
    elif name.endswith(".eml"):
        message = BytesParser(policy=policy.default).parsebytes(data)
        assert message.get_content_type() == "multipart/alternative" and not message.defects, name
        parts = [part.get_content_type() for part in message.iter_parts()]
        assert parts == ["text/plain", "text/html"], (name, parts)
        assert message.get_body(("html",)).get_content().rstrip().endswith("</html>"), f"{name}: HTML part cut short"
        assert re.search(r"Unsubscribe:\r?\n\S+\s*$", message.get_body(("plain",)).get_content()), (
            f"{name}: text part cut short"
        )
    else:
        pytest.fail(f"unexpected file {name}")


def assert_old_or_new(output: Path, old: dict[str, bytes], new: dict[str, bytes]) -> str:
    """Every public file whole and either version; only dotted temp files besides. Returns 'old', 'new' or 'mixed'."""
    for path in output.rglob(".*"):
        assert path.is_file() and TEMP_FILE.match(path.name), f"unexpected hidden file {path}"
    now = public(output)
    assert set(old) <= set(now) <= set(old) | set(new), f"files appeared or vanished: {sorted(set(now) ^ set(old))}"
    for name, data in now.items():
        assert_complete(name, data)
        assert data in (old.get(name), new.get(name)), f"{name} is neither the previous nor the next build's"
    changed = [name for name in new if old.get(name) != new[name]]
    states = {"new" if now.get(name) == new[name] else "old" for name in changed}
    return states.pop() if len(states) == 1 else "mixed"


def start(root: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env["DIGEST_SECRET_KEY"] = "test-secret"  # as delivery_support.digest: Message-IDs derive from it
    return subprocess.Popen(
        [sys.executable, "-m", "digest", *args], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


def first_write(output: Path, process: subprocess.Popen, limit: float = 20) -> None:
    """Wait until the build begins writing: a temp file appears, or a file changes."""
    before = _stamps(output)
    deadline = time.monotonic() + limit
    while process.poll() is None and time.monotonic() < deadline and _stamps(output) == before:
        time.sleep(0.0005)


def _stamps(output: Path) -> dict[str, tuple[int, int]]:
    stamps = {}
    for folder, _, names in os.walk(output):
        for name in names:
            try:
                stat = os.stat(os.path.join(folder, name))
            except FileNotFoundError:  # a temp file renamed away
                continue
            stamps[os.path.join(folder, name)] = (stat.st_size, stat.st_mtime_ns)
    return stamps


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The previous and the next build's output, each from a clean build in its own copy."""
    old_root = project(tmp_path_factory.mktemp("old"))
    new_root = project(tmp_path_factory.mktemp("new"))
    change(new_root)
    digest(old_root, "build", check=True)
    digest(new_root, "build", check=True)
    old, new = public(old_root / "output"), public(new_root / "output")
    changed = [name for name in new if old.get(name) != new[name]]
    assert len(changed) >= 20 and "site/feed.xml" in changed and f"email/{LATEST}.html" in changed, changed
    return old, new


def test_killing_build_at_any_moment_leaves_the_old_or_the_new_files(tmp_path, references):
    old, new = references
    root = project(tmp_path / "victim")
    digest(root, "build", check=True)
    output = root / "output"
    assert public(output) == old
    change(root)
    rng = random.Random(20250228)
    seen = []
    for attempt in range(KILLS + AIMED_KILLS):
        _restore(root, old)  # every attempt starts from the previous build, with a cold cache: a long way to go
        shutil.rmtree(root / "var" / "cache", ignore_errors=True)
        process = start(root, "build")
        if attempt < KILLS:
            time.sleep(rng.uniform(0.0, 1.5))
        else:
            first_write(output, process)
            time.sleep(rng.uniform(0.0, 0.002 * 2 ** (attempt % 4)))  # the writes take 5 to 20 ms
        kill(process)
        seen.append(assert_old_or_new(output, old, new))
    assert "mixed" in seen, f"no kill landed inside the write phase: {seen}"
    digest(root, "build", check=True)  # and the next run finishes the job
    assert public(output) == new


def _restore(root: Path, files: dict[str, bytes]) -> None:
    """output/ exactly as a clean build of the previous content left it."""
    output = root / "output"
    shutil.rmtree(output, ignore_errors=True)
    for name, data in files.items():
        (output / name).parent.mkdir(parents=True, exist_ok=True)
        (output / name).write_bytes(data)


SUBSCRIBERS = 400


def test_killing_publish_never_leaves_a_partial_page_or_email(tmp_path, references):
    old, new = references
    root = project(tmp_path / "publish")
    digest(root, "build", check=True)
    addresses = [f"reader{n}@example.com" for n in range(SUBSCRIBERS)]
    (root / "list.csv").write_text("email\n" + "\n".join(addresses) + "\n")
    digest(root, "subscribers", "import", "list.csv", check=True)
    change(root)
    rng = random.Random(7)
    outbox = root / "outbox" / LATEST
    checked: dict[str, tuple[int, int]] = {}
    cut_mid_send = 0
    for attempt in range(12):
        before = _count(outbox)
        process = start(root, "publish")
        if attempt % 2:  # aimed: while messages are being written
            deadline = time.monotonic() + 20
            while process.poll() is None and _count(outbox) == before and time.monotonic() < deadline:
                time.sleep(0.0005)
            time.sleep(rng.uniform(0.0, 0.03))
        else:
            time.sleep(rng.uniform(0.0, 1.5))
        kill(process)
        cut_mid_send += before < _count(outbox) < SUBSCRIBERS
        assert_old_or_new(root / "output", old, new)
        for path in sorted(outbox.iterdir()) if outbox.exists() else []:
            if path.name.startswith("."):
                assert TEMP_FILE.match(path.name), path
                continue
            stat = path.stat()
            if checked.get(path.name) != (stat.st_size, stat.st_mtime_ns):  # new or rewritten since the last kill
                assert_complete(path.name, path.read_bytes())
                checked[path.name] = (stat.st_size, stat.st_mtime_ns)
    assert cut_mid_send, "no kill landed while messages were being written"
    result = digest(root, "publish")
    assert result.returncode == 0, result.stdout + result.stderr
    emails = public(outbox)
    sent: dict[str, list[str]] = {}
    for name, data in emails.items():
        message = BytesParser(policy=policy.default).parsebytes(data)
        sent.setdefault(message["To"], []).append(f"{name} ({message['Date']})")
    twice = {address: files for address, files in sent.items() if len(files) > 1}
    assert not twice, f"{len(twice)} readers got two different messages: {twice}"
    assert sorted(sent) == sorted(addresses)  # each reader once: a resend after a kill rewrites the same file
    for name, data in emails.items():
        assert_complete(name, data)
    assert public(root / "output") == new
    assert f"sent {SUBSCRIBERS}" in digest(root, "status", check=True).stdout


def _count(folder: Path) -> int:
    try:
        return sum(1 for entry in os.scandir(folder) if not entry.name.startswith("."))
    except FileNotFoundError:
        return 0
