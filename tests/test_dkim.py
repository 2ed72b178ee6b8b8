"""DKIM signing: every RSA and Ed25519 signature verifies with dkimpy, for any headers and body."""

from __future__ import annotations

import base64
import dataclasses
import os
import pickle
import re
import secrets
from collections import Counter
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from delivery_support import add_subscribers, digest, issue_counts, send_stopped_midway, write_project
from hypothesis import given, settings
from hypothesis import strategies as st

from digest import publish
from digest.config import load_config
from digest.delivery.dkim import DkimKey, DkimSigner
from digest.delivery.message import DKIM_HEADERS, Composer, Recipient, _dkim_signer
from digest.errors import ConfigError, DeliveryError

DOMAIN = "links.example.com"
RSA_SELECTOR, ED_SELECTOR = "s2026", "e2026"
ALL_HEADERS = {h.decode() for h in DKIM_HEADERS}


@dataclasses.dataclass(frozen=True)
class Keys:
    folder: Path
    rsa: rsa.RSAPrivateKey
    ed25519: ed25519.Ed25519PrivateKey

    @property
    def rsa_file(self) -> Path:
        return self.folder / "dkim.pem"

    @property
    def ed25519_file(self) -> Path:
        return self.folder / "dkim-ed25519.pem"

    def dns(self, name: bytes, timeout: int = 5) -> bytes:
        """The TXT records a receiver would look up: `v=DKIM1; k=...; p=...` per selector."""
        records = {
            f"{RSA_SELECTOR}._domainkey.{DOMAIN}.".encode(): b"v=DKIM1; k=rsa; p="
            + base64.b64encode(
                self.rsa.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            ),
            f"{ED_SELECTOR}._domainkey.{DOMAIN}.".encode(): b"v=DKIM1; k=ed25519; p="
            + base64.b64encode(
                self.ed25519.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            ),
        }
        return records[name]


def pem(key, encryption=None) -> bytes:
    """PKCS#8 PEM, as `openssl genpkey` writes (for Ed25519) and OpenSSL 3's `genrsa`."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption or serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Keys:
    folder = tmp_path_factory.mktemp("keys")
    made = Keys(folder, rsa.generate_private_key(65537, 2048), ed25519.Ed25519PrivateKey.generate())
    made.rsa_file.write_bytes(  # the traditional "BEGIN RSA PRIVATE KEY" form, as older `openssl genrsa` writes
        made.rsa.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    made.ed25519_file.write_bytes(pem(made.ed25519))
    return made


def dkim_table(keys: Keys, ed25519_key: bool = True, **override: str) -> str:
    settings = {"selector": RSA_SELECTOR, "domain": DOMAIN, "key_file": str(keys.rsa_file)}
    if ed25519_key:
        settings |= {"ed25519_selector": ED_SELECTOR, "ed25519_key_file": str(keys.ed25519_file)}
    settings |= override
    return "\n[dkim]\n" + "".join(f'{k} = "{v}"\n' for k, v in settings.items())


@pytest.fixture(scope="module")
def project(tmp_path_factory, keys: Keys) -> Path:
    return write_project(tmp_path_factory.mktemp("dkim") / "p", extra=dkim_table(keys))


@pytest.fixture(scope="module")
def config(project: Path):
    return load_config(project / "digest.toml")


@pytest.fixture(scope="module")
def rendered(config):
    return publish.render(config).email


def signatures(message: bytes) -> list[dict[bytes, bytes]]:
    """The tags of each DKIM-Signature, top first."""
    d = dkim.DKIM(message)
    return [dkim.util.parse_tag_value(value) for name, value in d.headers if name.lower() == b"dkim-signature"]


def verified(message: bytes, keys: Keys) -> list[bool]:
    """dkimpy's verdict on each signature, top first (dkim.verify checks only the first)."""
    d = dkim.DKIM(message)
    return [_verify(d, i, keys) for i in range(len(signatures(message)))]


