"""Pre-send checks on a rendered issue, for `digest check --month` and a writer's own CI."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from digest.collect import Archive, Issue
from digest.config import Config
from digest.errors import Label, Problem
from digest.render.email import RenderedEmail
from digest.urls import url_key


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [value for name, value in attrs if name == "href" and value]


def html_links(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.hrefs


def email_problems(email: RenderedEmail, issue: Issue, config: Config) -> list[Problem]:
    """Size, colour scheme, links in both parts, the unsubscribe slot, and one real message read back."""
    from digest.delivery import preflight
    from digest.render.email import final_html_bytes

    where = Label(f"{issue.key} email")
    problems = []
    size = final_html_bytes(email.html, email.slot, config)
    if email.cut:
        problems.append(
            Problem(
                where,
                f"too long for one email ({email.full_bytes:,} bytes of HTML): {email.shown} of {email.total} entries "
                f"are shown in full, the other {email.total - email.shown} as titles linking to the web page",
                hint='[email] overflow = "link"; trim commentary to show more',
                warning=True,
            )
        )
    if size > config.email.max_html_bytes and config.email.overflow == "link":
        problems.append(
            Problem(
                where,
                f"HTML is {size:,} bytes, over the {config.email.max_html_bytes:,}-byte limit",
                hint="Gmail clips at about 102 KB; the template itself is too large",
            )
        )
    if not re.search(r'<meta[^>]+name="color-scheme"', email.html) and "color-scheme:" not in email.html:
        problems.append(
            Problem(
                where,
                "HTML does not declare color-scheme",
                hint='add <meta name="color-scheme" content="light dark"> to templates/email.mjml',
            )
        )
    for part, body in (("HTML", email.html), ("text", email.text)):
        if email.slot not in body:
            problems.append(
                Problem(
                    where,
                    f"the {part} part has no unsubscribe link",
                    hint="put the unsubscribe_url variable in the template",
                )
            )
    in_text = {comparable(url) for url in URL_IN_TEXT.findall(email.text)}
    missing = [h for h in dict.fromkeys(html_links(email.html)) if h != email.slot and comparable(h) not in in_text]
    for href in missing:
        problems.append(
            Problem(
                where,
                f"link {href} is in the HTML but not in the text part",
                hint="templates/email.txt should list every link",
            )
        )
    problems += preflight.problems(email, config)
    return problems


URL_IN_TEXT = re.compile(r"(?:https?://|mailto:)[^\s<>\"]+")


def comparable(url: str) -> str:
    """One form for the same address however it is written: IDNA host, lower-case scheme and host,
    percent-encoding of everything but unreserved characters normalised."""
    try:
        parts = urlsplit(url.strip())
        host = unquote(parts.hostname or "")  # (lxml writes a non-ASCII host percent-encoded)
        host = host.encode("idna").decode("ascii") if host and not host.isascii() else host
        port = f":{parts.port}" if parts.port else ""
    except (ValueError, UnicodeError):
        return url
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (quote(unquote(userinfo), safe=":") + "@" if userinfo else "") + host.lower() + port
    return urlunsplit(
        (
            parts.scheme.lower(),
            netloc,
            quote(unquote(parts.path), safe="/:@!$&'()*+,;=~"),
            quote(unquote(parts.query), safe="=&/:@!$'()*+,;?~"),
            quote(unquote(parts.fragment), safe="=&/:@!$'()*+,;?~"),
        )
    )


def repeated_links(archive: Archive, issue: Issue, config: Config) -> list[Problem]:
    """Links of this issue that an earlier issue already carried (a warning, not an error).

    Compared by `url_key`: the same article under http or https, with or without `www.`, tracking
    parameters or its AMP address, counts as sent.
    """
    earlier: dict[str, str] = {}
    for record in archive.records:
        if record.url_key and not record.draft and record.month < issue.month:
            earlier.setdefault(record.url_key, f"{record.month:%Y-%m}")
    problems = []
    for entry in issue.entries:
        sent = earlier.get(url_key(entry.url)) if entry.url else None
        if sent:
            problems.append(
                Problem(
                    entry.path.relative_to(config.root) if entry.path.is_relative_to(config.root) else entry.path,
                    f"{entry.url} was already sent in {sent}",
                    warning=True,
                )
            )
    return problems
