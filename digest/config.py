"""digest.toml -> a frozen, validated `Config`; every bad key is named with its line."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import string
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.errors import ConfigError, Problem
from digest.settings import Invalid, Mistake, Table, setting

CONFIG_NAME = "digest.toml"
SUBJECT_FIELDS = {"title", "month_name", "month", "year", "key", "count"}
DATABASE_URL_ENV = "DIGEST_DATABASE_URL"
URL_PATTERN = r"^https?://[^\s/]+(/\S*)?$"


def _nonblank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


def _address(value: str) -> str:
    """Validated like a subscriber's address (email-validator; IDNA domain), so a header can hold it."""
    from digest.addresses import InvalidAddress, normalise

    try:
        return normalise(value)
    except InvalidAddress as exc:
        raise ValueError(str(exc)) from None


def _then(*checks: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Several checks in order, each given what the one before kept."""

    def check(value: Any) -> Any:
        for one in checks:
            value = one(value)
        return value

    return check


LIST_ID = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)+")


def _slash(value: str) -> str:
    return value if value.endswith("/") else value + "/"


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Europe/Berlin") from None
    return value


def _unique(value: tuple[str, ...]) -> tuple[str, ...]:
    if len({s.casefold() for s in value}) != len(value):
        raise ValueError("sections must be unique")
    return value


@dataclass(frozen=True, kw_only=True)
class SiteConfig(Table):
    title: str = setting(check=_nonblank)
    description: str = setting(check=_nonblank)
    author: str = setting(check=_nonblank)
    language: str = setting("en", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    base_url: str = setting(pattern=URL_PATTERN, check=_slash)
    timezone: str = setting("UTC", check=_zone)
    sections: tuple[str, ...] = setting(min_items=1, each=_nonblank, check=_unique)
    images: bool = False  # show commentary images on the web page and in the feeds (never in the email)
    notes_section: str = setting("Notes", check=_nonblank)  # the heading of the notes (`kind: note`)

    def cross_check(self) -> None:
        if self.notes_section.casefold() in {s.casefold() for s in self.sections}:
            raise ValueError(f"notes_section {self.notes_section!r} is also one of sections: give notes their own name")

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, kw_only=True)
class SenderConfig(Table):
    name: str = setting(check=_nonblank)
    address: str = setting(check=_address)
    reply_to: str | None = setting(None, check=_address)


@dataclass(frozen=True, kw_only=True)
class PathsConfig(Table):
    content: Path = Path("content")
    templates: Path = Path("templates")
    output: Path = Path("output")
    outbox: Path = Path("outbox")


def _subject_fields(value: str) -> str:
    """Plain placeholders only: a format spec (`{title:>20000000}`), a conversion (`{title!r}`)
    or attribute and index access (`{title.upper}`, `{title[0]}`) would let the file size or
    reach into the values; `{{` and `}}` are literal braces."""
    known = ", ".join(sorted(SUBJECT_FIELDS))
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise ValueError(f"{exc}; write a literal brace as {{{{ or }}}}") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        field = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if name not in SUBJECT_FIELDS:
            raise ValueError(f"unknown placeholder {field}; use {known}")
        if spec or conversion:
            raise ValueError(f"placeholder {field} has a format or conversion; write it plainly as {{{name}}}")
    return value


@dataclass(frozen=True, kw_only=True)
class EmailConfig(Table):
    subject: str = setting("{title}: {month_name} {year}", check=_then(_nonblank, _subject_fields))
    max_html_bytes: int = setting(100_000, gt=0)
    overflow: Literal["link", "refuse"] = "link"  # a month too long for one email: cut with a link, or stop


@dataclass(frozen=True, kw_only=True)
class FeedsConfig(Table):
    keep: int = setting(12, ge=1, le=1000)


def _domain(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", value):
        raise ValueError(f"{value[:80]!r} is not a domain name: write it like 'bounces.example.com' (xn-- for IDN)")
    return value.lower()


def _list_id(value: str) -> str:
    """RFC 2919: a dot-atom such as `digest.example.com`; anything else can't go in a header."""
    if not LIST_ID.fullmatch(value):
        raise ValueError(f"{value[:80]!r} is not a list id: use dot-separated ASCII words such as 'digest.example.com'")
    return value


@dataclass(frozen=True, kw_only=True)
class DeliveryConfig(Table):
    adapter: Literal["outbox", "console", "smtp", "postmark", "ses", "mailgun"] = "outbox"
    mode: Literal["inline", "queue"] = "inline"  # queue: send/publish only queue; `digest worker` sends
    recipients: tuple[str, ...] = setting((), each=_address)
    max_attempts: int = setting(5, ge=1, le=100)
    retry_backoff: float = setting(30.0, ge=0)
    bounce_after: int = setting(1, ge=1)
    batch_size: int = setting(100, ge=1, le=10_000)
    list_id: str | None = setting(None, check=_list_id)
    lease_seconds: float = setting(30.0, ge=2, le=3600)  # a sender's lease: how long a silent one keeps its claims
    soft_bounce_after: int = setting(5, ge=1)  # soft bounces (mailbox full, ...) reported later before "bounced"
    return_path_domain: str | None = setting(None, check=_domain)  # VERP: envelope sender bounces+<token>@this


@dataclass(frozen=True, kw_only=True)
class SmtpConfig(Table):
    host: str = setting("localhost", check=_nonblank)
    port: int = setting(25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    connections: int = setting(1, ge=1, le=64)
    rate: float = setting(0.0, ge=0)
    timeout: float = setting(30.0, gt=0)


@dataclass(frozen=True, kw_only=True)
class PostmarkConfig(Table):
    """The token comes from DIGEST_POSTMARK_TOKEN."""

    message_stream: str = setting("broadcast", check=_nonblank)  # newsletters go on a broadcast stream
    base_url: str = setting("https://api.postmarkapp.com", pattern=URL_PATTERN, check=lambda v: v.rstrip("/"))
    timeout: float = setting(30.0, gt=0)


@dataclass(frozen=True, kw_only=True)
class MailgunConfig(Table):
    """The API key comes from DIGEST_MAILGUN_API_KEY."""

    domain: str = setting(check=_nonblank)  # the sending domain, as set up in Mailgun
    region: Literal["us", "eu"] = "us"
    base_url: str | None = setting(None, pattern=URL_PATTERN)  # default: the region's API
    timeout: float = setting(30.0, gt=0)


@dataclass(frozen=True, kw_only=True)
class SesConfig(Table):
    """Credentials come from the usual AWS environment (AWS_ACCESS_KEY_ID, a profile, a role)."""

    region: str = setting("us-east-1", check=_nonblank)
    configuration_set: str | None = None
    endpoint_url: str | None = setting(None, pattern=URL_PATTERN)  # default: the region's
    timeout: float = setting(30.0, gt=0)
    topic_arns: tuple[str, ...] = ()  # SNS topics /hooks/ses accepts; empty: any
    # where SNS signing certificates may come from (a regular expression matched at the URL's start)
    sns_certificate_url: str = r"https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"


def _dns_name(value: str) -> str:
    # it goes into the DKIM-Signature header and a DNS name as it is: no spaces, ';' or non-ASCII
    if not re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*", value):
        raise ValueError("not a DNS name: use letters, digits, '-', '_' and dots (xn-- for non-ASCII)")
    return value


@dataclass(frozen=True, kw_only=True)
class DkimConfig(Table):
    """An RSA key (every receiver checks rsa-sha256) and optionally an Ed25519 one (RFC 8463) beside it."""

    selector: str = setting(check=_then(_nonblank, _dns_name))
    domain: str = setting(check=_then(_nonblank, _dns_name))
    key_file: Path = setting()
    ed25519_selector: str | None = setting(None, check=_then(_nonblank, _dns_name))  # a DNS record holds one key
    ed25519_key_file: Path | None = None  # read relative to digest.toml's folder

    def cross_check(self) -> None:
        if (self.ed25519_key_file is None) != (self.ed25519_selector is None):
            raise ValueError("ed25519_key_file and ed25519_selector go together: set both or neither")
        if self.ed25519_selector is not None and self.ed25519_selector.lower() == self.selector.lower():
            raise ValueError("ed25519_selector must differ from selector: each selector's DNS record holds one key")


def _no_password(value: str) -> str:
    """Secrets never go in the file; the error must not repeat the password either."""
    if re.match(r"^[\w+.-]+://[^/@?#]*:[^/@?#]*@", value):
        raise ValueError(
            "a password doesn't belong in digest.toml: set the whole URL in the environment variable "
            f"{DATABASE_URL_ENV} instead (or, for PostgreSQL, put the password in ~/.pgpass)"
        )
    return value


@dataclass(frozen=True, kw_only=True)
class StoreConfig(Table):
    url: str = setting("sqlite:///var/digest.sqlite", check=_no_password, secret=True)


def _weekday_names(value: str) -> str:
    # a number before any "/step" is a weekday number: refused, as cron and APScheduler disagree on them
    if any(re.search(r"\d", part.split("/")[0]) for part in value.split(",")):
        raise ValueError(
            "use weekday names (mon, tue, ... sun), not numbers: cron counts Sunday as 0, the scheduler Monday"
        )
    return value


def _cron_text(value: Any) -> Any:
    """`hour = 22` is as good as `hour = "22"`: cron fields are kept as text."""
    return str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else value


def _cron_field(name: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        if name == "day_of_week":
            _weekday_names(value)
        try:
            CronTrigger(**{name: value})
        except ValueError as exc:
            raise ValueError(f"not a valid schedule: {exc}") from None
        return value

    return check


def _cron(default: str, name: str) -> Any:
    return setting(default, before=_cron_text, check=_cron_field(name))


@dataclass(frozen=True, kw_only=True)
class ScheduleConfig(Table):
    """When the monthly job runs: cron-like fields in the site's time zone (default: last day, 22:00)."""

    month: str = _cron("*", "month")
    day: str = _cron("last", "day")
    day_of_week: str = _cron("*", "day_of_week")
    hour: str = _cron("22", "hour")
    minute: str = _cron("0", "minute")
    second: str = _cron("0", "second")
    mode: Literal["send", "draft"] = "send"
    misfire_grace_hours: float = setting(12.0, gt=0)


@dataclass(frozen=True, kw_only=True)
class SubscribeConfig(Table):
    welcome: bool = True  # mail a welcome (latest issue, how to leave) once a subscription is confirmed


@dataclass(frozen=True, kw_only=True)
class ImapConfig(Table):
    """The mailbox `digest bounces --imap` reads; the password comes from DIGEST_IMAP_PASSWORD."""

    host: str = setting(check=_nonblank)
    port: int = setting(993, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "tls"
    username: str = setting(check=_nonblank)
    folder: str = setting("INBOX", check=_nonblank)
    timeout: float = setting(30.0, gt=0)


@dataclass(frozen=True, kw_only=True)
class CheckConfig(Table):
    """`digest links check`, and whether `digest check --month` and the monthly job run it."""

    links: bool = False  # check the month's URLs in `digest check --month` (warnings) and the monthly job (logged)
    links_max_age_hours: float = setting(24.0, ge=0)  # reuse a cached result this young; 0: always check again
    links_timeout: float = setting(10.0, gt=0)  # seconds per request
    links_retries: int = setting(2, ge=0, le=10)  # further tries after a timeout, connection error, 5xx or 429


@dataclass(frozen=True, kw_only=True)
class BouncesConfig(Table):
    every_minutes: float = setting(0.0, ge=0)  # `digest serve` reads the bounce mailbox this often; 0: never
    maildir: Path | None = None  # else [imap], when set


def _networks(value: tuple[str, ...]) -> tuple[str, ...]:
    for item in value:
        try:
            ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR network such as 10.0.0.0/8") from None
    return tuple(item.strip() for item in value)


@dataclass(frozen=True, kw_only=True)
class WebConfig(Table):
    host: str = "127.0.0.1"
    port: int = setting(8000, ge=1, le=65535)
    max_body_bytes: int = setting(16_384, ge=1024)
    max_hook_bytes: int = setting(1_048_576, ge=1024)  # /hooks/: SES's notifications carry the bounced mail's headers
    subscribe_limit: int = setting(5, ge=1)  # attempts per address per window
    subscribe_ip_limit: int = setting(30, ge=1)  # attempts per client address per window
    subscribe_window_minutes: float = setting(60.0, gt=0)
    # proxies whose X-Forwarded-For is believed (IPs or CIDRs); empty: the socket's peer is the client
    trusted_proxies: tuple[str, ...] = setting((), check=_networks)

    @property
    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(item, strict=False) for item in self.trusted_proxies)


@dataclass(frozen=True, kw_only=True)
class Config(Table):
    site: SiteConfig
    sender: SenderConfig
    paths: PathsConfig = PathsConfig()
    email: EmailConfig = EmailConfig()
    feeds: FeedsConfig = FeedsConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    smtp: SmtpConfig = SmtpConfig()
    postmark: PostmarkConfig = PostmarkConfig()
    mailgun: MailgunConfig | None = None
    ses: SesConfig = SesConfig()
    dkim: DkimConfig | None = None
    store: StoreConfig = StoreConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    web: WebConfig = WebConfig()
    subscribe: SubscribeConfig = SubscribeConfig()
    imap: ImapConfig | None = None
    bounces: BouncesConfig = BouncesConfig()
    check: CheckConfig = CheckConfig()
    root: Path = Path(".")

    def cross_check(self) -> None:
        if self.bounces.every_minutes and self.bounces.maildir is None and self.imap is None:
            raise ValueError("[bounces] every_minutes needs a mailbox: set [bounces] maildir or an [imap] table")

    @property
    def database_url(self) -> str:
        """DIGEST_DATABASE_URL wins; relative SQLite paths resolve against the config's folder."""
        url = os.environ.get(DATABASE_URL_ENV) or self.store.url
        match = re.match(r"^sqlite(\+\w+)?:///(?!/)(.+)$", url)
        if match and match.group(2) != ":memory:":
            url = f"sqlite{match.group(1) or ''}:///{self.root / match.group(2)}"
        return url

    @property
    def var_dir(self) -> Path:
        return self.root / "var"


def make_config(data: dict[str, Any], root: Path) -> Config:
    """The config from digest.toml's tables, its paths made absolute (they are relative to the file, not to
    wherever digest runs); `settings.Invalid` lists every mistake."""
    config = Config.from_toml(data, root=root)
    paths = PathsConfig(**{f.name: root / getattr(config.paths, f.name) for f in dataclasses.fields(PathsConfig)})
    named = data.get("paths", {})
    if "templates" in named and not paths.templates.is_dir():
        raise Invalid(
            [
                Mistake(
                    ("paths", "templates"),
                    f"folder not found: {paths.templates} (create it, or remove the key: the built-in theme "
                    "needs no folder)",
                    show_value=False,
                )
            ]
        )
    changes: dict[str, Any] = {"paths": paths}
    if config.dkim is not None:
        changes["dkim"] = replace(config.dkim, key_file=root / config.dkim.key_file)
    if config.bounces.maildir is not None:
        changes["bounces"] = replace(config.bounces, maildir=root / config.bounces.maildir)
    return replace(config, **changes)


def tables_json(config: Config, names: set[str] | None = None) -> str:
    """Tables of the config as JSON (all, or `names`): what the render cache keys on."""
    tables = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if names is None or f.name in names}
    return json.dumps({name: _plain(value) for name, value in tables.items()}, sort_keys=True, default=str)


def _plain(value: Any) -> Any:
    return dataclasses.asdict(value) if isinstance(value, Table) else value


def find_config(explicit: Path | str | None = None) -> Path:
    """--config wins, then DIGEST_CONFIG, then ./digest.toml."""
    candidate = explicit or os.environ.get("DIGEST_CONFIG") or CONFIG_NAME
    path = Path(candidate)
    try:
        found = path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        found = False
    if not found:
        raise ConfigError(
            [
                Problem(
                    path,
                    "config file not found",
                    hint="run digest in the folder with digest.toml, or pass --config PATH",
                )
            ]
        )
    return path


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate digest.toml, reporting every bad key at once."""
    path = find_config(path)
    text = _read(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise ConfigError([Problem(path, f"not valid TOML: {exc}", int(line.group(1)) if line else None)]) from None
    if "root" in data:
        raise ConfigError([Problem(path, "unknown key 'root'", _line_of(text, ("root",)))])
    try:
        return make_config(data, path.resolve().parent)
    except Invalid as exc:
        raise ConfigError(_problems(path, text, exc)) from None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        message = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise ConfigError([Problem(path, message, line, hint="save it as UTF-8")]) from None
    except OSError as exc:
        raise ConfigError([Problem(path, f"can't read the config file: {exc.strerror or exc}")]) from None


def _problems(path: Path, text: str, exc: Invalid) -> list[Problem]:
    problems = []
    for mistake in exc.mistakes:
        loc = tuple(str(part) for part in mistake.loc if not isinstance(part, int))
        key = ".".join(loc) or "(top level)"
        problems.append(Problem(path, f"{key}: {mistake}", _line_of(text, loc)))
    return problems


def _line_of(text: str, loc: tuple[str, ...]) -> int | None:
    """Best-effort 1-based line of `table.key` in the TOML text, for the error message."""
    if not loc:
        return None
    table, key = (".".join(loc[:-1]), loc[-1]) if len(loc) > 1 else ("", loc[0])
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.match(r"^\[\s*([\w.\-]+)\s*\]", stripped)
        if header:
            current = header.group(1)
            if current == ".".join(loc):
                return number
            continue
        if current == table and re.match(rf"^[\"']?{re.escape(key)}[\"']?\s*=", stripped):
            return number
    return None
