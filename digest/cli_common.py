"""What every module of the `digest` command shares: the lazy config context, the YYYY-MM parameter,
the group that suggests a mistyped command, and printing."""

from __future__ import annotations

import difflib
import re
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from digest.config import Config


class Month(click.ParamType):
    """YYYY-MM on the command line -> the first day of that month."""

    name = "YYYY-MM"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        match = re.fullmatch(r"([0-9]{4})-([0-9]{1,2})", str(value).strip())  # ASCII: \d would take "１９９９"
        if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1:
            self.fail(f"{value!r} is not a month: use YYYY-MM, such as 2025-02", param, ctx)
        return date(int(match.group(1)), int(match.group(2)), 1)


MONTH = Month()


class SuggestingGroup(click.Group):
    """A mistyped command gets 'Did you mean ...?' (click already does this for options)."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            name = args[0] if args else ""
            close = difflib.get_close_matches(name, self.list_commands(ctx), 1, 0.5)
            if close and "No such command" in str(exc):
                raise click.UsageError(f"No such command '{name}'. Did you mean '{close[0]}'?", ctx) from None
            raise


class Context:
    """Loads digest.toml on first use, so --help never needs one."""

    def __init__(self, config_path: Path | None):
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from digest.config import load_config

            self._config = load_config(self.config_path)
        return self._config


pass_ctx = click.make_pass_decorator(Context)


def echo(message: str = "", err: bool = False) -> None:
    click.echo(message, err=err)


def plural(count: int, word: str) -> str:
    """'1 error', '2 errors', '3 new entries'."""
    if count == 1:
        return f"{count} {word}"
    return f"{count} {word[:-1]}ies" if word.endswith("y") else f"{count} {word}s"
