"""Rewrite one entry's `url:` value in place: every other byte of the file stays as it was."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import frontmatter
import yaml

from digest.files import write_atomic

log = logging.getLogger(__name__)
_URL_KEY = re.compile(rb"^(url[ \t]*:[ \t]*)(.*?)((?:[ \t]+#.*?)?[ \t]*)(\r?\n|$)")
_PLAIN_SAFE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*$")  # in YAML, '#' starts a comment only after a space


def rewrite_url(path: Path, line: int | None, old: str, new: str) -> bool:
    """Replace `old` by `new` on the `url:` line; False (file untouched) if the line isn't plainly that.

    The value keeps its quoting style; the file is read back as YAML before it is written, so a
    rewrite that would change anything but the url never lands.
    """
    if line is None:
        return False
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    if not 1 <= line <= len(lines):
        return False
    match = _URL_KEY.match(lines[line - 1])
    if match is None or _value(match.group(2)) != old:
        log.warning("%s:%d: the url is not written as one plain value; leaving it for a hand edit", path, line)
        return False
    written = _written_like(match.group(2), new).encode("utf-8")
    lines[line - 1] = match.group(1) + written + match.group(3) + match.group(4)
    updated = b"".join(lines)
    if not _only_url_changed(data, updated, new):
        log.warning("%s:%d: rewriting the url would change more than the url; leaving it", path, line)
        return False
    write_atomic(path, updated)
    return True


def _value(raw: bytes) -> str | None:
    """The YAML scalar on the line, or None if it isn't a one-line string."""
    try:
        value = yaml.safe_load(b"url: " + raw)
    except yaml.YAMLError:
        return None
    found = value.get("url") if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


def _written_like(raw: bytes, new: str) -> str:
    """`new` in the old value's quoting: single, double, or plain when plain is safe."""
    if raw.startswith(b"'"):
        return "'" + new.replace("'", "''") + "'"
    if raw.startswith(b'"') or not _PLAIN_SAFE.match(new):
        return json.dumps(new, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar
    return new


def _only_url_changed(before: bytes, after: bytes, new: str) -> bool:
    try:
        old_meta = frontmatter.loads(before.decode("utf-8-sig")).metadata
        new_meta = frontmatter.loads(after.decode("utf-8-sig")).metadata
    except (UnicodeDecodeError, yaml.YAMLError, ValueError):
        return False
    return new_meta.get("url") == new and {**old_meta, "url": new} == new_meta