def _verify(d: dkim.DKIM, index: int, keys: Keys) -> bool:
    try:
        return d.verify(idx=index, dnsfunc=keys.dns)
    except dkim.DKIMException:  # a body hash mismatch raises; dkim.verify() turns it into False too
        return False


def signer(keys: Keys, rsa_key: bool = True, ed25519_key: bool = True) -> DkimSigner:
    chosen = [DkimKey(RSA_SELECTOR, keys.rsa)] if rsa_key else []
    chosen += [DkimKey(ED_SELECTOR, keys.ed25519)] if ed25519_key else []
    return DkimSigner(DOMAIN, chosen, DKIM_HEADERS)


def compose(config, email, name="Ann Reader", address="reader@example.com"):
    url = "https://links.example.com/unsubscribe/abc.def"
    return Composer(email, config).compose(Recipient(address, "<2025-02.x@links.example.com>", url, name=name)).raw


# --- the Composer's messages -------------------------------------------------------------


def test_both_signatures_verify_and_cover_every_list_header(config, rendered, keys):
    raw = compose(config, rendered)
    assert verified(raw, keys) == [True, True]
    assert dkim.verify(raw, dnsfunc=keys.dns)  # the one-call form checks the first (RSA)
    rsa_tags, ed_tags = signatures(raw)
    assert (rsa_tags[b"a"], rsa_tags[b"s"]) == (b"rsa-sha256", RSA_SELECTOR.encode())
    assert (ed_tags[b"a"], ed_tags[b"s"]) == (b"ed25519-sha256", ED_SELECTOR.encode())
    for tags in (rsa_tags, ed_tags):
        assert tags[b"c"] == b"relaxed/relaxed" and tags[b"d"] == DOMAIN.encode()
        assert {h.strip().decode() for h in tags[b"h"].split(b":")} == ALL_HEADERS
        assert int(tags[b"t"]) > 1_700_000_000


def test_signature_header_is_folded_with_crlf_space(config, rendered):
    raw = compose(config, rendered)
    head = raw[: raw.index(b"\r\n\r\n")]
    assert b"\n" not in head.replace(b"\r\n", b"") and b"\r" not in head.replace(b"\r\n", b"")
    blocks = re.findall(rb"^DKIM-Signature:.*\r\n(?:[ \t].*\r\n)*", head + b"\r\n", flags=re.M)
    assert len(blocks) == 2
    for block in blocks:
        lines = block.split(b"\r\n")[:-1]
        assert all(len(line) <= 78 for line in lines)
        assert len(lines) > 2  # b= folded, not one 400-character line
        assert block.index(b" h=") < block.index(b" bh=") < block.index(b" b=")  # dkimpy's order


def test_rsa_alone_verifies(tmp_path, keys, rendered):
    project = write_project(tmp_path / "p", extra=dkim_table(keys, ed25519_key=False))
    raw = compose(load_config(project / "digest.toml"), rendered)
    assert verified(raw, keys) == [True]
    assert signatures(raw)[0][b"a"] == b"rsa-sha256"


def unsigned(raw: bytes) -> bytes:
    return re.sub(rb"^DKIM-Signature:.*\r\n(?:[ \t].*\r\n)*", b"", raw, flags=re.M)


def test_ed25519_alone_verifies(config, rendered, keys):
    message = unsigned(compose(config, rendered))
    assert b"DKIM-Signature" not in message
    only_ed = signer(keys, rsa_key=False)(message) + message
    assert verified(only_ed, keys) == [True]
    assert signatures(only_ed)[0][b"a"] == b"ed25519-sha256"


def test_tampered_body_or_list_unsubscribe_fails_both(config, rendered, keys):
    raw = compose(config, rendered)
    assert raw.count(b"Unsubscribe") >= 2
    tampered = [
        raw.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: nope"),
        raw.replace(b"<https://links.example.com/unsubscribe/abc.def>", b"<https://evil.example/unsubscribe/abc.def>"),
        raw[:-40] + raw[-40:].replace(b"--", b"-x", 1),  # the closing boundary: the body
        raw.replace(b"Subject: ", b"Subject: Re: ", 1),
        raw.replace(b"\r\n\r\n", b"\r\nFrom: Someone Else <boss@example.com>\r\n\r\n", 1),  # a second From
    ]
    for message in tampered:
        assert message != raw
        assert verified(message, keys) == [False, False]


