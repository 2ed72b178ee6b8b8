"""Golden files for the shipped February 2025 month: the text part, the HTML email, the three feeds, the
issue page and the .eml a subscriber gets. Any change to what readers see shows as a readable diff here.

Regenerate them on purpose with `pytest tests/test_golden.py --update-golden`, and review the diff.
"""

from __future__ import annotations

import difflib
import re
import shutil
from pathlib import Path

import pytest
from conftest import REPO, run_digest

GOLDEN = Path(__file__).parent / "golden" / "2025-02"
SECRET = "golden-secret"  # Message-IDs and unsubscribe links depend on it


def normalised_eml(raw: bytes) -> str:
    """The message as sent, less what differs on every run: the Date and the MIME boundary."""
    text = raw.decode("utf-8")
    boundary = re.search(r'boundary="([^"]+)"', text).group(1)
    text = text.replace(boundary, "BOUNDARY")
    return re.sub(r"(?m)^Date: .*$", "Date: (when sent)", text)


@pytest.fixture(scope="module")
def built(tmp_path_factory, monkeypatch_module) -> dict[str, str]:
    root = tmp_path_factory.mktemp("golden") / "site"
    root.mkdir()
    shutil.copytree(REPO / "digest" / "theme", root / "templates")
    shutil.copytree(REPO / "content" / "2025" / "02", root / "content" / "2025" / "02")
    shutil.copy(REPO / "digest.toml", root / "digest.toml")
    monkeypatch_module.setenv("DIGEST_SECRET_KEY", SECRET)
    assert run_digest(root, "subscribers", "add", "reader@example.com", "--name", "Ann Reader").code == 0
    published = run_digest(root, "publish", "--month", "2025-02")
    assert published.code == 0, published.output
    site, email = root / "output" / "site", root / "output" / "email"
    [eml] = sorted((root / "outbox").rglob("*.eml"))
    return {
        "email.txt": (email / "2025-02.txt").read_text(),
        "email.html": (email / "2025-02.html").read_text(),
        "feed.xml": (site / "feed.xml").read_text(),
        "atom.xml": (site / "atom.xml").read_text(),
        "feed.json": (site / "feed.json").read_text(),
        "page.html": (site / "2025" / "02" / "index.html").read_text(),
        "message.eml": normalised_eml(eml.read_bytes()),
    }


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize(
    "name", ["email.txt", "email.html", "feed.xml", "atom.xml", "feed.json", "page.html", "message.eml"]
)
def test_output_matches_the_golden_file(built, name, request):
    golden = GOLDEN / name
    if request.config.getoption("--update-golden"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(built[name].encode("utf-8"))
        return
    assert golden.exists(), f"{golden} is missing: run pytest tests/test_golden.py --update-golden"
    expected = golden.read_bytes().decode("utf-8")
    if built[name] != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True), built[name].splitlines(keepends=True), f"golden/{name}", "built"
        )
        pytest.fail(
            f"{name} differs from its golden file (if on purpose: --update-golden)\n" + "".join(list(diff)[:200])
        )
