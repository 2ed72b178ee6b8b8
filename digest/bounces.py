"""`digest bounces`: read the mailbox where bounces, complaints and mailto unsubscribes arrive.

Each message is classified once: an ARF feedback report (RFC 5965) is a complaint; a delivery
status notification (RFC 3464, and the older shapes flufl.bounce knows) a hard or soft bounce; a
mail with the subject "unsubscribe" from a subscriber an unsubscribe. The delivery is named by the
VERP token in the return path when there is one (so even a mangled DSN counts), else by the
original Message-ID the report quotes, else by the failed address. Every processed message is
recorded under its Message-ID, so reading the same mailbox twice changes nothing; what is not
recognised is left where it is and listed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mailbox
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from email.utils import collapse_rfc2231_value, getaddresses, parseaddr
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from digest import tokens
from digest.config import Config
from digest.errors import DigestError
from digest.store import Store, reports
from digest.store.reports import EventKind, Target

if TYPE_CHECKING:
    from imap_tools import BaseMailBox  # loaded only when an IMAP mailbox is read

log = logging.getLogger(__name__)
IMAP_PASSWORD_ENV = "DIGEST_IMAP_PASSWORD"
VERP = re.compile(rb"bounces\+\d{1,30}\.[0-9a-fA-F]{16}@[A-Za-z0-9.-]+")
RECIPIENT_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "to")
SOFT_STATUS = re.compile(r"^(4\.\d{1,3}\.\d{1,3}|5\.2\.2)$")  # temporary, or "mailbox full" (5.2.2): retryable


class BounceError(DigestError):
    """The bounce mailbox can't be read (a missing Maildir, an IMAP login refused)."""


@dataclass(frozen=True)
class Report:
    """What one message says: its kind and whom it is about (None: not recognised)."""

    key: str
    kind: EventKind | None
    target: Target | None = None
    detail: str = ""


@dataclass
class Summary:
    counts: dict[str, int] = field(default_factory=dict)  # event kind -> newly recorded
    already: int = 0  # recorded by an earlier run
    unrecognised: list[str] = field(default_factory=list)  # "Subject (Message-ID)" of each left in place

    def add(self, kind: EventKind) -> None:
        self.counts[kind.value] = self.counts.get(kind.value, 0) + 1


def classify(raw: bytes, config: Config, store: Store, secret: str) -> Report:
    """Read one message; look up whom it is about."""
    msg = message_from_bytes(raw)
    key = message_key(msg, raw)
    if _is_feedback_report(msg):
        return _complaint(msg, raw, key, store, secret)
    bounce = _bounce(msg, raw, key, store, secret)
    if bounce is not None:
        return bounce
    return _unsubscribe(msg, key, config, store)


def message_key(msg: Message, raw: bytes) -> str:
    """The message's own Message-ID; a hash of its bytes when it has none."""
    found = (msg.get("message-id") or "").strip()
    return found[:255] if found else "sha256:" + hashlib.sha256(raw).hexdigest()


def _verp_delivery(msg: Message, raw: bytes, secret: str) -> int | None:
    """The delivery a VERP return path names: in the envelope recipient headers, else anywhere."""
    candidates = [v for h in RECIPIENT_HEADERS for v in (msg.get_all(h) or [])]
    for _, address in getaddresses([str(v) for v in candidates]):
        found = tokens.read_return_path(secret, address)
        if found is not None:
            return found
    for match in VERP.finditer(raw):  # quoted in a mangled report's body or attached headers
        found = tokens.read_return_path(secret, match.group().decode("ascii"))
        if found is not None:
            return found
    return None


def _parts(part: Message) -> list[Message]:
    """A multipart (or message/*) part's messages; [] for any other payload."""
    payload = part.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _decoded(part: Message) -> bytes:
    """A leaf part's body, transfer encoding undone."""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _original_message_ids(msg: Message) -> list[str]:
    """Message-IDs of the original message attached to a report (message/rfc822 or text/rfc822-headers)."""
    found: list[str] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global") and part.is_multipart():
            for inner in _parts(part):
                found += [str(v) for v in inner.get_all("message-id") or []]
        elif ctype in ("text/rfc822-headers", "text/rfc822-header", "message/rfc822-headers"):
            headers = message_from_bytes(_decoded(part))
            found += [str(v) for v in headers.get_all("message-id") or []]
    return [m.strip() for m in found if m.strip()]


def _target(msg: Message, raw: bytes, store: Store, secret: str, addresses: list[str]) -> Target | None:
    delivery = _verp_delivery(msg, raw, secret)
    if delivery is not None and (target := reports.by_delivery(store, delivery)) is not None:
        return target
    for message_id in _original_message_ids(msg):
        if (target := reports.by_message_id(store, message_id)) is not None:
            return target
    for address in addresses:
        if (target := reports.by_address(store, address.strip().lower())) is not None:
            return target
    return None


