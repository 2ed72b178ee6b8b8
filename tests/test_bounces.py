"""Bounces, complaints and mailto unsubscribes that arrive after sending, read by `digest bounces`.

Real parts only: the issue is sent through a real SMTP server (aiosmtpd) with a VERP return path;
the reports (Postfix, Exim, Gmail and Outlook DSNs, a delayed DSN, an ARF complaint, a mangled DSN
that only the VERP token identifies, a mailto unsubscribe, a reader's reply) are filled in from the
message really sent and delivered by a second real SMTP server into a Maildir; IMAP is pymap serving
that Maildir. The CLI runs as a subprocess.
"""

from __future__ import annotations

import mailbox
import re
import time
from pathlib import Path

import pytest
from bounce_support import ImapServer, MaildirServer, Sent, plain_mail, report
from delivery_support import digest, write_project
from smtp_sink import SmtpServer

from digest import bounces, tokens
from digest.config import load_config
from digest.store import open_store
from digest.store import reports as ledger
from digest.store import subscribers as subs

SECRET = "test-secret"  # what delivery_support.digest() gives the CLI
VERP_DOMAIN = "bounces.links.example.com"


@pytest.fixture
def relay():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def inbox(tmp_path):
    server = MaildirServer(tmp_path / "bounces").start()
    yield server
    server.stop()


def sent_issue(root: Path, relay: SmtpServer, names: list[str]) -> dict[str, Sent]:
    """Subscribe `names`@example.org, send February 2025 through the relay: what each one was sent."""
    csv = root / "readers.csv"
    csv.write_text("email\n" + "".join(f"{n}@example.org\n" for n in names))
    digest(root, "subscribers", "import", str(csv), check=True)
    digest(root, "send", check=True)
    out = {}
    for received in relay.messages:
        message = received.message
        out[received.rcpt_tos[0].split("@")[0]] = Sent(
            received.rcpt_tos[0], received.mail_from, str(message["Message-ID"]), str(message["Subject"])
        )
    return out


def project(tmp_path: Path, relay: SmtpServer, delivery: str = "", extra: str = "") -> Path:
    return write_project(tmp_path / "p", smtp_port=relay.port, delivery=delivery, extra=extra)


def people(root: Path) -> dict[str, tuple[str, int, int, int]]:
    store = open_store(load_config(root / "digest.toml"))
    try:
        return {
            s.email.split("@")[0]: (str(s.status), s.hard_bounces, s.soft_bounces, s.complaints)
            for s in subs.iterate(store)
        }
    finally:
        store.close()


def run_bounces(root: Path, maildir: Path) -> bounces.Summary:
    config = load_config(root / "digest.toml")
    store = open_store(config)
    try:
        return bounces.run(config, store, maildir=maildir)
    finally:
        store.close()


# -- VERP -----------------------------------------------------------------------------------------


def test_each_message_carries_a_signed_return_path_naming_its_delivery(tmp_path, relay, monkeypatch):
    root = project(tmp_path, relay, delivery=f'return_path_domain = "{VERP_DOMAIN}"')
    sent = sent_issue(root, relay, ["ann", "bob"])
    store = open_store(load_config(root / "digest.toml"))
    try:
        for name, message in sent.items():
            assert re.fullmatch(rf"bounces\+\d+\.[0-9a-f]{{16}}@{re.escape(VERP_DOMAIN)}", message.mail_from)
            assert len(message.mail_from.split("@")[0]) <= 64  # RFC 5321's local-part limit
            delivery = tokens.read_return_path(SECRET, message.mail_from)
            target = ledger.by_delivery(store, delivery)
            assert target.email == f"{name}@example.org"
            assert ledger.by_message_id(store, message.message_id) == target  # the same delivery both ways
        # a forged or altered token names nothing
        forged = re.sub(r"\+(\d+)\.", lambda m: f"+{int(m.group(1)) + 1}.", sent["ann"].mail_from)
        assert tokens.read_return_path(SECRET, forged) is None
        assert tokens.read_return_path("another-secret", sent["ann"].mail_from) is None
    finally:
        store.close()


def test_without_a_return_path_domain_the_sender_address_is_the_envelope_sender(tmp_path, relay):
    root = project(tmp_path, relay)
    sent = sent_issue(root, relay, ["ann"])
    assert sent["ann"].mail_from == "digest@links.example.com"


# -- the shapes real providers send, from a Maildir ------------------------------------------------


SHAPES = {"postfix": "postfix", "exim": "exim", "gmail": "gmail", "outlook": "outlook", "mangled": "mangled"}


