"""TOML tables -> frozen dataclasses, checked as strictly as TOML allows, every mistake reported at once.

Each table is a `Table` dataclass whose fields carry a `Rule` (bounds, a pattern, a check of their own).
Types are strict: TOML has real integers, floats, booleans and arrays, so `port = "25"` is a mistake to
report, not a string to convert; an integer is fine where a float is asked for, a string where a path is.
Defaults are taken as written, never checked. A table's own `cross_check()` runs once its keys are all valid.

Messages read like this (the caller adds the key and its line): "Input should be a valid integer (got '12')".
This module imports nothing beyond the standard library, so reading digest.toml costs about a millisecond
and no command pays for a validation framework's start-up.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T", bound="Table")
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Rule:
    """What a key's value must be beyond its type."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    pattern: str | None = None  # matched with re.search: anchor it
    min_items: int | None = None
    before: Callable[[Any], Any] | None = None  # the value as written -> the value whose type is checked
    check: Callable[[Any], Any] | None = None  # the value -> the value kept; ValueError(message) if refused
    each: Callable[[Any], Any] | None = None  # the same, for each item of an array
    secret: bool = False  # the value is never repeated in a message


def setting(default: Any = dataclasses.MISSING, **rule: Any) -> Any:
    """A key of a table: its default (none: the key is required) and its `Rule`."""
    return dataclasses.field(default=default, metadata={"rule": Rule(**rule)})


@dataclass(frozen=True)
class Mistake:
    """One bad value: where (table, key, item index), what is wrong, and the value, unless secret."""

    loc: Loc
    message: str
    value: Any = None
    show_value: bool = True

    def __str__(self) -> str:
        shown = self.show_value and not isinstance(self.value, dict)
        return self.message + (f" (got {self.value!r})" if shown else "")


class Invalid(ValueError):
    """Every mistake in the tables, in the order of their keys."""

    def __init__(self, mistakes: list[Mistake]):
        self.mistakes = mistakes
        super().__init__("; ".join(f"{'.'.join(map(str, m.loc))}: {m}" for m in mistakes))


@dataclass(frozen=True, kw_only=True)
class Table:
    """A TOML table: frozen, so a loaded config can't change under a running command."""

    def cross_check(self) -> None:
        """Rules across keys; raise ValueError with a message for the whole table."""

    @classmethod
    def from_toml(cls: type[T], data: dict[str, Any], loc: Loc = (), **given: Any) -> T:
        """The table from its TOML keys (and `given` values not from the file); Invalid lists every mistake."""
        mistakes: list[Mistake] = []
        table = _build(cls, data, loc, mistakes, given)
        if mistakes or table is None:
            raise Invalid(mistakes)
        return table


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type[Table]) -> dict[str, Any]:
    """The fields' types, resolved once per table class."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _build(cls: type[T], data: Any, loc: Loc, mistakes: list[Mistake], given: dict[str, Any] | None = None) -> T | None:
    if not isinstance(data, dict):
        mistakes.append(Mistake(loc, "should be a table of keys", data))
        return None
    before = len(mistakes)
    hints = _hints(cls)
    values: dict[str, Any] = dict(given or {})
    fields = [f for f in dataclasses.fields(cls) if f.name not in values]
    for field in fields:
        if field.name not in data:
            if field.default is dataclasses.MISSING:
                mistakes.append(Mistake((*loc, field.name), "required key is missing", show_value=False))
            continue
        rule = field.metadata.get("rule", Rule())
        value = _value(hints[field.name], data[field.name], rule, (*loc, field.name), mistakes)
        if value is not _BAD:
            values[field.name] = value
    names = {f.name for f in fields}
    for key in data:
        if key not in names:
            mistakes.append(
                Mistake(
                    (*loc, str(key)),
                    "unknown key (check the spelling; see the README for the keys this table takes)",
                    show_value=False,
                )
            )
    if len(mistakes) > before:
        return None
    table = cls(**values)
    try:
        table.cross_check()
    except ValueError as exc:
        mistakes.append(Mistake(loc, str(exc), data))
        return None
    return table


_BAD = object()


def _value(kind: Any, value: Any, rule: Rule, loc: Loc, mistakes: list[Mistake]) -> Any:
    written = value  # messages show the value as the file has it

    def bad(message: str, show_value: bool = True) -> object:
        mistakes.append(Mistake(loc, message, written, show_value and not rule.secret))
        return _BAD

    if rule.before is not None:
        value = rule.before(value)
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):  # `X | None`: TOML has no null, so the value is an X
        kind = next(arg for arg in get_args(kind) if arg is not type(None))
        origin = get_origin(kind)
    if isinstance(kind, type) and issubclass(kind, Table):
        return _BAD if (table := _build(kind, value, loc, mistakes)) is None else table
    if origin is Literal:
        choices = get_args(kind)
        if not any(value == choice and type(value) is type(choice) for choice in choices):
            return bad(f"Input should be {_one_of(choices)}")
    elif origin is tuple:
        if not isinstance(value, (list, tuple)):
            return bad("Input should be a valid array")
        items = []
        for index, item in enumerate(value):
            checked = _value(get_args(kind)[0], item, Rule(check=rule.each), (*loc, index), mistakes)
            if checked is not _BAD:
                items.append(checked)
        if len(items) < len(value):
            return _BAD
        if rule.min_items is not None and len(items) < rule.min_items:
            return bad(f"should have at least {rule.min_items} item{'s' if rule.min_items != 1 else ''}")
        value = tuple(items)
    elif kind is str and not isinstance(value, str):
        return bad("Input should be a valid string")
    elif kind is bool and not isinstance(value, bool):
        return bad("Input should be a valid boolean")
    elif kind is int and (not isinstance(value, int) or isinstance(value, bool)):
        return bad("Input should be a valid integer")
    elif kind is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return bad("Input should be a valid number")
        value = float(value)
    elif kind is Path:
        if not isinstance(value, (str, Path)) or (isinstance(value, str) and "\0" in value):
            return bad("Input is not a valid path")
        value = Path(value)
    return _constrained(value, rule, bad)


def _constrained(value: Any, rule: Rule, bad: Callable[..., object]) -> Any:
    if rule.pattern is not None and not re.search(rule.pattern, value):
        return bad(f"{value!r} is not a valid value here", show_value=False)
    if rule.ge is not None and value < rule.ge:
        return bad(f"Input should be greater than or equal to {rule.ge}")
    if rule.gt is not None and value <= rule.gt:
        return bad(f"Input should be greater than {rule.gt}")
    if rule.le is not None and value > rule.le:
        return bad(f"Input should be less than or equal to {rule.le}")
    if rule.check is not None:
        try:
            return rule.check(value)
        except ValueError as exc:
            return bad(str(exc))
    return value


def _one_of(choices: tuple[Any, ...]) -> str:
    shown = [repr(c) for c in choices]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]
