"""`digest init` and `digest templates ...`: starting a site, and taking over parts of the theme."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from digest.cli_common import Context, SuggestingGroup, echo, pass_ctx


def _checked(check: Any) -> Any:
    """A click callback (and prompt value_proc) from one of scaffold's checks: a bad value is a usage error."""

    def convert(value: str | None, *_: object) -> str | None:
        from digest.scaffold import InitError

        if value is None:
            return None
        try:
            return str(check(value))
        except InitError as exc:
            raise click.BadParameter(str(exc)) from None

    return convert


def _check_timezone(ctx: click.Context | None, param: click.Parameter | None, value: str | None) -> str | None:
    from digest.scaffold import check_timezone

    return _checked(check_timezone)(value)


def _check_base_url(ctx: click.Context | None, param: click.Parameter | None, value: str | None) -> str | None:
    from digest.scaffold import check_base_url

    return _checked(check_base_url)(value)


@click.command()
@click.argument("folder", metavar="[DIR]", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--title", help="The digest's name (a header of every email and page).")
@click.option("--base-url", callback=_check_base_url, help="Where the archive will be published (http or https).")
@click.option("--timezone", callback=_check_timezone, help="IANA time zone, such as Europe/Berlin. Default: UTC.")
@click.option("--author", help='For the feeds. Default: "The <title> writer".')
def init(folder: Path, title: str | None, base_url: str | None, timezone: str | None, author: str | None) -> None:
    """Start a new digest in DIR (default: here, created if missing): a commented digest.toml and one example entry.

    \b
    The theme ships with digest, so there is nothing else to copy: run
    'digest templates copy' later to change it. A folder that already has a
    digest.toml is left alone. In a terminal, what the options don't say is asked.

    \b
    Examples:
      digest init my-digest --title "Café — 读书笔记" --base-url https://links.example.com/
      cd my-digest && digest build && digest subscribers add you@example.com && digest send
    """
    from digest.scaffold import DEFAULT_BASE_URL, DEFAULT_TIMEZONE, DEFAULT_TITLE, SiteAnswers, init_site

    if _interactive() and (title is None or base_url is None):
        title = title or click.prompt("Title", default=DEFAULT_TITLE)
        base_url = base_url or _prompt_checked("Base URL", DEFAULT_BASE_URL, _check_base_url)
        timezone = timezone or _prompt_checked("Time zone", DEFAULT_TIMEZONE, _check_timezone)
        author = author or click.prompt("Author", default=f"The {title} writer")
    answers = SiteAnswers(
        title=title or DEFAULT_TITLE,
        base_url=base_url or DEFAULT_BASE_URL,
        timezone=timezone or DEFAULT_TIMEZONE,
        author=author,
    )
    site = init_site(folder, answers)
    echo(f"wrote {_shown(site.config_path)} and {_shown(site.entry_path)}")
    where = "" if folder.resolve() == Path.cwd() else f"cd {_shown(folder)} && "
    echo(f"next: {where}digest build   (then 'digest subscribers add ADDRESS' and 'digest send')")


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _prompt_checked(text: str, default: str, check: Any) -> str:
    return str(click.prompt(text, default=default, value_proc=lambda value: check(None, None, value)))


def _shown(path: Path) -> str:
    """Relative to the current folder when it is inside it (what a writer typed), else as it is."""
    try:
        return os.path.relpath(path.resolve(), Path.cwd()) if path.resolve().is_relative_to(Path.cwd()) else str(path)
    except (OSError, ValueError):
        return str(path)


@click.group(cls=SuggestingGroup)
def templates() -> None:
    """The built-in theme and your overrides of it, file by file.

    \b
    The email, welcome mail and web pages come from the theme that ships with
    digest. A file of the same name in your templates folder ([paths] templates,
    default templates/) replaces that one file; the rest still comes from the theme.

    \b
    Examples:
      digest templates list
      digest templates copy email.mjml site/style.css
    """


@templates.command("copy")
@click.argument("names", nargs=-1)
@click.option("--force", is_flag=True, help="Replace files already in your templates folder.")
@pass_ctx
def copy(obj: Context, names: tuple[str, ...], force: bool) -> None:
    """Copy theme files (all, or the NAMES given) into your templates folder, to edit them.

    \b
    A file already there is your work: it is skipped, and listed, unless --force.
    Run 'digest templates list' for the names.

    \b
    Examples:
      digest templates copy
      digest templates copy email.mjml email.txt
      digest templates copy site            # every file under site/
      digest templates copy --force site/style.css
    """
    from digest.overrides import copy_theme

    folder = obj.config.paths.templates
    report = copy_theme(folder, names, force=force)
    for name in report.copied:
        echo(f"copied {name}")
    for name in report.skipped:
        echo(f"skipped {name}: already in {_shown(folder)} (--force replaces it)")
    echo(f"{len(report.copied)} copied into {_shown(folder)}, {len(report.skipped)} skipped")


@templates.command("list")
@pass_ctx
def list_(obj: Context) -> None:
    """Every theme file, and whether your templates folder overrides it.

    \b
    Example:
      digest templates list
    """
    from digest.overrides import listing

    folder = obj.config.paths.templates
    for item in listing(folder):
        if not item.in_theme:
            echo(f"{item.name}  (yours, not a theme file: used only if another template includes it)")
        else:
            echo(f"{item.name}  " + (f"overridden by {_shown(folder / item.name)}" if item.overridden else "theme"))