@pytest.mark.slow
def test_real_reports_in_a_maildir_are_recorded_once_and_the_rest_left_in_place(make_project, relay, inbox):
    # on SQLite and on PostgreSQL (make_project)
    root = make_project(smtp_port=relay.port, delivery=f'return_path_domain = "{VERP_DOMAIN}"')
    names = [*SHAPES, "soft", "complainer", "leaver", "fine"]
    sent = sent_issue(root, relay, names)
    for name, shape in SHAPES.items():
        inbox.deliver(report(shape, sent[name]), sent[name].mail_from)
    inbox.deliver(report("postfix-delayed", sent["soft"]), sent["soft"].mail_from)
    inbox.deliver(report("arf", sent["complainer"]), sent["complainer"].mail_from)
    mailto = "digest@links.example.com"  # the mailto: in List-Unsubscribe, subject "unsubscribe"
    inbox.deliver(plain_mail("Leaver <leaver@example.org>", mailto, "unsubscribe", "", "<u1@example.org>"), mailto)
    inbox.deliver(plain_mail("fine@example.org", mailto, "Re: " + sent["fine"].subject, "Thanks!", "<r1@x>"), mailto)
    inbox.deliver(plain_mail("stranger@example.net", mailto, "unsubscribe", "", "<s1@example.net>"), mailto)

    first = digest(root, "bounces", "--maildir", str(inbox.path), check=True)

    assert first.stdout.splitlines() == [
        "recorded: 1 complaint, 5 hard bounces, 1 soft bounce, 1 unsubscribe; 0 already recorded before",
        "2 messages not recognised, left in place:",
        f"  Re: {sent['fine'].subject} (<r1@x>)",
        "  unsubscribe (<s1@example.net>)",
    ]
    after = people(root)
    assert after == {
        **{name: ("bounced", 1, 0, 0) for name in SHAPES},
        "soft": ("active", 0, 1, 0),
        "complainer": ("unsubscribed", 0, 0, 1),
        "leaver": ("unsubscribed", 0, 0, 0),
        "fine": ("active", 0, 0, 0),
    }
    box = mailbox.Maildir(inbox.path, create=False)
    flags = sorted((m["Message-ID"], m.get_subdir(), "S" in m.get_flags()) for m in box)
    left = [(mid, subdir, seen) for mid, subdir, seen in flags if mid in ("<r1@x>", "<s1@example.net>")]
    assert left == [("<r1@x>", "new", False), ("<s1@example.net>", "new", False)]  # untouched
    assert sum(1 for _, subdir, seen in flags if subdir == "cur" and seen) == 8

    second = digest(root, "bounces", "--maildir", str(inbox.path), check=True)
    assert second.stdout.splitlines()[0] == "recorded: nothing new; 8 already recorded before"
    assert people(root) == after

    status = digest(root, "status", check=True).stdout
    assert "2025-02: finished; sent 9," in status
    assert "  after it: 5 hard bounces, 1 soft bounce, 1 complaint, 2 unsubscribed" in status


@pytest.mark.slow
def test_a_complaint_is_found_by_its_message_id_without_verp(tmp_path, relay, inbox):
    root = project(tmp_path, relay)  # no return_path_domain: the ARF report's quoted Message-ID names it
    sent = sent_issue(root, relay, ["complainer", "other"])
    raw = report("arf", sent["complainer"]).replace(b"Original-Rcpt-To: <complainer@example.org>\r\n", b"")
    inbox.deliver(raw, "digest@links.example.com")
    summary = run_bounces(root, inbox.path)
    assert summary.counts == {"complaint": 1} and not summary.unrecognised
    assert people(root)["complainer"] == ("unsubscribed", 0, 0, 1)
    assert people(root)["other"] == ("active", 0, 0, 0)


@pytest.mark.slow
def test_bounces_cross_their_thresholds_hard_and_soft_apart(tmp_path, relay, inbox):
    root = project(tmp_path, relay, delivery="bounce_after = 2\nsoft_bounce_after = 3")
    sent = sent_issue(root, relay, ["dead", "full"])
    to = sent["dead"].mail_from

    inbox.deliver(report("postfix", sent["dead"]), to)
    run_bounces(root, inbox.path)
    assert people(root)["dead"] == ("active", 1, 0, 0)  # one hard bounce: not yet
    inbox.deliver(report("postfix", sent["dead"]), to)  # the same report again (same Message-ID)
    run_bounces(root, inbox.path)
    assert people(root)["dead"] == ("active", 1, 0, 0)  # changes nothing
    inbox.deliver(report("exim", sent["dead"]), to)  # a second, distinct hard bounce
    run_bounces(root, inbox.path)
    assert people(root)["dead"] == ("bounced", 2, 0, 0)

    for nonce in ("a", "b"):
        inbox.deliver(report("postfix-delayed", sent["full"], nonce), to)
    run_bounces(root, inbox.path)
    assert people(root)["full"] == ("active", 0, 2, 0)  # soft bounces count apart, to a larger threshold
    inbox.deliver(report("postfix-delayed", sent["full"], "c"), to)
    run_bounces(root, inbox.path)
    assert people(root)["full"] == ("bounced", 0, 3, 0)


