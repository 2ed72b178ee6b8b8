"""The one Jinja environment every renderer uses: autoescaped HTML/MJML/XML, plain .txt."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

from digest.errors import DigestError


class TemplateError(DigestError):
    """A template is missing or broken: names the file and line."""


@cache
def environment(templates: Path) -> jinja2.Environment:
    """Autoescape everything but .txt, so no title or source reaches HTML unescaped."""
    if not templates.is_dir():
        raise TemplateError(f"{templates}: templates folder not found (set [paths] templates in digest.toml)")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        autoescape=jinja2.select_autoescape(["html", "mjml", "xml"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["month_name"] = lambda d: d.strftime("%B %Y")
    return env


def render_template(templates: Path, name: str, **context: object) -> str:
    """Render `name`, turning Jinja's errors into a message with the template's file and line."""
    try:
        return environment(templates).get_template(name).render(**context)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"{templates / str(exc.name)}: template not found") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.filename or name}:{exc.lineno}: template syntax error: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{templates / name}: {exc.message}") from None
