"""Suspicious entry URLs that still parse: an impossible port, a host name that mixes scripts."""

from __future__ import annotations

from urllib.parse import SplitResult

# Scripts one label may combine: Unicode's "Highly Restrictive" profile (UTS #39, 5.2), which
# lets Japanese, Chinese and Korean names mix their own scripts (and Latin) but not, say, a
# Cyrillic 'а' into a Latin word. Characters of the Common and Inherited scripts (digits,
# hyphens, combining accents) go with any script.
ALLOWED_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
NEUTRAL = frozenset({"COMMON", "INHERITED"})


def url_warnings(parts: SplitResult) -> list[str]:
    """What looks wrong with a URL that parses: each a sentence for `digest check`."""
    return [message for message in (_port_problem(parts), _host_problem(parts.hostname or "")) if message]


def _port_problem(parts: SplitResult) -> str | None:
    try:
        port = parts.port
    except ValueError:  # not a number, or over 65535
        return f"the port in {parts.netloc[:80]!r} is not a number from 1 to 65535: the link can't work"
    if port == 0:
        return f"the port in {parts.netloc[:80]!r} is 0: the link can't work"
    return None


def _host_problem(host: str) -> str | None:
    for label in host.split("."):
        shown = _unicode(label)
        if shown is None:
            return f"the host {host[:80]!r} has a label {label[:40]!r} that is not valid punycode"
        if shown.isascii():
            continue  # Latin letters, digits and hyphens: one script (the common case, and cheap)
        scripts = _scripts(shown)
        if len(scripts) > 1 and not any(scripts <= allowed for allowed in ALLOWED_MIXES):
            names = " and ".join(sorted(s.title() for s in scripts))
            return (
                f"the host {host[:80]!r} mixes {names} letters in {shown[:40]!r}: "
                "a look-alike of another site's name? (check the link)"
            )
    return None


def _unicode(label: str) -> str | None:
    """An IDN label as the reader sees it (`xn--bcher-kva` -> `bücher`); None if it doesn't decode."""
    if not label.lower().startswith("xn--"):
        return label
    try:
        return label[4:].encode("ascii").decode("punycode")
    except (UnicodeError, ValueError):
        return None


def _scripts(label: str) -> frozenset[str]:
    from confusable_homoglyphs import categories  # Unicode's Scripts.txt, as data

    return frozenset(categories.unique_aliases(label)) - NEUTRAL
