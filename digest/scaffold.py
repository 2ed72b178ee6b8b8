"""`digest init`: a new site's commented digest.toml and one example entry, checked before anything is written."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.config import CONFIG_NAME, Config, make_config
from digest.errors import DigestError
from digest.settings import Invalid

if TYPE_CHECKING:
    from digest.importers import EntryFile

DEFAULT_TITLE = "My Link Digest"
DEFAULT_BASE_URL = "https://digest.example.com/"
DEFAULT_TIMEZONE = "UTC"
SECTIONS = ("Articles", "Papers", "Videos and Podcasts")
FALLBACK_SENDER = "digest@example.com"  # when the base URL's host can't be a mail domain (an IP, localhost)

EXAMPLE_ENTRY = {
    "title": "Markdown Reference",
    "url": "https://commonmark.org/help/",
    "source": "CommonMark",
    "note": (
        "- This is an example entry: one Markdown file per link, under content/YYYY/MM/. "
        "The lines between the `---` marks are the link (title, url, date, section, and optionally "
        "source, tags and quote); what follows is your commentary, in Markdown.\n"
        '- Add the next one with `digest add URL --title "..." --note "..."`, then delete this file.'
    ),
}

# Every key a writer is likely to change, commented; the rest keep their defaults (see the README).
CONFIG_TEMPLATE = Template("""\
# digest's site config. Paths are relative to this file. Every key is in the README's
# "Configuration" table; a key that is not there is an error naming its line.
#
# Secrets never go here: they come from DIGEST_* environment variables. DIGEST_SECRET_KEY
# signs unsubscribe links and makes Message-IDs; without it digest keeps a random key in
# var/secret.key (made on first use). Keep that file (or set the variable) for good: new
# links and IDs would not match the old ones.

[site]
title = $title
description = $description
author = $author
language = "en"                 # BCP 47: "de", "pt-BR", "zh-Hans"...
# where the web archive will be published; its pages and feeds link to each other from here
base_url = $base_url
# an IANA name: decides which month an entry belongs to, and when the monthly job runs
timezone = $timezone
# the sections, in the order the email shows them; an entry's `section:` names one (default: the first)
sections = $sections
# images = true                 # show commentary images on the web page and in the feeds (never in the email)

[sender]
# the From header: use an address of a domain you send mail for
name = $sender_name
address = $sender_address
# reply_to = "you@example.com"

[paths]
content = "content"             # your entries: content/YYYY/MM/<slug>.md
output = "output"               # the built email, feeds and web archive
outbox = "outbox"               # where adapter = "outbox" writes one .eml per message
# templates = "templates"       # your overrides of the built-in theme, file by file: `digest templates copy`

[email]
subject = "{title}: {month_name} {year}"    # also {month}, {key}, {count}

[feeds]
keep = 12                       # how many issues the feeds carry

[delivery]
# "outbox" writes each message as a file in [paths] outbox, to look at first; switch to "smtp"
# (and fill in [smtp]) or "postmark", "ses", "mailgun" when you are ready to send for real
adapter = "outbox"
recipients = []                 # your own addresses, for `digest send --preview`
max_attempts = 5                # tries per message for temporary failures

[check]
links = false                   # true: `digest check --month` also requests every link of the month

[smtp]
host = "localhost"
port = 587                      # 587 STARTTLS submission, 465 implicit TLS
security = "starttls"           # "starttls", "tls" or "none"
# username = "you@example.com"  # the password comes from DIGEST_SMTP_PASSWORD
rate = 0                        # messages per second; 0 for no limit

[store]
# subscribers and the delivery log; DIGEST_DATABASE_URL overrides it (postgresql://... too)
url = "sqlite:///var/digest.sqlite"

[schedule]
# when `digest serve` runs the monthly job, in [site] timezone: the last day of the month, 22:00
day = "last"
hour = "22"
mode = "send"                   # "draft" builds and publishes but sends nothing

