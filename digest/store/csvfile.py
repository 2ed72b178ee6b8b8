"""Subscriber CSV files both ways: rows streamed with their line numbers, cells no spreadsheet runs."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

# A subscriber row is an address (at most 320 characters) and a name, so 100,000 bytes is plenty;
# it stays under csv's own field limit (131,072 characters), so a long row is ours to report
# rather than a `_csv.Error` that would end the import.
MAX_LINE_BYTES = 100_000
# What makes Excel, LibreOffice or Google Sheets read a cell as a formula (OWASP, "CSV Injection")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class CsvRow:
    """One physical line: its cells, or why it can't be read."""

    line: int
    cells: tuple[str, ...] = ()
    error: str = ""


def read_rows(stream: BinaryIO) -> Iterator[CsvRow]:
    """Every non-blank line of `stream` as a row, in bounded memory.

    One record per line: a quote left open reports its own line and never swallows the rows
    after it, which a CSV reader following the quote across lines would do silently.
    """
    for number, raw in enumerate(_lines(stream), 1):
        if raw is None:
            yield CsvRow(number, error=f"row is longer than {MAX_LINE_BYTES:,} bytes")
            continue
        text, error = _decode(raw, first=number == 1)
        if error or text.strip():
            yield _parse(number, text) if not error else CsvRow(number, error=error)


def _lines(stream: BinaryIO) -> Iterator[bytes | None]:
    """Lines as bytes; None for one over the limit, whose rest is skipped a bounded chunk at a time."""
    while chunk := stream.readline(MAX_LINE_BYTES + 1):
        if len(chunk) <= MAX_LINE_BYTES or chunk.endswith(b"\n"):
            yield chunk
            continue
        while chunk and not chunk.endswith(b"\n"):
            chunk = stream.readline(MAX_LINE_BYTES + 1)
        yield None


def _decode(raw: bytes, first: bool) -> tuple[str, str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "", f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
    text = text.removesuffix("\n").removesuffix("\r")
    return (text.removeprefix("\ufeff") if first else text), ""


def _parse(number: int, text: str) -> CsvRow:
    try:
        cells = next(csv.reader([text], strict=True), [])
    except csv.Error as exc:
        return CsvRow(number, error=_quoting(str(exc)))
    if any("\n" in cell or "\r" in cell for cell in cells):
        return CsvRow(number, error="a field contains a line break (a row must fit on one line)")
    return CsvRow(number, tuple(unneutralise(cell) for cell in cells))


def _quoting(reason: str) -> str:
    if "unexpected end of data" in reason:
        return 'a quote is not closed on this line (close it, or double a quote inside a field as "")'
    if "expected after" in reason:
        return 'text after a closing quote (double a quote inside a field as "")'
    if "new-line" in reason:
        return "a line break inside a row (a row must fit on one line)"
    return f"malformed CSV: {reason}"


def _needs_prefix(cell: str) -> bool:
    # a cell already starting with quotes then a formula character is prefixed too, so that
    # `unneutralise` is the exact inverse and an export imports back unchanged
    return cell.lstrip("'").startswith(FORMULA_START)


def neutralise(cell: str) -> str:
    """A cell a spreadsheet would evaluate (`=1+1@example.com`, `=HYPERLINK(...)`) starts with `'`."""
    return "'" + cell if _needs_prefix(cell) else cell


def unneutralise(cell: str) -> str:
    """The inverse of `neutralise`, so an exported list imports back as it was."""
    return cell[1:] if cell.startswith("'") and _needs_prefix(cell[1:]) else cell