def test_relaxed_canonicalisation_survives_whitespace_changes_in_transit(config, rendered, keys):
    """What relays may do: refold headers, pad spaces, add trailing space and empty lines to the body."""
    raw = compose(config, rendered)
    head, body = raw.split(b"\r\n\r\n", 1)
    head = head.replace(b"Message-ID: ", b"Message-ID:\r\n \t ").replace(b"MIME-Version: 1.0", b"MIME-Version:  1.0 \t")
    head = head.replace(b"List-Unsubscribe-Post:", b"list-unsubscribe-post:")
    body = body.replace(b"\r\n", b" \t\r\n") + b"\r\n\r\n \r\n"
    assert verified(head + b"\r\n\r\n" + body, keys) == [True, True]


unicode_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)


@pytest.mark.slow
@settings(max_examples=250, deadline=None)
@given(
    subject=unicode_text,
    text=unicode_text,
    html=unicode_text,
    name=st.text(st.characters(exclude_categories=("Cs",)), max_size=80),
    sender=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=60),
    title=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=80),
    local=st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,30}", fullmatch=True),
)
def test_composer_messages_verify_for_any_unicode(
    config, rendered, keys, subject, text, html, name, sender, title, local
):
    slot = rendered.slot  # where each reader's unsubscribe URL goes
    email = dataclasses.replace(rendered, subject=subject, text=f"{text}\n{slot}\n{text}", html=f"{html}{slot}")
    site = dataclasses.replace(config.site, title=title)
    custom = dataclasses.replace(config, sender=dataclasses.replace(config.sender, name=sender), site=site)
    raw = compose(custom, email, name=name, address=f"{local}@example.com")
    assert verified(raw, keys) == [True, True]
    assert body_hash_once_per_send(custom, email) == body_hash_of_whole_message(custom, email)


def body_hash_once_per_send(config, email) -> bytes:
    composer = Composer(email, config)
    composer.boundary = "=_fixed"
    return signatures(composer.compose(reader()).raw)[0][b"bh"]


def body_hash_of_whole_message(config, email) -> bytes:
    """The signer run on the finished message, canonicalising the whole body there and then."""
    composer = Composer(email, config)
    composer.boundary, signer, composer.signer = "=_fixed", composer.signer, None
    return signatures(signer(composer.compose(reader()).raw))[0][b"bh"]


def reader() -> Recipient:
    return Recipient("reader@example.com", "<2025-02.x@links.example.com>", "https://links.example.com/u/abc.def")


@pytest.mark.parametrize("pad", ["", " ", "  \t", "\t\t  "])
def test_a_body_canonicalised_once_per_send_hashes_like_the_whole_message(config, rendered, keys, pad):
    """The Composer puts each piece of the issue in relaxed form once per send and joins them per reader;
    white space around the reader's link and at line ends must hash as the whole message would."""
    slot = rendered.slot
    text = f"Read it.{pad}\n{pad}{slot}{pad}\n\n  indented {pad}  text {pad}\n{pad}"
    email = dataclasses.replace(rendered, text=text, html=f"<p>{pad} x {pad}</p>{pad}\n{pad}{slot}{pad}\n")
    assert body_hash_once_per_send(config, email) == body_hash_of_whole_message(config, email)
    assert verified(compose(config, email), keys) == [True, True]


def test_the_shipped_issue_takes_the_once_per_send_path(config, rendered):
    composer = Composer(rendered, config)
    assert composer.text.relaxes_in_pieces and composer.html.relaxes_in_pieces


# --- raw messages with everything relaxed canonicalisation must handle -----------------------