[web]
host = "127.0.0.1"              # `digest serve`
port = 8000
""")


class InitError(DigestError):
    """`digest init` was given a bad value or a folder that already holds a site: nothing was written."""


@dataclass(frozen=True)
class SiteAnswers:
    """What a writer says about a new site; everything else starts from the defaults above."""

    title: str = DEFAULT_TITLE
    base_url: str = DEFAULT_BASE_URL
    timezone: str = DEFAULT_TIMEZONE
    author: str | None = None  # default: "The <title> writer"


@dataclass(frozen=True)
class NewSite:
    config_path: Path
    entry_path: Path


def check_timezone(value: str) -> str:
    """An IANA zone name, as [site] timezone needs it."""
    name = value.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InitError(
            f"unknown time zone {value!r}: use an IANA name such as Europe/Berlin or America/New_York"
        ) from None
    return name


def check_base_url(value: str) -> str:
    """An http(s) URL with a host, ending in a slash (pages are linked relative to it)."""
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise InitError(
            f"{value!r} is not a web address: use the http:// or https:// URL the archive will be published at, "
            "such as https://links.example.com/"
        )
    url = parts._replace(scheme=parts.scheme).geturl()  # `HTTPS://` as https://, as [site] base_url expects
    return url if url.endswith("/") else url + "/"


def init_site(folder: Path, answers: SiteAnswers, now: datetime | None = None) -> NewSite:
    """Write digest.toml and one example entry into `folder`, after checking both as `digest check` would;
    a folder that already has a digest.toml is refused whole."""
    config_path = folder / CONFIG_NAME
    if folder.exists() and not folder.is_dir():
        raise InitError(f"{folder}: is a file, not a folder; nothing was written (name a new or existing folder)")
    if config_path.exists():
        raise InitError(f"{config_path}: already exists; nothing was written (edit it, or init another folder)")
    text = config_text(answers)
    config = _validate(text, folder)
    entry = _example_entry(config, now)
    from digest.files import write_atomic

    write_atomic(config_path, text)
    write_atomic(entry.path, entry.text)
    return NewSite(config_path, entry.path)


def config_text(answers: SiteAnswers) -> str:
    """The commented digest.toml, every value written as a TOML string."""
    title = answers.title.strip() or DEFAULT_TITLE
    base_url = check_base_url(answers.base_url)
    values = {
        "title": title,
        "description": f"{title}: a monthly collection of the links I read, with notes.",
        "author": (answers.author or "").strip() or f"The {title} writer",
        "base_url": base_url,
        "timezone": check_timezone(answers.timezone),
        "sender_name": title,
        "sender_address": _sender_address(base_url),
    }
    quoted = {key: _toml_string(value) for key, value in values.items()}
    return CONFIG_TEMPLATE.substitute(quoted, sections="[" + ", ".join(map(_toml_string, SECTIONS)) + "]")


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes (\\", \\\\, \\n, \\uXXXX) are TOML's too; TOML also forbids a raw DEL."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _sender_address(base_url: str) -> str:
    """digest@<the site's host>, when that host can be a mail domain."""
    from digest.addresses import InvalidAddress, normalise

    host = urlsplit(base_url).hostname or ""
    try:
        return normalise(f"digest@{host.removeprefix('www.')}") if "." in host else FALLBACK_SENDER
    except InvalidAddress:
        return FALLBACK_SENDER


def _validate(text: str, folder: Path) -> Config:
    """The file as `load_config` will read it; a value the models refuse is named here, before writing."""
    try:
        return make_config(tomllib.loads(text), folder.resolve())
    except Invalid as exc:
        first = exc.mistakes[0]
        where = ".".join(str(part) for part in first.loc)
        raise InitError(f"{where}: {first.message}; nothing was written") from None


def _example_entry(config: Config, now: datetime | None) -> EntryFile:
    """This month's example entry, parsed back as `digest check` will read it."""
    from digest.content import parse_entry
    from digest.importers import entry_file

    when = (now or datetime.now(config.site.tz)).astimezone(config.site.tz).replace(microsecond=0)
    example = EXAMPLE_ENTRY
    planned = entry_file(
        config,
        title=example["title"],
        url=example["url"],
        source=example["source"],
        note=example["note"],
        when=when,
        section=config.site.sections[0],
    )
    entry, problems = parse_entry(planned.path, planned.text.encode(), config.site.sections, config.site.tz)
    if entry is None:
        raise InitError("; ".join(str(p) for p in problems))
    return planned


__all__ = ["init_site", "config_text", "check_timezone", "check_base_url", "SiteAnswers", "NewSite", "InitError"]
