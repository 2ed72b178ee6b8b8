"""The README's quick start stays true: CI runs exactly its test command."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def quick_start_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_quick_start_is_two_commands_that_make_their_own_venv():
    install_and_run, tests = quick_start_commands()
    assert install_and_run.startswith("python3 -m venv .venv && .venv/bin/pip install")
    assert "digest publish" in install_and_run
    assert tests.startswith("python3 -m venv .venv && .venv/bin/pip install") and "pytest" in tests


def test_ci_runs_the_readme_test_command():
    _, tests = quick_start_commands()
    assert tests in (REPO / ".ci" / "run").read_text().splitlines()
