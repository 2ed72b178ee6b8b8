"""What could run in a browser or a mail client: the escaping tests' one question about an HTML text."""

from __future__ import annotations

from html.parser import HTMLParser

SCRIPT_SCHEMES = ("javascript:", "data:", "vbscript:", "file:")


class _Scripts(HTMLParser):
    """Collects script-capable tags, on* attributes and script URLs, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "iframe", "object", "embed", "svg"):
            self.found.append(tag)
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{tag} {name}")
            if name in ("href", "src") and value and "".join(value.split()).lower().startswith(SCRIPT_SCHEMES):
                self.found.append(f"{tag} {name}={value}")


def executable(html: str) -> list[str]:
    """Every way `html` could run script; [] when it is inert."""
    parser = _Scripts()
    parser.feed(html)
    parser.close()
    return parser.found
