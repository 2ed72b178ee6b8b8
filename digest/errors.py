"""Errors that print themselves: where the problem is and what to do about it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Label:
    """What a problem is about when it is no file: a month's email ("2025-02 email")."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or suspicious, if `warning`) with one input file (or, with a `Label`, one output)."""

    path: Path | Label
    message: str
    line: int | None = None
    hint: str = ""
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.message}" + (f" ({self.hint})" if self.hint else "")


class DigestError(Exception):
    """Base of every error the CLI prints without a traceback."""

    exit_code = 1


class ConfigError(DigestError):
    """digest.toml is missing, malformed or has a bad key or value."""

    def __init__(self, problems: Iterable[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem(Path("digest.toml"), problems)]
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ContentError(DigestError):
    """One or more content files are invalid; carries every problem found."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = tuple(p for p in problems if not p.warning)
        count = len(self.problems)
        lines = [str(p) for p in self.problems]
        lines.append(f"{count} problem{'s' if count != 1 else ''} in content; nothing was written or sent")
        super().__init__("\n".join(lines))


class NothingToDo(DigestError):
    """An empty month, or no content at all: a clear message, exit 1, no output."""


class DeliveryError(DigestError):
    """A transport that cannot work at all (bad host, refused login, unwritable outbox)."""

    def __init__(self, message: str, hint: str = ""):
        self.hint = hint
        super().__init__(message + (f" ({hint})" if hint else ""))


class StoreError(DigestError):
    """The subscriber/delivery database is unreachable or in an unexpected state."""


class SendRefused(DigestError):
    """The composed message would be wrong on the wire, or the email is too long to send whole:
    refused before anything is queued."""

    def __init__(self, key: str, problems: Iterable[Problem]):
        self.problems = tuple(problems)
        lines = [str(p) for p in self.problems]
        lines.append(f"{key}: nothing was queued or sent")
        super().__init__("\n".join(lines))


class LeaseLost(DigestError):
    """This sender's lease ran out or was taken over: it must not complete another message."""
