"""What could run in a browser or a mail client: every test's one question about an HTML text.

Parsed with html.parser as a browser tokenises it (character references decoded, attribute names
lower-cased, <script> and <style> bodies read as raw text), never matched with regular expressions.
"""

from __future__ import annotations

from html.parser import HTMLParser

# Tags that run script, embed another document or change how every link on the page resolves.
ACTIVE_TAGS = frozenset(
    {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "svg", "math", "base", "portal"}
)
# Attributes a browser or mail client follows as a URL.
URL_ATTRIBUTES = frozenset(
    {
        "href",
        "src",
        "action",
        "formaction",
        "background",
        "poster",
        "xlink:href",
        "data",
        "lowsrc",
        "dynsrc",
        "codebase",
        "srcset",
        "ping",
    }
)
BAD_SCHEMES = ("javascript:", "vbscript:", "data:", "livescript:", "mocha:", "file:")
BAD_CSS = ("expression(", "javascript:", "vbscript:", "-moz-binding", "behavior:", "url(data:")


def _scheme(url: str) -> str:
    """The URL as a browser reads its scheme: tabs and newlines dropped, leading controls and spaces stripped."""
    return "".join(ch for ch in url if ch not in "\t\n\r").lstrip("".join(map(chr, range(33)))).lower()


def _urls(name: str, value: str) -> list[str]:
    """An attribute's URLs: `srcset` holds a comma-separated list of "URL width" candidates."""
    if name == "srcset":
        return [part.strip().split(" ")[0] for part in value.split(",")]
    return [value]


class _Executable(HTMLParser):
    """Collects whatever could run or load script in a browser or a mail client."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.in_style = tag == "style"
        if tag in ACTIVE_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            self._check_attribute(tag, name, value or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self.in_style = False  # <style/> has no body

    def _check_attribute(self, tag: str, name: str, value: str) -> None:
        if name.startswith("on"):
            self.found.append(f"<{tag} {name}>")
        if name in URL_ATTRIBUTES and any(_scheme(url).startswith(BAD_SCHEMES) for url in _urls(name, value)):
            self.found.append(f"<{tag} {name}={value[:40]!r}>")
        if name == "style" and any(bad in _scheme(value) for bad in BAD_CSS):
            self.found.append(f"<{tag} style={value[:40]!r}>")
        if tag == "meta" and name == "http-equiv" and value.strip().lower() == "refresh":
            self.found.append("<meta http-equiv=refresh>")

    def handle_endtag(self, tag: str) -> None:
        self.in_style = False

    def handle_data(self, data: str) -> None:
        if self.in_style and any(bad in data.lower() for bad in BAD_CSS):
            self.found.append("<style> with script")


def executable(html: str) -> list[str]:
    """Every way `html` could run script; [] when it is inert."""
    parser = _Executable()
    parser.feed(html)
    parser.close()
    return parser.found