def _is_feedback_report(msg: Message) -> bool:
    report_type = collapse_rfc2231_value(msg.get_param("report-type", ""))
    return msg.get_content_type() == "multipart/report" and report_type.lower() == "feedback-report"


def _complaint(msg: Message, raw: bytes, key: str, store: Store, secret: str) -> Report:
    """RFC 5965: the second part holds Feedback-Type and Original-Rcpt-To; the third the original."""
    fields: dict[str, str] = {}
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            inner = _parts(part)
            text = inner[0].as_string() if inner else _decoded(part).decode()
            for line in text.splitlines():
                name, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(name.strip().lower(), value.strip())
    addresses = [parseaddr(fields.get("original-rcpt-to", ""))[1]] + _original_recipients(msg)
    target = _target(msg, raw, store, secret, [a for a in addresses if a])
    return Report(key, EventKind.COMPLAINT, target, f"feedback-type {fields.get('feedback-type', 'abuse')}")


def _original_recipients(msg: Message) -> list[str]:
    for part in msg.walk():
        if part.get_content_type() == "message/rfc822" and part.is_multipart():
            original = _parts(part)[0]
            return [a for _, a in getaddresses([str(v) for v in original.get_all("to") or []])]
    return []


def _bounce(msg: Message, raw: bytes, key: str, store: Store, secret: str) -> Report | None:
    """A DSN in any shape flufl.bounce knows, or any mail to a VERP address (a bounce by definition)."""
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # noqa: BLE001 - a detector tripping over a malformed message: treat as unknown shape
        temporary, permanent = frozenset(), frozenset()
    failed = [a.decode("ascii", "replace") for a in sorted(permanent)]
    delayed = [a.decode("ascii", "replace") for a in sorted(temporary)]
    verp = _verp_delivery(msg, raw, secret)
    if not failed and not delayed and verp is None:
        return None
    target = _target(msg, raw, store, secret, failed + delayed)
    statuses = _statuses(msg)
    soft = (not failed and bool(delayed)) or bool(statuses and all(SOFT_STATUS.match(s) for s in statuses))
    detail = ", ".join(statuses) or ("no failure the DSN parsers read; named by its VERP token" if verp else "")
    return Report(key, EventKind.SOFT_BOUNCE if soft else EventKind.HARD_BOUNCE, target, detail)


def _statuses(msg: Message) -> list[str]:
    """The Status fields of a DSN's failed or delayed recipients (RFC 3464 section 2.3.4)."""
    out = []
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status" and part.is_multipart():
            for block in _parts(part):
                action = (block.get("action") or "").lower()
                if action.startswith(("failed", "delayed", "error")) and block.get("status"):
                    out.append(str(block.get("status")).split()[0])
    return out


def _unsubscribe(msg: Message, key: str, config: Config, store: Store) -> Report:
    """A mail to the List-Unsubscribe mailto: address, subject "unsubscribe", from a subscriber."""
    subject = re.sub(r"^((re|fwd?|aw|wg)\s*:\s*)+", "", str(msg.get("subject") or "").strip(), flags=re.I)
    auto = (msg.get("auto-submitted") or "no").lower() != "no"
    sender = parseaddr(str(msg.get("from") or ""))[1].lower()
    if subject.lower() == "unsubscribe" and not auto and sender:
        target = reports.by_address(store, sender)
        if target is not None:
            return Report(key, EventKind.UNSUBSCRIBE, target, "mailto unsubscribe")
    return Report(key, None, None, str(msg.get("subject") or "(no subject)"))


def process(config: Config, store: Store, source: MailSource) -> Summary:
    """Read every message once; record what is recognised; leave the rest and list it."""
    secret = tokens.secret_key(config)
    limits = reports.Thresholds(config.delivery.bounce_after, config.delivery.soft_bounce_after)
    summary = Summary()
    for item in source.messages():
        report = classify(item.raw, config, store, secret)
        if report.kind is None or report.target is None:
            summary.unrecognised.append(f"{report.detail[:80]} ({report.key})")
            continue
        if reports.record(store, report.key, report.kind, report.target, source.name, report.detail, limits):
            summary.add(report.kind)
            log.info("%s: %s (%s)", report.kind, report.target.email, report.detail)
        else:
            summary.already += 1
        source.done(item)
    return summary


@dataclass(frozen=True)
class Item:
    ref: str  # the Maildir key or the IMAP UID
    raw: bytes


class MailSource:
    name: str

    def messages(self) -> Iterator[Item]:
        raise NotImplementedError

    def done(self, item: Item) -> None:
        """Mark a processed message read: it stays, and its recorded Message-ID keeps reruns idempotent."""


