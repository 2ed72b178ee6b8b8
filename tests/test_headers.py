"""Headers from data, any language: every composed message parses with no defects and reads back as
what went in (site title, sender name, subject pattern, subscriber name and address), with exactly the
subscriber in `To`; and verifies with dkimpy when a key is configured."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from datetime import UTC, date, datetime
from email import errors, message_from_bytes, message_from_string, policy
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from digest.addresses import InvalidAddress, normalise
from digest.collect import make_issue
from digest.config import DkimConfig, EmailConfig
from digest.content import Entry
from digest.delivery import headers
from digest.delivery.message import Composer, Recipient
from digest.render.email import RenderedEmail, new_slot

UNSUBSCRIBE = "https://links.example.com/unsubscribe/MTI6cmVhZGVyQGV4YW1wbGUuY29t.abcdefghijklmnopqrstuvwxyz0"
EXAMPLES = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any Unicode but surrogates (not text), with the characters that broke headers made likely
HOSTILE = st.sampled_from(list(',;:<>"\\@()[]=?é—读者قارئ📬\t\r\n\x00\x7f\u2028 '))
TEXT = st.text(st.one_of(st.characters(blacklist_categories=("Cs",)), HOSTILE), min_size=1, max_size=90)


def shown(value: str) -> str:
    """What a header can carry of `value`: one line, control characters as spaces, spaces collapsed."""
    return " ".join(re.sub(r"[\x00-\x1f\x7f\x85\u2028\u2029]", " ", value).split())


def visible(value: str) -> bool:
    return bool(shown(value))


LOCAL_PARTS = st.one_of(
    st.from_regex(r"[a-z0-9]([a-z0-9._+-]{0,20}[a-z0-9])?", fullmatch=True).filter(lambda s: ".." not in s),
    st.sampled_from(['"john doe"', '"a,b"', '"x@y"', "o'brien", "josé", "用户", "δοκιμή", "ñandú.pérez"]),
)
DOMAINS = st.sampled_from(
    ["example.com", "mail.example.org", "bücher.example", "例え.jp", "münchen.de", "xn--bcher-kva.example"]
)


@st.composite
def addresses(draw) -> str:
    raw = f"{draw(LOCAL_PARTS)}@{draw(DOMAINS)}"
    try:
        return normalise(raw)
    except InvalidAddress:
        assume(False)
        raise


@pytest.fixture(scope="module")
def base_config(tmp_path_factory):
    from conftest import site_settings, to_toml

    from digest.config import load_config

    root = tmp_path_factory.mktemp("headers")
    (root / "digest.toml").write_text(to_toml(site_settings()))
    return load_config(root / "digest.toml")


def configured(config, *, title: str, sender_name: str, subject: str):
    return replace(
        config,
        site=replace(config.site, title=title),
        sender=replace(config.sender, name=sender_name),
        email=EmailConfig(subject=subject),
    )


def subject_pattern(prefix: str, middle: str) -> str:
    """A subject pattern with free text around the placeholders (braces in the text written doubled)."""

    def literal(s: str) -> str:
        return s.replace("{", "{{").replace("}", "}}")

    return f"{literal(prefix)}{{title}}{literal(middle)}{{month_name}} {{year}}"


def email_for(config) -> RenderedEmail:
    entry = Entry(Path("x.md"), "A link", "https://example.com/", datetime(2025, 2, 10, tzinfo=UTC), "News")
    issue = make_issue(date(2025, 2, 1), [entry], config)
    slot = new_slot()
    return RenderedEmail(issue.key, issue.subject, f"<p>Hi <a href='{slot}'>x</a></p>", f"Hi {slot}\n", slot)


def compose(config, address: str, name: str | None):
    email = email_for(config)
    recipient = Recipient(address, "<2025-02.abc@links.example.com>", UNSUBSCRIBE, name)
    return email, Composer(email, config).compose(recipient)


def assert_reads_back(raw: bytes, smtputf8: bool, config, email: RenderedEmail, address: str, name: str | None):
    lines = raw.split(b"\r\n")
    assert all(len(line) <= 998 for line in lines)
    assert raw.isascii() or smtputf8
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\n" not in head.replace(b"\r\n", b"") and b"\r" not in head.replace(b"\r\n", b"")
    # RFC 6532: a message for a non-ASCII mailbox carries UTF-8 headers, read as text; Python's parser
    # predates it and flags every non-ASCII local part, which is exactly what SMTPUTF8 allows
    message = (
        message_from_string(raw.decode("utf-8"), policy=policy.default)
        if smtputf8
        else message_from_bytes(raw, policy=policy.default)
    )
    for part in message.walk():
        assert not part.defects, part.defects
    for field in ("From", "To", "Subject", "Date", "List-Id", "Message-ID", "List-Unsubscribe"):
        [value] = message.get_all(field)
        defects = [d for d in value.defects if not (smtputf8 and isinstance(d, errors.NonASCIILocalPartDefect))]
        assert not defects, (field, defects)
    [sender] = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (shown(config.sender.name), config.sender.address)
    [to] = message["To"].addresses  # exactly one: the subscriber
    assert (to.display_name, to.addr_spec) == (shown(name or ""), address)
    assert str(message["Subject"]) == shown(email.subject)
    list_id = str(message["List-Id"])
    assert list_id.endswith("<digest.links.example.com>") and shown(config.site.title)[:60] in list_id
    assert re.search(r" [+-]\d{4}$", str(message["Date"]))
    assert smtputf8 == (not address.isascii())


@pytest.mark.slow
@EXAMPLES
@given(title=TEXT.filter(visible), sender_name=TEXT.filter(visible), prefix=TEXT, middle=TEXT, name=TEXT | st.none(),
       address=addresses())  # fmt: skip
def test_any_unicode_in_any_header_reads_back_as_written(
    base_config, title, sender_name, prefix, middle, name, address
):
    config = configured(base_config, title=title, sender_name=sender_name, subject=subject_pattern(prefix, middle))
    email, message = compose(config, address, name)
    assert message.recipient == address
    assert_reads_back(message.raw, message.smtputf8, config, email, address, name)


def test_a_name_full_of_addresses_stays_one_display_name(base_config):
    name = "Ünï <x@evil.example>, y@evil.example"
    email, message = compose(base_config, "b@example.com", name)
    parsed = message_from_bytes(message.raw, policy=policy.default)
    assert [(a.display_name, a.addr_spec) for a in parsed["To"].addresses] == [(name, "b@example.com")]
    assert_reads_back(message.raw, message.smtputf8, base_config, email, "b@example.com", name)


@pytest.mark.parametrize(
    "name", ['Smith, John', 'John "Johnny" Smith', "a\\b", "John (work)", "=?utf-8?q?x?=", "Zoë", "a" * 200]
)  # fmt: skip
def test_ascii_and_lookalike_names(base_config, name):
    email, message = compose(base_config, "b@example.com", name)
    assert_reads_back(message.raw, message.smtputf8, base_config, email, "b@example.com", name)


def test_the_date_has_a_numeric_zone_not_gmt(base_config):
    _, message = compose(base_config, "b@example.com", None)
    date_line = next(line for line in message.raw.split(b"\r\n") if line.startswith(b"Date:"))
    assert date_line.endswith(b" +0000") and b"GMT" not in date_line


def test_a_long_subject_folds_within_78_columns(base_config):
    config = configured(
        base_config, title="Café Lectures " * 8, sender_name="Zoë", subject="{title} — {month_name} {year}"
    )
    email, message = compose(config, "b@example.com", None)
    head = message.raw.split(b"\r\n\r\n", 1)[0]
    subject = re.search(rb"^Subject:.*?(?=\r\n\S)", head, re.S | re.M).group()
    assert all(len(line) <= 78 for line in subject.split(b"\r\n"))
    assert_reads_back(message.raw, message.smtputf8, config, email, "b@example.com", None)


def test_header_helpers_never_emit_a_bare_line_break():
    for value in ["a\r\nBcc: x@evil.example", "a\nb", "a\rb", "a\u2028b"]:
        assert "\nBcc" not in headers.unstructured("Subject", value)
        assert headers.unstructured("Subject", value).count("\n") == headers.unstructured("Subject", value).count(
            "\r\n"
        )


# -- DKIM over the same headers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def dkim_config(base_config, tmp_path_factory):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("dkim") / "dkim.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    config = replace(base_config, dkim=DkimConfig(selector="s2026", domain="links.example.com", key_file=path))
    return config, record


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=TEXT.filter(visible), sender_name=TEXT.filter(visible), name=TEXT | st.none(), address=addresses())
def test_signed_messages_with_any_unicode_headers_verify(dkim_config, title, sender_name, name, address):
    base, record = dkim_config
    config = configured(base, title=title, sender_name=sender_name, subject="{title} — {month_name} {year}")
    email, message = compose(config, address, name)
    assert message.raw.startswith(b"DKIM-Signature:")
    assert dkim.verify(message.raw, dnsfunc=lambda *_args, **_kw: record)
    assert_reads_back(message.raw, message.smtputf8, config, email, address, name)
