"""An issue's editor's note, content/YYYY/MM/_issue.md: an introduction above the entries, an outro
below them, and optional overrides of the email's subject and preheader."""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from digest import content
from digest.config import Config
from digest.errors import Problem

NOTE_NAME = "_issue.md"
NOTE_KEYS = ("subject", "preheader", "outro")
MAX_SUBJECT = 200  # as the subject made from [email] subject is capped
MAX_PREHEADER = 300  # mail apps show the first 100 or so characters
_HEADER_BREAKS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")  # what a header line can't hold


@dataclass(frozen=True)
class EditorsNote:
    """The writer's words around one month's entries (Markdown, and its HTML once rendered)."""

    path: Path
    digest: str  # BLAKE2b of the file's bytes, for the render cache
    intro: str = ""
    outro: str = ""
    subject: str | None = None
    preheader: str | None = None
    intro_html: str = ""
    outro_html: str = ""


def is_special(name: str) -> bool:
    """`_issue.md` and any other `_`-prefixed file is not an entry."""
    return name.startswith("_")


def parse_note(path: Path, raw: bytes, *, links: bool = True) -> tuple[EditorsNote | None, list[Problem]]:
    """Parse and validate `_issue.md`: the note (if usable) and every problem found. A file with no
    front matter is all introduction."""
    read = content.read_front_matter(path, raw, required=False)
    if isinstance(read, Problem):
        return None, [read]
    meta, body, lines = read.meta, read.body, read.lines
    problems: list[Problem] = []
    subject = _one_line(meta, "subject", MAX_SUBJECT, path, lines, problems)
    preheader = _one_line(meta, "preheader", MAX_PREHEADER, path, lines, problems)
    outro = meta.get("outro")
    if outro is not None and not isinstance(outro, str):
        hint = "write 'outro: |' and the text indented below it"
        problems.append(Problem(path, "outro must be text (Markdown)", lines.get("outro", 1), hint))
    outro = outro.strip() if isinstance(outro, str) else ""
    for key in meta:
        if key not in NOTE_KEYS:
            close = difflib.get_close_matches(str(key), NOTE_KEYS, 1)
            hint = f"did you mean {close[0]!r}?" if close else "an editor's note has " + ", ".join(NOTE_KEYS)
            problems.append(Problem(path, f"unknown front-matter key {key!r}", lines.get(str(key)), hint))
    intro = body.strip()
    if links:
        from digest.render.markdown import link_problems  # the Markdown parser only when links are checked

        problems += link_problems(path, intro, read.body_line) if intro else []
        problems += link_problems(path, outro, lines.get("outro", 1) + 1) if outro else []
    if any(not p.warning for p in problems):
        return None, problems
    digest = hashlib.blake2b(raw, digest_size=16).hexdigest()
    return EditorsNote(path, digest, intro, outro, subject, preheader), problems


def _one_line(
    meta: dict, key: str, limit: int, path: Path, lines: dict[str, int], problems: list[Problem]
) -> str | None:
    """A header-safe override: one line of visible text, not too long; None when not given."""
    value = meta.get(key)
    if value is None:
        return None
    where = lines.get(key, 1)
    if not isinstance(value, str) or isinstance(value, bool):
        problems.append(Problem(path, f"{key} must be text", where, f"such as '{key}: \"A special issue\"'"))
        return None
    if _HEADER_BREAKS.search(value.strip()):
        problems.append(Problem(path, f"{key} must be one line", where, "remove line breaks and control characters"))
        return None
    shown = content.visible_text(value)
    if shown is None:
        problems.append(Problem(path, f"{key} is empty", where, f"write the {key}, or remove the line"))
        return None
    if len(shown) > limit:
        problems.append(Problem(path, f"{key} is {len(shown)} characters, over {limit}", where, "shorten it"))
        return None
    return content.BIDI_CONTROLS.sub("", shown)


INTRO_TOP_HEADING = 3  # below the issue title (h1) and the sections' names (h2)


def with_html(note: EditorsNote) -> EditorsNote:
    """The note with its introduction and outro rendered as entries' commentary is: sanitised, images as
    links, headings below the issue's own."""
    from digest.render.markdown import commentary_html, demote_headings

    if note.intro_html or note.outro_html:
        return note
    return replace(
        note,
        intro_html=demote_headings(commentary_html(note.intro), INTRO_TOP_HEADING),
        outro_html=demote_headings(commentary_html(note.outro), INTRO_TOP_HEADING),
    )


_MONTH_FOLDER = re.compile(r"(\d{4})/(0[1-9]|1[0-2])")


def load_notes(
    config: Config, *, links: bool = False, paths: list[Path] | None = None
) -> tuple[dict[date, EditorsNote], list[Problem]]:
    """Every month's `_issue.md` (content/YYYY/MM/), and the problems found; with `links`, the
    Markdown's link warnings too (`digest check`). `paths`: the notes the content scan came across
    (else content/ is searched for them)."""
    root = config.paths.content
    notes, problems = {}, []
    if paths is None:
        paths = list(root.rglob(NOTE_NAME)) if root.is_dir() else []
    for path in sorted(paths):
        shown = path.relative_to(config.root) if path.is_relative_to(config.root) else path
        folder = _MONTH_FOLDER.fullmatch(path.parent.relative_to(root).as_posix())
        if folder is None:
            hint = "an editor's note goes in its month's folder, such as content/2025/02/_issue.md"
            problems.append(Problem(shown, "not in a YYYY/MM folder: ignored", hint=hint, warning=True))
            continue
        try:
            raw = path.read_bytes()
        except OSError as exc:
            problems.append(Problem(shown, f"cannot read file: {exc.strerror}"))
            continue
        note, found = parse_note(path, raw, links=links)
        problems += [Problem(shown, p.message, p.line, p.hint, p.warning) for p in found]
        if note is not None:
            notes[date(int(folder[1]), int(folder[2]), 1)] = note
    return notes, problems