WSP = st.text(st.sampled_from(" \t"), min_size=1, max_size=4)
VALUE_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\r\n\x0b\x0c")
WORD = st.text(VALUE_CHARS, min_size=1, max_size=12)


@st.composite
def header_value(draw) -> str:
    """Words separated by single or repeated spaces and tabs, or by folds (CRLF then WSP)."""
    out = draw(st.sampled_from(["", " ", "\t", "  "]))
    for word in draw(st.lists(WORD, max_size=6)):
        out += word + draw(st.one_of(WSP, st.builds(lambda w: "\r\n" + w, WSP), st.just("")))
    return out


@st.composite
def raw_message(draw) -> bytes:
    names = [n.decode() for n in DKIM_HEADERS] + ["received", "x-mailer", "reply-to"]
    fields = draw(st.lists(st.tuples(st.sampled_from(names), header_value()), max_size=14))
    fields.insert(draw(st.integers(0, len(fields))), ("from", draw(header_value())))
    if draw(st.booleans()):  # a repeated signed field: every instance gets signed
        fields.append((draw(st.sampled_from(names)), draw(header_value())))
    head = "".join(f"{draw(st.sampled_from([n, n.upper(), n.title()]))}:{v}\r\n" for n, v in fields)
    line = st.lists(st.one_of(WORD, WSP), max_size=8).map("".join)
    lines = draw(st.lists(line, max_size=10))
    body = "\r\n".join(lines) + draw(st.sampled_from(["", "\r\n", "\r\n\r\n", "\r\n \r\n\t\r\n", " \t"]))
    separator = draw(st.sampled_from(["\r\n", "\r\n"] + ([""] if not body else [])))  # no blank line: all header
    return (head + separator + body).encode("utf-8")


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(message=raw_message(), which=st.sampled_from(["rsa", "ed25519", "both"]))
def test_raw_messages_with_odd_whitespace_verify(message, which, keys):
    sign = signer(keys, rsa_key=which != "ed25519", ed25519_key=which != "rsa")
    signed = sign(message) + message
    assert verified(signed, keys) == [True] * (2 if which == "both" else 1)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(message=raw_message(), extra=st.text(VALUE_CHARS.filter(lambda c: not c.isspace()), min_size=1, max_size=5))
def test_raw_messages_fail_when_the_body_changes(message, extra, keys):
    signed = signer(keys)(message) + message
    changed = signed + extra.encode() if b"\r\n\r\n" in message or message.startswith(b"\r\n") else None
    if changed is not None:
        assert verified(changed, keys) == [False, False]


def test_every_instance_of_a_repeated_header_is_signed(keys):
    message = (
        b"From: a@example.com\r\nTo: b@example.com\r\nX-Other: 1\r\nTo: c@example.com\r\nSubject: hi\r\n\r\nbody\r\n"
    )
    signed = signer(keys, ed25519_key=False)(message) + message
    assert re.sub(rb"\s", b"", signatures(signed)[0][b"h"]) == b"from:to:to:subject"
    assert verified(signed, keys) == [True]
    assert verified(signed.replace(b"To: c@example.com\r\n", b""), keys) == [False]
    assert verified(signed.replace(b"To: b@example.com\r\n", b"To: x@example.com\r\n"), keys) == [False]


def test_only_present_headers_are_listed(keys):
    message = b"From: a@example.com\r\nSubject: hi\r\n\r\n"
    signed = signer(keys)(message) + message
    assert [re.sub(rb"\s", b"", tags[b"h"]) for tags in signatures(signed)] == [b"from:subject"] * 2
    assert verified(signed, keys) == [True, True]


def test_a_message_without_from_is_refused(keys):
    with pytest.raises(ValueError, match="From"):
        signer(keys)(b"Subject: hi\r\n\r\nbody\r\n")


def test_signer_pickles_for_a_process_pool(keys):
    message = b"From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n"
    again = pickle.loads(pickle.dumps(signer(keys)))
    assert verified(again(message) + message, keys) == [True, True]


# --- key files ---------------------------------------------------------------------------------


