"""An end-to-end send in any language: a non-ASCII site title, sender and subject pattern, names full
of commas, angle brackets and quotes, international domains and local parts, through a real aiosmtpd."""

from __future__ import annotations

from email import message_from_bytes, message_from_string, policy

import pytest
from delivery_support import digest, write_project
from smtp_sink import SmtpServer

TITLE = "Café Lectures — 读书笔记 📚"
SENDER = 'Zoë "the editor" Müller, Ph.D. <not-an-address>'
SUBJECT = "{title} — {month_name} {year} ✉"
NAMES = {
    "reader@example.com": "Ünï <x@evil.example>, y@evil.example",
    "comma@example.com": "Smith, John",
    "quote@example.com": 'John "Johnny" O\'Brien',
    "arabic@example.com": "قارئ عزيز",
    "jose@bücher.example": "José",
}


def unicode_project(root, port: int):
    return write_project(
        root,
        smtp_port=port,
        extra=f'\n[email]\nsubject = "{SUBJECT}"\n',
    )


def retitle(root) -> None:
    toml = (root / "digest.toml").read_text()
    toml = toml.replace('title = "Link Archive"', f'title = "{TITLE}"').replace(
        'name = "Link Archive"', f"name = '{SENDER}'"
    )
    (root / "digest.toml").write_text(toml)


@pytest.fixture
def server():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.mark.slow
def test_check_and_send_in_any_language_reach_the_server_with_exact_headers(tmp_path, server):
    root = unicode_project(tmp_path / "p", server.port)
    retitle(root)
    for address, name in NAMES.items():
        digest(root, "subscribers", "add", address, "--name", name, check=True)
    check = digest(root, "check", "--month", "2025-02")
    assert check.returncode == 0, check.stdout + check.stderr
    dry = digest(root, "send", "--dry-run")
    assert dry.returncode == 0 and "would go to 5 subscriber(s)" in dry.stdout
    sent = digest(root, "send")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    by_address = {m.rcpt_tos[0]: m for m in server.messages}
    assert sorted(by_address) == sorted(["reader@example.com", "comma@example.com", "quote@example.com",
                                         "arabic@example.com", "jose@xn--bcher-kva.example"])  # fmt: skip
    for address, received in by_address.items():
        message = message_from_bytes(received.content, policy=policy.default)
        assert not message.defects and all(not part.defects for part in message.walk())
        assert str(message["Subject"]) == "Café Lectures — 读书笔记 📚 — February 2025 ✉"
        [sender] = message["From"].addresses
        assert sender.display_name == SENDER and sender.addr_spec == "digest@links.example.com"
        [to] = message["To"].addresses
        given = address if address in NAMES else "jose@bücher.example"
        assert (to.display_name, to.addr_spec) == (NAMES[given], address)
        assert TITLE in str(message["List-Id"])
    status = digest(root, "status", "--month", "2025-02")
    assert "crash" not in status.stdout or "resent after a crash 0" in status.stdout
    again = digest(root, "send")
    assert again.returncode == 0 and len(server.messages) == 5  # nothing twice


def test_send_to_an_international_domain_uses_its_ascii_form(tmp_path, server):
    root = unicode_project(tmp_path / "p", server.port)
    retitle(root)
    copy = digest(root, "send", "--to", "jose@exämple.com")
    assert copy.returncode == 0, copy.stdout + copy.stderr
    [received] = server.messages
    assert received.rcpt_tos == ["jose@xn--exmple-cua.com"]
    assert message_from_bytes(received.content, policy=policy.default)["To"].addresses[0].addr_spec == (
        "jose@xn--exmple-cua.com"
    )


def test_send_to_refuses_an_invalid_address_before_sending_anything(tmp_path, server):
    root = unicode_project(tmp_path / "p", server.port)
    result = digest(root, "send", "--to", "ok@example.com", "--to", "not an address")
    assert result.returncode == 1 and "'not an address' is not a valid email address" in result.stderr
    assert "Traceback" not in result.stderr and server.messages == []


@pytest.mark.slow
def test_a_non_ascii_mailbox_goes_over_smtputf8_when_the_server_offers_it(tmp_path, server):
    root = unicode_project(tmp_path / "p", server.port)
    digest(root, "subscribers", "add", "josé@example.com", "--name", "José", check=True)
    digest(root, "subscribers", "add", "ann@example.com", check=True)
    result = digest(root, "send")
    assert result.returncode == 0, result.stdout + result.stderr
    received = {m.rcpt_tos[0]: m for m in server.messages}
    assert set(received) == {"josé@example.com", "ann@example.com"}
    raw = received["josé@example.com"].content
    message = message_from_string(raw.decode("utf-8"), policy=policy.default)  # RFC 6532: UTF-8 headers
    assert message["To"].addresses[0].addr_spec == "josé@example.com"
    assert received["ann@example.com"].content.isascii()  # only the message that needs it carries UTF-8


@pytest.mark.slow
def test_without_smtputf8_a_non_ascii_mailbox_fails_permanently_and_the_rest_is_sent(tmp_path):
    server = SmtpServer(smtputf8=False).start()
    try:
        root = unicode_project(tmp_path / "p", server.port)
        digest(root, "subscribers", "add", "josé@example.com", check=True)
        digest(root, "subscribers", "add", "ann@example.com", check=True)
        result = digest(root, "send")
        assert result.returncode == 1  # one failure, reported
        assert [m.rcpt_tos for m in server.messages] == [["ann@example.com"]]
        status = digest(root, "status", "--month", "2025-02").stdout
        assert "SMTPUTF8" in status or "SMTPUTF8" in result.stdout + result.stderr
        again = digest(root, "send")  # a permanent failure is not retried, nothing is sent twice
        assert len(server.messages) == 1 and "Traceback" not in again.stderr
    finally:
        server.stop()


def test_a_list_id_with_a_line_break_is_refused_at_load_time(tmp_path):
    root = write_project(tmp_path / "p", delivery='list_id = "digest.example.com\\r\\nBcc: x@evil.example"')
    result = digest(root, "check")
    assert result.returncode != 0 and "list_id" in result.stdout + result.stderr and "Traceback" not in result.stderr
