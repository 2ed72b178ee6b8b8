"""digest.toml -> a frozen, validated `Config`; every bad key is named with its line."""

from __future__ import annotations

import ipaddress
import os
import re
import string
import tomllib
from datetime import tzinfo
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from digest.errors import ConfigError, Problem

CONFIG_NAME = "digest.toml"
SUBJECT_FIELDS = {"title", "month_name", "month", "year", "key", "count"}
DATABASE_URL_ENV = "DIGEST_DATABASE_URL"


def _nonblank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


Text = Annotated[str, AfterValidator(_nonblank)]


def _address(value: str) -> str:
    """Validated like a subscriber's address (email-validator; IDNA domain), so a header can hold it."""
    from digest.addresses import InvalidAddress, normalise

    try:
        return normalise(value)
    except InvalidAddress as exc:
        raise ValueError(str(exc)) from None


Address = Annotated[str, AfterValidator(_address)]
LIST_ID = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)+")


class Section(BaseModel):
    # strict: `keep = "12"` or `port = "25"` is a mistake to report, not a string to convert
    # (TOML has real integers and booleans); paths and arrays opt out per field, as TOML has
    # no path type and gives arrays as lists
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SiteConfig(Section):
    title: Text
    description: Text
    author: Text
    language: str = Field("en", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    base_url: str = Field(pattern=r"^https?://[^\s/]+(/\S*)?$")
    timezone: str = "UTC"
    sections: tuple[Text, ...] = Field(min_length=1, strict=False)
    images: bool = False  # show commentary images on the web page and in the feeds (never in the email)
    notes_section: Text = "Notes"  # the heading of the notes (`kind: note`), after the link sections

    @field_validator("base_url")
    @classmethod
    def _slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Europe/Berlin") from None
        return value

    @field_validator("sections")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        seen = {s.casefold() for s in value}
        if len(seen) != len(value):
            raise ValueError("sections must be unique")
        return value

    @model_validator(mode="after")
    def _notes_apart(self) -> SiteConfig:
        if self.notes_section.casefold() in {s.casefold() for s in self.sections}:
            raise ValueError(f"notes_section {self.notes_section!r} is also one of sections: give notes their own name")
        return self

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)


class SenderConfig(Section):
    name: Text
    address: Address
    reply_to: Address | None = None


class PathsConfig(Section):
    content: Path = Field(Path("content"), strict=False)
    templates: Path = Field(Path("templates"), strict=False)
    output: Path = Field(Path("output"), strict=False)
    outbox: Path = Field(Path("outbox"), strict=False)


class EmailConfig(Section):
    subject: Text = "{title}: {month_name} {year}"
    max_html_bytes: int = Field(100_000, gt=0)
    overflow: Literal["link", "refuse"] = "link"  # a month too long for one email: cut with a link, or stop

    @field_validator("subject")
    @classmethod
    def _fields(cls, value: str) -> str:
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


class FeedsConfig(Section):
    keep: int = Field(12, ge=1, le=1000)


class DeliveryConfig(Section):
    adapter: Literal["outbox", "console", "smtp", "postmark", "ses", "mailgun"] = "outbox"
    mode: Literal["inline", "queue"] = "inline"  # queue: send/publish only queue; `digest worker` sends
    recipients: tuple[Address, ...] = Field((), strict=False)
    max_attempts: int = Field(5, ge=1, le=100)
    retry_backoff: float = Field(30.0, ge=0)
    bounce_after: int = Field(1, ge=1)
    batch_size: int = Field(100, ge=1, le=10_000)
    list_id: str | None = None
    lease_seconds: float = Field(30.0, ge=2, le=3600)  # a sender's lease: how long a silent one keeps its claims
    soft_bounce_after: int = Field(5, ge=1)  # soft bounces (mailbox full, ...) reported later before "bounced"
    return_path_domain: str | None = None  # VERP: envelope sender bounces+<token>@this, so a bounce names its delivery

    @field_validator("return_path_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", value):
            raise ValueError(f"{value[:80]!r} is not a domain name: write it like 'bounces.example.com' (xn-- for IDN)")
        return value.lower() if value else value

    @field_validator("list_id")
    @classmethod
    def _list_id(cls, value: str | None) -> str | None:
        """RFC 2919: a dot-atom such as `digest.example.com`; anything else can't go in a header."""
        if value is not None and not LIST_ID.fullmatch(value):
            raise ValueError(
                f"{value[:80]!r} is not a list id: use dot-separated ASCII words such as 'digest.example.com'"
            )
        return value


