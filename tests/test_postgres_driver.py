"""PostgreSQL without surprises: a postgresql:// URL with no psycopg installed says which command
brings it, and ends without a traceback."""

from __future__ import annotations

from delivery_support import digest, write_project


def test_a_postgresql_url_without_psycopg_names_the_install_command(tmp_path):
    hidden = tmp_path / "no-psycopg"
    (hidden / "psycopg").mkdir(parents=True)  # shadows the installed driver, as if `pip install .` left it out
    (hidden / "psycopg" / "__init__.py").write_text("raise ImportError(\"No module named 'psycopg'\")\n")
    root = write_project(tmp_path / "p")
    env = {"PYTHONPATH": str(hidden), "DIGEST_DATABASE_URL": "postgresql://digest@127.0.0.1:1/digest"}
    for command in (["status"], ["subscribers", "add", "a@example.com"]):
        result = digest(root, *command, env=env)
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr and "ModuleNotFoundError" not in result.stderr
        assert (
            'a postgresql:// database needs the psycopg driver, which is not installed: pip install ".[postgres]"'
            in (result.stderr)
        )
