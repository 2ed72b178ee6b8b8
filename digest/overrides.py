"""A site's own templates beside the built-in theme: copy theme files out to edit them, and see which are overridden."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from digest.errors import DigestError
from digest.files import write_atomic
from digest.render import THEME, theme_files


class UnknownTemplate(DigestError):
    """A name that is no file (or folder) of the theme: a usage mistake, so exit 2 like click's."""

    exit_code = 2


@dataclass(frozen=True)
class CopyReport:
    copied: tuple[str, ...]
    skipped: tuple[str, ...]  # already in the site's folder, left as they are (no --force)


@dataclass(frozen=True)
class TemplateFile:
    name: str  # relative to the theme or the site's folder, with forward slashes: `site/style.css`
    overridden: bool  # the site's folder has its own copy, which wins
    in_theme: bool = True  # False: a file of the site's own, which only its other templates can include


def resolve_names(names: tuple[str, ...] | list[str]) -> list[str]:
    """Theme file names for `names` (all when empty); a folder such as `site` stands for the files in it.
    Every unknown name is reported at once, with the valid ones."""
    known = theme_files()
    if not names:
        return known
    chosen: list[str] = []
    unknown: list[str] = []
    for raw in names:
        name = raw.replace("\\", "/").strip().strip("/")
        matches = [name] if name in known else [f for f in known if f.startswith(name + "/")] if name else []
        if not matches:
            unknown.append(raw)
        chosen += [m for m in matches if m not in chosen]
    if unknown:
        listed = ", ".join(repr(u) for u in unknown)
        raise UnknownTemplate(
            f"not a file of the theme: {listed} (use one of: {', '.join(known)}; or a folder such as 'site')"
        )
    return chosen


def copy_theme(templates: Path, names: tuple[str, ...] | list[str] = (), force: bool = False) -> CopyReport:
    """Copy the named theme files (all by default) into `templates`, keeping subfolders. An existing file
    is the writer's work: it is replaced only with `force`. Names are checked before anything is copied."""
    chosen = resolve_names(names)
    copied: list[str] = []
    skipped: list[str] = []
    for name in chosen:
        target = templates / name
        if target.exists() and not force:
            skipped.append(name)
            continue
        write_atomic(target, (THEME / name).read_bytes())
        copied.append(name)
    return CopyReport(tuple(copied), tuple(skipped))


def listing(templates: Path) -> list[TemplateFile]:
    """Every theme file, marked when the site overrides it, then the site's own files that are no theme file."""
    theme = theme_files()
    own = _site_files(templates)
    files = [TemplateFile(name, name in own) for name in theme]
    return files + [TemplateFile(name, True, in_theme=False) for name in sorted(own - set(theme))]


def _site_files(templates: Path) -> set[str]:
    if not templates.is_dir():
        return set()
    return {
        p.relative_to(templates).as_posix()
        for p in templates.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name != "README.md" and "__pycache__" not in p.parts
    }


__all__ = ["copy_theme", "listing", "resolve_names", "CopyReport", "TemplateFile", "UnknownTemplate"]