def small_rsa_key() -> rsa.RSAPrivateKey:
    """A 512-bit key: cryptography won't generate one, so build it from two probable primes."""

    def prime(bits: int) -> int:
        while True:
            n = secrets.randbits(bits) | (3 << (bits - 2)) | 1  # the top two bits: p * q has all 512
            if all(pow(a, n - 1, n) == 1 for a in (2, 3, 5, 7, 11, 13, 17)) and (n - 1) % 65537:
                return n

    p, q = prime(256), prime(256)
    d = pow(65537, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(65537, p * q)
    )
    return numbers.private_key(unsafe_skip_rsa_key_validation=True)


BAD_KEYS = {
    "missing": (None, "No such file or directory"),
    "folder": ("folder", "Is a directory"),
    "not PEM": (b"hello, I am not a key\n", "not a PEM private key"),
    "damaged PEM": (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a valid PEM private key"),
    "public key": ("public", "a public key"),
    "encrypted": ("encrypted", "the key is encrypted"),
    "EC key": ("ec", "an EC key, where an RSA key is needed"),
    "Ed25519 as the RSA key": ("ed25519", "an Ed25519 key, where an RSA key is needed"),
    "512-bit RSA": ("small", "an RSA key of 512 bits"),
}


def write_bad_key(path: Path, kind: bytes | str | None, keys: Keys) -> None:
    content = {
        "public": lambda: keys.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "encrypted": lambda: pem(keys.rsa, serialization.BestAvailableEncryption(b"secret")),
        "ec": lambda: pem(ec.generate_private_key(ec.SECP256R1())),
        "ed25519": lambda: pem(keys.ed25519),
        "small": lambda: pem(small_rsa_key()),
    }
    if kind == "folder":
        path.mkdir()
    elif isinstance(kind, str):
        path.write_bytes(content[kind]())
    elif kind is not None:
        path.write_bytes(kind)


@pytest.mark.parametrize("case", BAD_KEYS)
def test_a_bad_rsa_key_file_is_named_with_what_is_wrong(case, tmp_path, keys, rendered):
    kind, expected = BAD_KEYS[case]
    key_file = tmp_path / "bad.pem"
    write_bad_key(key_file, kind, keys)
    project = write_project(tmp_path / "p", extra=dkim_table(keys, key_file=str(key_file)))
    config = load_config(project / "digest.toml")
    with pytest.raises(DeliveryError) as caught:
        Composer(rendered, config)
    message = str(caught.value)
    assert message.startswith(f"{key_file}: ") and expected in message
    assert "[dkim] key_file" in message  # the hint names the setting
    assert b"PRIVATE" not in message.encode() and "AAAA" not in message  # never the key itself


@pytest.mark.parametrize(
    "kind, expected",
    [(b"not a key", "not a PEM private key"), ("ec", "an EC key, where an Ed25519 key is needed"), (None, "No such")],
)
def test_a_bad_ed25519_key_file_is_named(kind, expected, tmp_path, keys):
    key_file = tmp_path / "bad-ed25519.pem"
    write_bad_key(key_file, kind, keys)
    project = write_project(tmp_path / "p", extra=dkim_table(keys, ed25519_key_file=str(key_file)))
    with pytest.raises(DeliveryError, match=re.escape(f"{key_file}: ") + ".*" + expected + r".*ed25519_key_file"):
        _dkim_signer(load_config(project / "digest.toml"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_key_file_is_named(tmp_path, keys):
    key_file = tmp_path / "locked.pem"
    key_file.write_bytes(pem(keys.rsa))
    key_file.chmod(0)
    project = write_project(tmp_path / "p", extra=dkim_table(keys, key_file=str(key_file)))
    with pytest.raises(DeliveryError, match=re.escape(f"{key_file}: can't read the DKIM key: Permission denied")):
        _dkim_signer(load_config(project / "digest.toml"))


def test_key_files_are_read_relative_to_the_config(tmp_path, keys, rendered):
    project = write_project(
        tmp_path / "p", extra=dkim_table(keys, key_file="keys/r.pem", ed25519_key_file="keys/e.pem")
    )
    (project / "keys").mkdir()
    (project / "keys" / "r.pem").write_bytes(pem(keys.rsa))
    (project / "keys" / "e.pem").write_bytes(base64.b64encode(  # dkimpy's dknewkey writes the bare base64 seed
        keys.ed25519.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    ) + b"\n")  # fmt: skip
    assert verified(compose(load_config(project / "digest.toml"), rendered), keys) == [True, True]


# --- end to end ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_send_over_smtp_signs_every_message_twice(tmp_path, keys, smtp_server):
    project = write_project(tmp_path / "p", smtp_port=smtp_server.port, extra=dkim_table(keys))
    addresses = add_subscribers(project, 3)
    digest(project, "send", check=True)
    # a set: a retry on a loaded machine may resend a message, with the same signature
    assert {r for m in smtp_server.messages for r in m.rcpt_tos} == set(addresses)
    for received in smtp_server.messages:
        assert verified(received.content, keys) == [True, True]


@pytest.mark.slow
def test_a_signed_send_on_one_connection_stopped_midway_then_rerun_sends_each_message_once(tmp_path, keys, smtp_server):
    """One connection composes each signed message while the one before is sent (dispatch._ComposeAhead).
    Across batches, a temporary failure, a SIGTERM midway and a rerun, each reader still gets exactly one
    message, every message verifies, and a message composed ahead but not sent is never lost."""
    project = write_project(
        tmp_path / "p",
        smtp_port=smtp_server.port,
        delivery="batch_size = 7",
        smtp="connections = 1",
        extra=dkim_table(keys),
    )
    addresses = add_subscribers(project, 40)
    smtp_server.recorder.faults.rcpt_once = {addresses[3]: "451 4.7.1 try again later"}
    smtp_server.recorder.faults.delay = 0.02
    send_stopped_midway(project, smtp_server, after=12)
    assert 12 <= len(smtp_server.messages) < 40
    counts = issue_counts(project)
    assert counts["sending"] == 0  # the message composed ahead was given back with the rest of its batch
    assert counts["sent"] == len(smtp_server.messages)
    smtp_server.recorder.faults.delay = 0
    digest(project, "send", check=True)
    assert smtp_server.recorder.by_recipient() == Counter({a: 1 for a in addresses})
    assert len({m.message_id for m in smtp_server.messages}) == 40
    for received in smtp_server.messages:
        assert verified(received.content, keys) == [True, True]


def test_send_with_a_missing_key_says_which_file_and_sends_nothing(tmp_path, keys, smtp_server):
    missing = tmp_path / "nowhere" / "dkim.pem"
    project = write_project(tmp_path / "p", smtp_port=smtp_server.port, extra=dkim_table(keys, key_file=str(missing)))
    add_subscribers(project, 2)
    result = digest(project, "send")
    assert result.returncode == 1
    assert f"{missing}: can't read the DKIM key: No such file or directory" in result.stdout + result.stderr
    assert smtp_server.messages == []


# --- the [dkim] table ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"ed25519_selector": RSA_SELECTOR.upper()}, "ed25519_selector must differ from selector"),
        ({"selector": "s 2026; x=1"}, "dkim.selector: not a DNS name"),
        ({"domain": "links.exämple.com"}, "dkim.domain: not a DNS name"),
    ],
)
def test_dkim_table_mistakes_are_config_errors(override, expected, tmp_path, keys):
    project = write_project(tmp_path / "p", extra=dkim_table(keys, **override))
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(project / "digest.toml")


def test_an_ed25519_key_needs_its_own_selector(tmp_path, keys):
    table = dkim_table(keys, ed25519_key=False) + f'ed25519_key_file = "{keys.ed25519_file}"\n'
    project = write_project(tmp_path / "p", extra=table)
    with pytest.raises(ConfigError, match="ed25519_key_file and ed25519_selector go together"):
        load_config(project / "digest.toml")
