"""Header lines from data, correct by construction: RFC 5322 folding, RFC 2047 encoded words.

Values from configuration and subscribers (titles, names, subject patterns) may hold any
Unicode, commas, quotes and angle brackets. Each is written once, here, as a form that a
parser can only read back as what went in: a display name is always a single phrase (atoms,
one quoted string, or encoded words), never text that a second parse could split into
addresses (see `policy.SMTP.fold` re-reading encoded words). Lines stay within 78 octets
where the value allows, and never pass 998.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from email.utils import format_datetime

MAX_LINE = 76  # RFC 2047: an encoded word's line, folding space included
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_ATOM_TEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_ADDR_SPEC_ASCII = re.compile(r"[\x21-\x7e]+")


def clean(value: str) -> str:
    """One line of text: control characters and line breaks become spaces, runs of space one."""
    return " ".join(_CONTROL.sub(" ", value).split())


def unstructured(name: str, value: str) -> str:
    """`Name: value` folded, for Subject and other free text; non-ASCII text as encoded words."""
    value = clean(value)
    words = value.split(" ")
    if _PRINTABLE_ASCII.fullmatch(value) and "=?" not in value and all(len(w) < 900 for w in words):
        return _fold_words(f"{name}:", words)
    return _fold_words(f"{name}:", _encoded_words(value, len(name) + 2))


def phrase(value: str, used: int, *, display_name: bool = True) -> str:
    """`value` as an RFC 5322 phrase; `used` is how much of the line is taken before it. May
    contain folds. A display name's encoded words split only at its spaces (see `_phrase_words`);
    others (the List-Id phrase, read as unstructured text) anywhere, as RFC 2047 intends."""
    value = clean(value)
    if not value:
        return ""
    if "=?" not in value and len(value) + used <= 78:
        if _ATOM_TEXT.fullmatch(value):
            return value
        if _PRINTABLE_ASCII.fullmatch(value) and len(value) + used + 2 <= 78:
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    words = _phrase_words(value, used) if display_name else _encoded_words(value, used)
    return "\r\n ".join(words)


def _phrase_words(value: str, used: int) -> list[str]:
    """Encoded words split only where `value` has a space, the space becoming the whitespace between
    them. (Python's parser reads whitespace between encoded words in a phrase as a space; RFC 2047
    decoders drop it, which can only join two words.) A single word too long for one encoded word
    stays one longer encoded word: split inside, Python would read a space that is not there."""
    chunks: list[str] = []
    current: str | None = None
    room = MAX_LINE - max(used, 1)
    for word in value.split(" "):
        candidate = word if current is None else f"{current} {word}"
        if current is not None and len(_b64_word(candidate)) > room:
            chunks.append(current)
            current, room = word, MAX_LINE - 1
        else:
            current = candidate
    chunks.append(current or "")
    return [_b64_word(chunk) for chunk in chunks]


def mailbox(name: str, display_name: str | None, address: str) -> str:
    """`Name: phrase <address>` (or the bare address without a name), one mailbox, folded."""
    if not _ADDR_SPEC_ASCII.fullmatch(address) and not is_utf8_address(address):
        raise ValueError(f"not an address: {address!r}")
    shown = phrase(display_name or "", len(name) + 2)
    if not shown:
        return f"{name}: {address}\r\n"
    return f"{name}: {shown} <{address}>\r\n"


def is_utf8_address(address: str) -> bool:
    """A mailbox with a non-ASCII local part: deliverable only over SMTPUTF8 (RFC 6531)."""
    return not address.isascii() and "@" in address and not any(c.isspace() or ord(c) < 32 for c in address)


def date_now() -> str:
    """`Date:` with a numeric zone (`+0000`), never the obsolete `GMT`."""
    return f"Date: {format_datetime(datetime.now(UTC))}\r\n"


def _encoded_words(value: str, used: int) -> list[str]:
    """Base64 encoded words of at most 75 characters, split between characters, never inside one;
    the first fits after `used` characters of its line."""
    words: list[str] = []
    room = MAX_LINE - max(used, 1)
    chunk = ""
    for char in value:
        if len(_b64_word(chunk + char)) > room and chunk:
            words.append(_b64_word(chunk))
            chunk, room = "", MAX_LINE - 1
        chunk += char
    if chunk:
        words.append(_b64_word(chunk))
    return words


def _b64_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def _fold_words(start: str, words: list[str]) -> str:
    """Join words with single spaces, folding before a word that would pass 78 characters."""
    lines, line = [], start
    for word in words:
        if line != start and len(line) + 1 + len(word) > 78:
            lines.append(line)
            line = ""
        line += " " + word
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"
