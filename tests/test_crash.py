"""A crash at any point of `build` or `publish` (SIGKILL at random moments, repeated) never leaves a
half-written page, feed or email: readers see the previous complete version or the new one."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from email import message_from_bytes, policy
from pathlib import Path

from delivery_support import REPO, digest

KILLS = 25
NEW_ENTRY = "---\ntitle: A late addition\nurl: https://example.com/late\ndate: 2025-02-27\n---\n\nAdded after the first build.\n"


def snapshot(output: Path) -> dict[str, bytes]:
    """Every public file (temp files are dotfiles, never served)."""
    return {str(p.relative_to(output)): p.read_bytes() for p in output.rglob("*") if p.is_file() and not p.name.startswith(".")}


def complete(name: str, data: bytes) -> None:
    if name.endswith(".html"):
        assert data.rstrip().endswith(b"</html>"), name
    elif name.endswith(".xml"):
        ET.fromstring(data)
    elif name.endswith(".json"):
        json.loads(data)
    elif name.endswith(".txt"):
        assert b"Unsubscribe:" in data, name


def project(root: Path) -> Path:
    shutil.copytree(REPO / "templates", root / "templates")
    shutil.copytree(REPO / "content", root / "content")
    shutil.copy(REPO / "digest.toml", root / "digest.toml")
    return root


def test_killing_build_at_random_moments_leaves_old_or_new_files(tmp_path):
    old_root, new_root = project(tmp_path / "old"), project(tmp_path / "new")
    (new_root / "content" / "2025" / "02" / "late.md").write_text(NEW_ENTRY)
    digest(old_root, "build", check=True)
    digest(new_root, "build", check=True)
    old, new = snapshot(old_root / "output"), snapshot(new_root / "output")
    changed = [name for name in new if old.get(name) != new[name]]
    assert "site/feed.xml" in changed and "site/2025/02/index.html" in changed and "email/2025-02.html" in changed

    root = project(tmp_path / "victim")
    digest(root, "build", check=True)
    (root / "content" / "2025" / "02" / "late.md").write_text(NEW_ENTRY)
    rng = random.Random(20250228)
    env = {**os.environ, "DIGEST_SECRET_KEY": "x"}
    for _ in range(KILLS):
        shutil.rmtree(root / "var" / "cache", ignore_errors=True)  # keep every run busy long enough to be cut
        process = subprocess.Popen([sys.executable, "-m", "digest", "build"], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 1.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        for name, data in snapshot(root / "output").items():
            complete(name, data)
            assert data in (old.get(name), new.get(name)), f"{name} is neither the old nor the new version"
    digest(root, "build", check=True)
    assert snapshot(root / "output") == new


def test_killing_publish_never_leaves_a_partial_email_in_the_outbox(tmp_path):
    root = project(tmp_path / "publish")
    csv = root / "list.csv"
    csv.write_text("email\n" + "".join(f"reader{n}@example.com\n" for n in range(300)))
    digest(root, "subscribers", "import", str(csv), check=True)
    rng = random.Random(7)
    env = {**os.environ, "DIGEST_SECRET_KEY": "x"}
    for _ in range(8):
        process = subprocess.Popen([sys.executable, "-m", "digest", "publish"], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        for eml in (root / "outbox").rglob("*.eml"):
            message = message_from_bytes(eml.read_bytes(), policy=policy.default)
            assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"], eml
            assert "</html>" in message.get_body(("html",)).get_content()
    result = digest(root, "publish")
    assert result.returncode == 0, result.stderr
    assert len(list((root / "outbox" / "2025-02").glob("*.eml"))) == 300
    status = digest(root, "status", check=True).stdout
    assert "2025-02: finished; sent 300" in status