class SmtpConfig(Section):
    host: Text = "localhost"
    port: int = Field(25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    connections: int = Field(1, ge=1, le=64)
    rate: float = Field(0.0, ge=0)
    timeout: float = Field(30.0, gt=0)


class PostmarkConfig(Section):
    """The token comes from DIGEST_POSTMARK_TOKEN."""

    message_stream: Text = "broadcast"  # Postmark keeps newsletters on a broadcast stream, apart from transactional
    base_url: str = Field("https://api.postmarkapp.com", pattern=r"^https?://[^\s/]+(/\S*)?$")
    timeout: float = Field(30.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _no_slash(cls, value: str) -> str:
        return value.rstrip("/")


class MailgunConfig(Section):
    """The API key comes from DIGEST_MAILGUN_API_KEY."""

    domain: Text  # the sending domain, as set up in Mailgun
    region: Literal["us", "eu"] = "us"
    base_url: str | None = Field(None, pattern=r"^https?://[^\s/]+(/\S*)?$")  # default: the region's API
    timeout: float = Field(30.0, gt=0)


class SesConfig(Section):
    """Credentials come from the usual AWS environment (AWS_ACCESS_KEY_ID, a profile, a role)."""

    region: Text = "us-east-1"
    configuration_set: str | None = None
    endpoint_url: str | None = Field(None, pattern=r"^https?://[^\s/]+(/\S*)?$")  # default: the region's
    timeout: float = Field(30.0, gt=0)
    topic_arns: tuple[str, ...] = Field((), strict=False)  # SNS topics /hooks/ses accepts; empty: any
    # where SNS signing certificates may come from (a regular expression matched at the URL's start)
    sns_certificate_url: str = r"https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"


class DkimConfig(Section):
    """An RSA key (every receiver checks rsa-sha256) and optionally an Ed25519 one (RFC 8463) beside it."""

    selector: Text
    domain: Text
    key_file: Path = Field(strict=False)
    ed25519_selector: Text | None = None  # a selector's DNS record holds one key, so not `selector`
    ed25519_key_file: Path | None = Field(None, strict=False)  # read relative to digest.toml's folder

    @field_validator("selector", "domain", "ed25519_selector")
    @classmethod
    def _dns_name(cls, value: str | None) -> str | None:
        # it goes into the DKIM-Signature header and a DNS name as it is: no spaces, ';' or non-ASCII
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*", value):
            raise ValueError("not a DNS name: use letters, digits, '-', '_' and dots (xn-- for non-ASCII)")
        return value

    @model_validator(mode="after")
    def _ed25519_pair(self) -> DkimConfig:
        if (self.ed25519_key_file is None) != (self.ed25519_selector is None):
            raise ValueError("ed25519_key_file and ed25519_selector go together: set both or neither")
        if self.ed25519_selector is not None and self.ed25519_selector.lower() == self.selector.lower():
            raise ValueError("ed25519_selector must differ from selector: each selector's DNS record holds one key")
        return self


class StoreConfig(Section):
    url: str = "sqlite:///var/digest.sqlite"

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str) -> str:
        """Secrets never go in the file; the error must not repeat the password either."""
        if re.match(r"^[\w+.-]+://[^/@?#]*:[^/@?#]*@", value):
            raise PydanticCustomError(
                "secret_in_file",
                "a password doesn't belong in digest.toml: set the whole URL in the environment variable "
                f"{DATABASE_URL_ENV} instead (or, for PostgreSQL, put the password in ~/.pgpass)",
            )
        return value


class ScheduleConfig(Section):
    """When the monthly job runs: cron-like fields in the site's time zone (default: last day, 22:00)."""

    month: str = "*"
    day: str = "last"
    day_of_week: str = "*"
    hour: str = "22"
    minute: str = "0"
    second: str = "0"
    mode: Literal["send", "draft"] = "send"
    misfire_grace_hours: float = Field(12.0, gt=0)

    @field_validator("month", "day", "day_of_week", "hour", "minute", "second", mode="before")
    @classmethod
    def _cron_text(cls, value: object) -> str:
        return str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else value  # type: ignore[return-value]

    @field_validator("day_of_week")
    @classmethod
    def _weekday_names(cls, value: str) -> str:
        # a number before any "/step" is a weekday number: refused, as cron and APScheduler disagree on them
        if any(re.search(r"\d", part.split("/")[0]) for part in value.split(",")):
            raise ValueError(
                "use weekday names (mon, tue, ... sun), not numbers: cron counts Sunday as 0, the scheduler Monday"
            )
        return value

    @field_validator("month", "day", "day_of_week", "hour", "minute", "second")
    @classmethod
    def _cron_field(cls, value: str, info: ValidationInfo) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger(**{str(info.field_name): value})
        except ValueError as exc:
            raise ValueError(f"not a valid schedule: {exc}") from None
        return value


class SubscribeConfig(Section):
    welcome: bool = True  # mail a welcome (latest issue, how to leave) once a subscription is confirmed


class ImapConfig(Section):
    """The mailbox `digest bounces --imap` reads; the password comes from DIGEST_IMAP_PASSWORD."""

    host: Text
    port: int = Field(993, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "tls"
    username: Text
    folder: Text = "INBOX"
    timeout: float = Field(30.0, gt=0)


class CheckConfig(Section):
    """`digest links check`, and whether `digest check --month` and the monthly job run it."""

    links: bool = False  # check the month's URLs in `digest check --month` (warnings) and the monthly job (logged)
    links_max_age_hours: float = Field(24.0, ge=0)  # reuse a cached result this young; 0: always check again
    links_timeout: float = Field(10.0, gt=0)  # seconds per request
    links_retries: int = Field(2, ge=0, le=10)  # further tries after a timeout, connection error, 5xx or 429


class BouncesConfig(Section):
    every_minutes: float = Field(0.0, ge=0)  # `digest serve` reads the bounce mailbox this often; 0: never
    maildir: Path | None = Field(None, strict=False)  # else [imap], when set


class WebConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_body_bytes: int = Field(16_384, ge=1024)
    max_hook_bytes: int = Field(1_048_576, ge=1024)  # /hooks/: SES's notifications carry the bounced mail's headers
    subscribe_limit: int = Field(5, ge=1)  # attempts per address per window
    subscribe_ip_limit: int = Field(30, ge=1)  # attempts per client address per window
    subscribe_window_minutes: float = Field(60.0, gt=0)
    # proxies whose X-Forwarded-For is believed (IPs or CIDRs); empty: the socket's peer is the client
    trusted_proxies: tuple[str, ...] = Field((), strict=False)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network such as 10.0.0.0/8") from None
        return tuple(item.strip() for item in value)

    @property
    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(item, strict=False) for item in self.trusted_proxies)


class Config(Section):
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
    root: Path = Field(Path("."), strict=False)

    @model_validator(mode="after")
    def _absolute_paths(self) -> Config:
        """Paths in the file are relative to the file, not to wherever digest runs."""
        paths = {name: self.root / getattr(self.paths, name) for name in PathsConfig.model_fields}
        if "templates" in self.paths.model_fields_set and not paths["templates"].is_dir():
            raise ValueError(
                f"[paths] templates: folder not found: {paths['templates']} (create it, or remove the key: "
                "the built-in theme needs no folder)"
            )
        object.__setattr__(self, "paths", PathsConfig(**paths))
        if self.dkim is not None:
            dkim = self.dkim.model_copy(update={"key_file": self.root / self.dkim.key_file})
            object.__setattr__(self, "dkim", dkim)
        if self.bounces.maildir is not None:
            bounces = self.bounces.model_copy(update={"maildir": self.root / self.bounces.maildir})
            object.__setattr__(self, "bounces", bounces)
        return self

    @model_validator(mode="after")
    def _bounce_mailbox(self) -> Config:
        if self.bounces.every_minutes and self.bounces.maildir is None and self.imap is None:
            raise ValueError("[bounces] every_minutes needs a mailbox: set [bounces] maildir or an [imap] table")
        return self

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
        return Config(**data, root=path.resolve().parent)
    except ValidationError as exc:
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


def _problems(path: Path, text: str, exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"] if not isinstance(part, int))
        key = ".".join(loc) or "(top level)"
        message = _explain(error)
        problems.append(Problem(path, f"{key}: {message}", _line_of(text, loc)))
    return problems


def _explain(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see the README for the keys this table takes)"
    if kind == "missing":
        return "required key is missing"
    if kind == "secret_in_file":
        return error["msg"]  # never the input: it holds the secret
    if kind == "string_pattern_mismatch":
        return f"{error['input']!r} is not a valid value here"
    message = error["msg"].removeprefix("Value error, ")
    if "input" in error and not isinstance(error["input"], dict):
        message += f" (got {error['input']!r})"
    return message


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