def test_a_maildir_that_is_not_one_is_an_error_not_a_traceback(tmp_path, relay):
    root = project(tmp_path, relay)
    result = digest(root, "bounces", "--maildir", str(tmp_path / "nowhere"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{tmp_path / 'nowhere'}: not a Maildir (no new/ and cur/ folders)" in result.stderr + result.stdout


def test_a_maildir_is_read_in_delivery_order_whatever_its_names_sort_as(tmp_path):
    """Maildir names carry the delivery's second and unpadded microseconds (`1733222222.M99999P7Q1.host`):
    as strings, .100000 s sorted before .99999 s of the same second, and the report listed the messages
    left unread in another order than they came."""
    box = mailbox.Maildir(tmp_path / "box", create=True)
    names = [  # in delivery order
        "1733222222.M99999P7Q1.host",
        "1733222222.M100000P7Q2.host",
        "1733222222.M100000P7Q10.host",
        "1733222223.M5P7Q11.host",
        "1733222223.M5P7Q11.host,S=1234",  # (Dovecot adds the size; the same delivery, copied)
        "1733222230.V803I1a2M12345.mx",
    ]
    for number, name in enumerate(reversed(names)):
        (tmp_path / "box" / "new" / name).write_bytes(f"Subject: {len(names) - number}\n\nbody\n".encode())
    read = [item.ref for item in bounces.MaildirSource(tmp_path / "box").messages()]
    assert read == names
    assert sorted(names) != names  # the case string order got wrong
    assert box.get_bytes(read[0]).startswith(b"Subject: 1\n")


# -- IMAP ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_imap_reads_the_same_reports_from_a_real_imap_server(tmp_path, relay):
    base = tmp_path / "imap"
    base.mkdir()
    inbox = MaildirServer(base / "bouncebox").start()
    imap = ImapServer(base, "bouncebox", "bounces", "imap-secret").start()
    try:
        settings = f'\n[imap]\nhost = "127.0.0.1"\nport = {imap.port}\nsecurity = "none"\nusername = "bounces"\n'
        root = project(tmp_path, relay, delivery=f'return_path_domain = "{VERP_DOMAIN}"', extra=settings)
        sent = sent_issue(root, relay, ["gmail", "complainer", "fine"])
        inbox.deliver(report("gmail", sent["gmail"]), sent["gmail"].mail_from)
        inbox.deliver(report("arf", sent["complainer"]), sent["complainer"].mail_from)
        inbox.deliver(plain_mail("fine@example.org", "digest@links.example.com", "Hello", "hi", "<h1@x>"), "x@y")
        env = {"DIGEST_IMAP_PASSWORD": "imap-secret"}

        first = digest(root, "bounces", "--imap", env=env, check=True)
        assert first.stdout.splitlines() == [
            "recorded: 1 complaint, 1 hard bounce; 0 already recorded before",
            "1 message not recognised, left in place:",
            "  Hello (<h1@x>)",
        ]
        assert people(root) == {
            "gmail": ("bounced", 1, 0, 0),
            "complainer": ("unsubscribed", 0, 0, 1),
            "fine": ("active", 0, 0, 0),
        }
        second = digest(root, "bounces", "--imap", env=env, check=True)
        assert second.stdout.splitlines()[0] == "recorded: nothing new; 2 already recorded before"

        wrong = digest(root, "bounces", "--imap", env={"DIGEST_IMAP_PASSWORD": "wrong"})
        assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
        assert f"IMAP 127.0.0.1:{imap.port} as 'bounces':" in wrong.stderr
        missing = digest(root, "bounces", "--imap")
        assert missing.returncode == 1 and "DIGEST_IMAP_PASSWORD" in missing.stderr
    finally:
        imap.stop()
        inbox.stop()


# -- digest serve reads the mailbox every few minutes, one process at a time -----------------------


@pytest.mark.slow
def test_serve_reads_bounces_under_a_lease_one_process_at_a_time(tmp_path, relay, inbox):
    from digest.store import runs

    extra = f'\n[bounces]\nevery_minutes = 60\nmaildir = "{inbox.path}"\n'
    root = project(tmp_path, relay, extra=extra)
    sent = sent_issue(root, relay, ["dead"])
    inbox.deliver(report("postfix", sent["dead"]), sent["dead"].mail_from)
    config = load_config(root / "digest.toml")
    first, second = bounces.BounceService(config, "host-a:1"), bounces.BounceService(config, "host-b:2")

    first.start()  # reads at once, then every 60 minutes; holds the lease in between
    store = open_store(config)
    try:
        deadline = time.monotonic() + 60
        while first.runs == 0 and time.monotonic() < deadline:
            first._stop.wait(0.05)
        assert first.runs == 1 and people(root)["dead"] == ("bounced", 1, 0, 0)
        second.tick(store, runs)  # another serve process: the lease is taken, it reads nothing
        assert second.runs == 0
        first.stop()  # hands the lease back
        second.tick(store, runs)
        assert second.runs == 1
    finally:
        if first._thread.is_alive():
            first.stop()
        store.close()