class MaildirSource(MailSource):
    name = "maildir"

    def __init__(self, path: Path):
        if not (path / "new").is_dir() or not (path / "cur").is_dir():
            raise BounceError(f"{path}: not a Maildir (no new/ and cur/ folders)")
        self.box = mailbox.Maildir(path, factory=None, create=False)

    def messages(self) -> Iterator[Item]:
        for key in sorted(self.box.keys(), key=delivery_order):
            try:
                yield Item(key, self.box.get_bytes(key))
            except (KeyError, FileNotFoundError):  # taken by another reader meanwhile
                continue

    def done(self, item: Item) -> None:
        try:
            message = self.box.get_message(item.ref)
        except KeyError:
            return
        if message.get_subdir() != "cur" or "S" not in message.get_flags():
            message.set_subdir("cur")
            message.add_flag("S")
            self.box[item.ref] = message


_RUNS = re.compile(r"(\d+)")


def delivery_order(key: str) -> tuple[tuple[int, int | str], ...]:
    """A Maildir file name's place in delivery order: its numbers compared as numbers. Names start with the
    delivery's second, then (Dovecot, Python's mailbox) `M` and the microseconds unpadded, so plain string
    order put a message of .100000 s before one of .99999 s in the same second."""
    return tuple((0, int(run)) if run.isdigit() else (1, run) for run in _RUNS.split(key) if run)


class ImapSource(MailSource):
    name = "imap"

    def __init__(self, config: Config):
        if config.imap is None:
            raise BounceError("--imap needs an [imap] table in digest.toml (host, username)")
        password = os.environ.get(IMAP_PASSWORD_ENV)
        if not password:
            raise BounceError(f"[imap] is set but {IMAP_PASSWORD_ENV} is not: export {IMAP_PASSWORD_ENV}=...")
        self.settings, self.password = config.imap, password
        self.box: BaseMailBox | None = None  # logged in by __enter__

    def __enter__(self) -> ImapSource:
        from imap_tools import MailBox, MailBoxStartTls, MailBoxUnencrypted

        s = self.settings
        kind = {"tls": MailBox, "starttls": MailBoxStartTls, "none": MailBoxUnencrypted}[s.security]
        try:
            self.box = kind(s.host, s.port, timeout=s.timeout).login(s.username, self.password, s.folder)
        except Exception as exc:  # noqa: BLE001 - imaplib, socket and TLS errors alike: one line, no traceback
            raise BounceError(f"IMAP {s.host}:{s.port} as {s.username!r}: {exc}") from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.box is not None:
            with contextlib.suppress(Exception):  # closing a dead connection
                self.box.logout()

    def _mailbox(self) -> BaseMailBox:
        if self.box is None:
            raise BounceError("the IMAP mailbox is read inside `with ImapSource(...)` only")
        return self.box

    def messages(self) -> Iterator[Item]:
        for message in self._mailbox().fetch(mark_seen=False, bulk=50):
            if message.uid is None:  # (a server that names no UID: it could never be marked read)
                log.warning("IMAP: a message without a UID is left unread")
                continue
            yield Item(message.uid, message.obj.as_bytes())

    def done(self, item: Item) -> None:
        from imap_tools import MailMessageFlags

        self._mailbox().flag(item.ref, MailMessageFlags.SEEN, True)


def run(config: Config, store: Store, *, maildir: Path | None = None, imap: bool = False) -> Summary:
    """`digest bounces`: the Maildir given (or [bounces] maildir), or the [imap] mailbox."""
    if imap:
        with ImapSource(config) as source:
            return process(config, store, source)
    path = maildir or config.bounces.maildir
    if path is None:
        raise BounceError("say where bounces arrive: --maildir PATH, --imap, or [bounces] maildir in digest.toml")
    return process(config, store, MaildirSource(path))


LEASE_NAME = "bounces"


class BounceService:
    """`digest serve` reads the bounce mailbox every [bounces] every_minutes, in one process at a time:
    whoever holds the "bounces" lease (like the scheduler's) reads; the others wait for it to lapse.
    A run that fails is logged and tried again next time."""

    def __init__(self, config: Config, holder: str | None = None):
        import socket

        self.config = config
        self.interval = config.bounces.every_minutes * 60
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="digest-bounces", daemon=True)
        self.runs = 0  # completed reads, for tests and logs

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        from digest.store import open_store, runs

        store = open_store(self.config)
        try:
            while not self._stop.is_set():
                self.tick(store, runs)
                self._stop.wait(self.interval)
            with contextlib.suppress(DigestError):
                runs.release_lease(store, LEASE_NAME, self.holder)
        finally:
            store.close()

    def tick(self, store: Store, runs: ModuleType) -> None:
        try:  # the lease outlives one interval, so its holder keeps it from one read to the next
            if not runs.hold_lease(store, LEASE_NAME, self.holder, self.interval * 2 + 60):
                return
            summary = run(self.config, store, imap=self.config.bounces.maildir is None)
        except DigestError as exc:
            log.error("reading bounces failed: %s", exc)
            return
        self.runs += 1
        if summary.counts or summary.unrecognised:
            log.info("bounces: recorded %s; %d not recognised", summary.counts, len(summary.unrecognised))
