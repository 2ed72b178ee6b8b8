"""The one Jinja environment every renderer uses: autoescaped HTML/MJML/XML, plain .txt. Templates come
from the site's own folder first, file by file, then from the theme that ships in the package."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import jinja2
import jinja2.bccache

from digest.errors import DigestError

THEME = Path(__file__).resolve().parent.parent / "theme"


class TemplateError(DigestError):
    """A template is missing or broken: names the file and line."""


@cache
def environment(templates: Path) -> jinja2.Environment:
    """Autoescape everything but .txt, so no title or source reaches HTML unescaped."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(folder) for folder in template_folders(templates)]),
        autoescape=jinja2.select_autoescape(["html", "mjml", "xml"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env


def template_folders(templates: Path) -> tuple[Path, ...]:
    """Where templates are looked up, first match wins: the site's overrides (when it has any), the theme."""
    return (templates, THEME) if templates.is_dir() else (THEME,)


def template_file(templates: Path, name: str) -> Path:
    """The file `name` resolves to: the site's copy if it has one, else the theme's."""
    for folder in template_folders(templates):
        if (folder / name).is_file():
            return folder / name
    raise TemplateError(f"{templates / name}: template not found")


def theme_files() -> list[str]:
    """Every file of the default theme, as names relative to it (`site/style.css`)."""
    return sorted(str(p.relative_to(THEME)) for p in THEME.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


class _BytecodeCache(jinja2.FileSystemBytecodeCache):
    """Compiled templates on disk (Jinja writes a temp file, then renames it); a file that can't be read
    back whole is compiled again, never an error."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # noqa: BLE001 (a damaged file: pickle and marshal raise anything)
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            os.makedirs(self.directory, exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:  # a read-only var/ still renders, compiling each time
            pass


def keep_compiled(templates: Path, folder: Path, version: str) -> None:
    """Keep the compiled templates in `folder`, so a new process skips compiling them (10-30 ms a build).
    Jinja keys each on its source; `version` (the code's) covers how the environment compiles them."""
    env = environment(templates)
    if env.bytecode_cache is None:
        env.bytecode_cache = _BytecodeCache(str(folder), f"{version[:16]}-%s.cache")


def render_template(templates: Path, name: str, **context: object) -> str:
    """Render `name`, turning Jinja's errors into a message with the template's file and line."""
    try:
        return environment(templates).get_template(name).render(**context)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"{templates / str(exc.name)}: template not found") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.filename or name}:{exc.lineno}: template syntax error: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{_shown_file(templates, name)}: {exc.message}") from None


def _shown_file(templates: Path, name: str) -> Path:
    """The file a template came from: the site's override, or the built-in theme's."""
    try:
        return template_file(templates, name)
    except TemplateError:
        return templates / name
