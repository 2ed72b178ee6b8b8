"""`digest templates copy` and `digest templates list`: the theme ships in the package; a site's templates
folder overrides it file by file. Every test starts from `digest init` (no templates/ at all)."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.render import THEME, theme_files


@pytest.fixture
def site(tmp_path, cli) -> Path:
    assert cli(tmp_path, "init", "site", "--title", "Café — 读书笔记", "--timezone", "Europe/Berlin").code == 0
    return tmp_path / "site"


def copied(site: Path) -> list[str]:
    folder = site / "templates"
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_copy_with_no_names_copies_every_theme_file_keeping_subfolders(site, cli):
    result = cli(site, "templates", "copy")
    assert result.code == 0, result.output
    names = theme_files()
    assert copied(site) == names and "site/style.css" in names and "email.mjml" in names
    assert all((site / "templates" / n).read_bytes() == (THEME / n).read_bytes() for n in names)
    assert result.out.splitlines() == [f"copied {n}" for n in names] + [
        f"{len(names)} copied into templates, 0 skipped"
    ]


def test_copy_named_files_and_a_folder(site, cli):
    assert cli(site, "templates", "copy", "email.mjml", "site/style.css").code == 0
    assert copied(site) == ["email.mjml", "site/style.css"]
    assert cli(site, "templates", "copy", "site/").code == 0
    assert copied(site) == ["email.mjml", *[n for n in theme_files() if n.startswith("site/")]]


def test_an_existing_file_is_skipped_and_said_so_unless_force(site, cli):
    assert cli(site, "templates", "copy", "email.txt").code == 0
    mine = site / "templates" / "email.txt"
    mine.write_text("my own text part — mine\n", encoding="utf-8")
    result = cli(site, "templates", "copy", "email.txt", "welcome.txt")
    assert result.code == 0
    assert result.out.splitlines() == [
        "copied welcome.txt",
        "skipped email.txt: already in templates (--force replaces it)",
        "1 copied into templates, 1 skipped",
    ]
    assert mine.read_text(encoding="utf-8") == "my own text part — mine\n"
    forced = cli(site, "templates", "copy", "--force", "email.txt")
    assert forced.code == 0 and forced.out.splitlines()[0] == "copied email.txt"
    assert mine.read_bytes() == (THEME / "email.txt").read_bytes()


def test_unknown_names_are_a_usage_error_listing_the_valid_ones_and_nothing_is_copied(site, cli):
    result = cli(site, "templates", "copy", "email.mjml", "emial.mjml", "../digest.toml")
    assert result.code == 2
    assert result.err == (
        "error: not a file of the theme: 'emial.mjml', '../digest.toml' (use one of: "
        + ", ".join(theme_files())
        + "; or a folder such as 'site')\n"
    )
    assert copied(site) == []


def test_list_shows_which_files_are_overridden(site, cli):
    assert cli(site, "templates", "copy", "site/style.css").code == 0
    (site / "templates" / "site" / "_extra.html").write_text("<p>mine</p>\n")
    lines = cli(site, "templates", "list").out.splitlines()
    assert "site/style.css  overridden by templates/site/style.css" in lines
    assert "email.mjml  theme" in lines
    assert "site/_extra.html  (yours, not a theme file: used only if another template includes it)" in lines
    assert len(lines) == len(theme_files()) + 1


def test_an_override_wins_over_the_theme_and_only_for_that_file(site, cli):
    assert cli(site, "templates", "copy", "email.txt", "site/style.css").code == 0
    txt = site / "templates" / "email.txt"
    txt.write_text("Ünïque override marker 📬\n" + txt.read_text(encoding="utf-8"), encoding="utf-8")
    css = site / "templates" / "site" / "style.css"
    css.write_text("/* site override — 覆盖 */\n", encoding="utf-8")
    built = cli(site, "build")
    assert built.code == 0, built.output
    text = next((site / "output" / "email").glob("*.txt")).read_text(encoding="utf-8")
    html = next((site / "output" / "email").glob("*.html")).read_text(encoding="utf-8")
    assert text.startswith("Ünïque override marker 📬")
    assert "Ünïque override marker" not in html  # email.mjml still comes from the theme
    assert (site / "output" / "site" / "style.css").read_text(encoding="utf-8") == "/* site override — 覆盖 */\n"


def test_a_templates_path_from_the_config_is_where_files_go(site, cli):
    (site / "theme-overrides").mkdir()
    toml = site / "digest.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace('# templates = "templates"', 'templates = "theme-overrides"'),
        encoding="utf-8",
    )
    result = cli(site, "templates", "copy", "welcome.mjml")
    assert result.code == 0 and result.out.splitlines()[-1] == "1 copied into theme-overrides, 0 skipped"
    assert (site / "theme-overrides" / "welcome.mjml").is_file() and not (site / "templates").exists()


def test_templates_needs_a_site(tmp_path, cli):
    result = cli(tmp_path, "templates", "copy")
    assert result.code == 1
    assert result.err.startswith("error: digest.toml: config file not found")
