"""The bytes each recipient gets: RFC 8058 headers, stable Message-IDs, exact bodies, DKIM."""

from __future__ import annotations

import base64
import subprocess
from email import message_from_bytes, policy
from pathlib import Path

import dkim
import pytest
from delivery_support import add_subscribers, digest, write_project

from digest import publish, tokens
from digest.config import load_config
from digest.delivery.message import Composer, Recipient, qp_encode, room_for_soft_break
from digest.render.email import SLOT_PATTERN


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "p")  # composing touches no database: SQLite only


@pytest.fixture
def rendered(project: Path):
    config = load_config(project / "digest.toml")
    return config, publish.render(config)


def compose(config, rendered, address="reader@example.com", url="https://links.example.com/unsubscribe/abc.def"):
    return Composer(rendered.email, config).compose(
        Recipient(address, "<2025-02.x@links.example.com>", url, name="Ann Reader")
    )


def test_headers_are_rfc_8058_and_bulk_sender_ready(rendered):
    config, r = rendered
    message = message_from_bytes(compose(config, r).raw, policy=policy.default)
    assert message["From"] == "Link Archive <digest@links.example.com>"
    assert message["To"] == "Ann Reader <reader@example.com>"
    assert message["Subject"] == "Link Archive: February 2025"
    assert message["Message-ID"] == "<2025-02.x@links.example.com>"
    assert message["List-Id"] == "Link Archive <digest.links.example.com>"
    assert message["Date"].datetime.tzinfo is not None
    assert (
        message["List-Unsubscribe"]
        == "<https://links.example.com/unsubscribe/abc.def>, <mailto:digest@links.example.com?subject=unsubscribe>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_content_type() == "multipart/alternative"
    assert not message.defects


def test_body_parts_decode_to_the_rendered_email_with_the_url_filled_in(rendered):
    config, r = rendered
    url = "https://links.example.com/unsubscribe/" + "x" * 150 + "=.y"  # long, with '=' to encode
    message = message_from_bytes(compose(config, r, url=url).raw, policy=policy.default)
    text, html = [part.get_content().replace("\r\n", "\n") for part in message.iter_parts()]
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert html == r.email.html.replace(r.email.slot, url)
    assert text == r.email.text.replace(r.email.slot, url)
    assert r.email.slot not in html + text and not SLOT_PATTERN.search(html + text)


def test_encoded_lines_fit_rfc_5322_and_never_start_with_a_dot(rendered):
    config, r = rendered
    raw = compose(config, r).raw
    lines = raw.split(b"\r\n")
    assert all(len(line) <= 78 for line in lines)
    assert not any(line.startswith(b".") for line in lines)
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only


@pytest.mark.parametrize(
    "text", ["", ".", ".leading dot\n.another", "x" * 300, "trailing space \nand tab\t\n", "é" * 80, "=" * 100]
)
def test_quoted_printable_round_trips(text):
    import quopri

    encoded = room_for_soft_break(qp_encode(text))
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
    assert quopri.decodestring(encoded.replace(b"\r\n", b"\n")).decode() == text


def test_header_injection_through_a_title_or_name_is_impossible(rendered):
    config, r = rendered
    evil = Composer(r.email, config).compose(
        Recipient("reader@example.com", "<m@x>", "https://links.example.com/u/t", name="Eve\r\nBcc: victim@example.com")
    )
    message = message_from_bytes(evil.raw, policy=policy.default)
    assert message["Bcc"] is None
    with pytest.raises(ValueError):
        Composer(r.email, config).compose(Recipient("reader@example.com", "<m@x>", "https://x/\r\nBcc: v@example.com"))


def test_message_id_is_stable_per_issue_and_address():
    first = tokens.message_id("secret", "2025-02", "a@example.com", "links.example.com")
    assert first == tokens.message_id("secret", "2025-02", "A@example.com", "links.example.com")
    assert first != tokens.message_id("secret", "2025-03", "a@example.com", "links.example.com")
    assert "a@example.com" not in first and first.endswith("@links.example.com>")


@pytest.mark.slow
def test_each_recipient_gets_their_own_unsubscribe_url(smtp_project, smtp_server):
    addresses = add_subscribers(smtp_project, 3)
    digest(smtp_project, "send", check=True)
    secret = "test-secret"
    for received in smtp_server.messages:
        message = received.message
        url = str(message["List-Unsubscribe"]).split(">")[0].lstrip("<")
        token = url.rsplit("/", 1)[1]
        subject = tokens.read_token(secret, "unsubscribe", token)
        assert subject.address == received.rcpt_tos[0]
        assert url in message.get_body(("html",)).get_content()
        assert url in message.get_body(("plain",)).get_content()
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == sorted(addresses)


def test_a_tampered_unsubscribe_token_is_rejected():
    token = tokens.make_token("secret", "unsubscribe", tokens.TokenSubject("a@example.com", 7))
    assert tokens.read_token("secret", "unsubscribe", token) == tokens.TokenSubject("a@example.com", 7)
    payload, signature = token.split(".")
    forged_payload = base64.urlsafe_b64encode(b"8:b@example.com").rstrip(b"=").decode()
    for bad in (
        f"{forged_payload}.{signature}",
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        "garbage",
        token + "x" * 600,
    ):
        with pytest.raises(tokens.TokenError):
            tokens.read_token("secret", "unsubscribe", bad)
    with pytest.raises(tokens.TokenError):
        tokens.read_token("another-secret", "unsubscribe", token)
    with pytest.raises(tokens.TokenError):  # an unsubscribe token is not a confirmation token
        tokens.read_token("secret", "confirm", token)


@pytest.mark.slow
def test_dkim_signature_verifies_against_the_public_key(tmp_path, make_project, smtp_server):
    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    project = make_project(
        smtp_port=smtp_server.port,
        extra=f'\n[dkim]\nselector = "s2026"\ndomain = "links.example.com"\nkey_file = "{key}"\n',
    )
    add_subscribers(project, 2)
    digest(project, "send", check=True)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name, timeout=5):
        assert name == b"s2026._domainkey.links.example.com."
        return record

    for received in smtp_server.messages:
        assert dkim.verify(received.content, dnsfunc=dns)
        signature = received.message["DKIM-Signature"]
        signed = {h.strip().lower() for h in signature.split("h=")[1].split(";")[0].replace(" ", "").split(":")}
        assert {
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "list-id",
            "list-unsubscribe",
            "list-unsubscribe-post",
        } <= signed
        tampered = received.content.replace(
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: nope"
        )
        assert not dkim.verify(tampered, dnsfunc=dns)
