"""DKIM signatures (RFC 6376 relaxed/relaxed; rsa-sha256, and ed25519-sha256 per RFC 8463) at one RSA operation each.

dkimpy parses the PEM key on every call and signs with pure-Python `pow`: 15-50 ms per
28 KB message. This signer parses the keys once per send and signs with `cryptography`
(OpenSSL, which lets go of the GIL meanwhile): 0.2-0.35 ms per RSA-2048 signature here,
0.02 ms per Ed25519 one. The Composer hands it the body already in relaxed form, made once per
send, so a message adds only the SHA-256 of its bytes, its headers and the folding: in all
1.1-1.2x one bare RSA signature in-process. bench/send.py --dkim measures it; tests/test_dkim.py
has dkimpy verify every signature."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from digest.errors import DeliveryError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from digest.config import DkimConfig

RSA_SHA256 = b"rsa-sha256"
ED25519_SHA256 = b"ed25519-sha256"
MIN_RSA_BITS = 1024  # RFC 8301: verifiers ignore smaller keys (dkimpy too)
LINE = 78  # fold the header to lines of at most this many characters

_FIELD_START = re.compile(rb"\r\n(?![ \t])")  # a CRLF not followed by WSP ends a header field
_WSP = re.compile(rb"[ \t]+")
_SPACES = re.compile(rb"  +")
_SPACE_CRLF = re.compile(rb" \r\n")  # a literal: re finds it 3x faster than `in` amid the body's spaces


class DkimKey:
    """One private key and the selector whose DNS record holds its public half."""

    def __init__(self, selector: str, private: RSAPrivateKey | Ed25519PrivateKey):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        self.selector = selector
        self.private = private
        self.is_rsa = isinstance(private, rsa.RSAPrivateKey)
        self.algorithm = RSA_SHA256 if self.is_rsa else ED25519_SHA256
        self._padding, self._hash = padding.PKCS1v15(), hashes.SHA256()

    def sign(self, data: bytes) -> bytes:
        """rsa-sha256 signs the header data itself; ed25519-sha256 signs its SHA-256 digest (RFC 8463 3)."""
        if self.is_rsa:
            return self.private.sign(data, self._padding, self._hash)  # type: ignore[call-arg]
        return self.private.sign(hashlib.sha256(data).digest())  # type: ignore[call-arg]

    def __reduce__(self) -> tuple:
        """Picklable for a process pool: the key travels as unencrypted PKCS#8 DER, parsed again once."""
        from cryptography.hazmat.primitives import serialization

        der = self.private.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return _key_from_der, (self.selector, der)


def _key_from_der(selector: str, der: bytes) -> DkimKey:
    from cryptography.hazmat.primitives import serialization

    return DkimKey(selector, serialization.load_der_private_key(der, password=None))  # type: ignore[arg-type]


class DkimSigner:
    """raw message bytes -> their DKIM-Signature header(s), ready to prepend; one per send, shared by threads.

    Signs the fields named in `headers` that the message has, every instance of a repeated one
    (h= names it once per instance, bottom-up, RFC 6376 5.4.2), so a second From added in
    transit breaks the signature. The body hash and the canonical headers are computed once,
    however many keys sign.
    """

    def __init__(self, domain: str, keys: Sequence[DkimKey], headers: Sequence[bytes]):
        if not keys:
            raise ValueError("a DKIM signer needs at least one key")
        self.domain = domain
        self.keys = tuple(keys)
        self.headers = tuple(h.lower() for h in headers)
        self._wanted = frozenset(self.headers)
        self._h_lines: dict[tuple[str, ...], list[str]] = {}  # h= folded, per set of fields present

    def __call__(self, raw: bytes) -> bytes:
        head, body = _split(raw)
        return self.sign(head, _hash_relaxed(relaxed_fragment(body)))

    def sign(self, head: bytes, body_hash: bytes) -> bytes:
        """The DKIM-Signature header(s) for a message's header block (no final CRLF) and relaxed body hash."""
        names, signed = self._signed_fields(head)
        if names not in self._h_lines:
            self._h_lines[names] = _fold_words("h=" + " : ".join(names) + ";")
        # dkimpy's tag order (h= before bh=), which simple parsers of the header expect
        tail = [*self._h_lines[names], f" bh={base64.b64encode(body_hash).decode()};", " b="]
        stamp, out = int(time.time()), []
        for key in self.keys:
            lines = [
                f"DKIM-Signature: v=1; a={key.algorithm.decode()}; c=relaxed/relaxed;",
                f" d={self.domain}; s={key.selector}; t={stamp};",
                *tail,
            ]
            # every fold is CRLF before a single space, so the relaxed form of this header (which the
            # signature covers, with b= empty and no final CRLF: RFC 6376 3.7) is the lines joined
            unfolded = "".join(lines)[len("DKIM-Signature: ") :]
            signature = base64.b64encode(key.sign(signed + b"dkim-signature:" + unfolded.encode("ascii"))).decode()
            room = max(LINE - len(lines[-1]), 0)  # b= folds anywhere: verifiers drop its spaces
            lines[-1] += signature[:room]
            lines += [" " + signature[i : i + LINE - 1] for i in range(room, len(signature), LINE - 1)]
            out.append("\r\n".join(lines) + "\r\n")
        return "".join(out).encode("ascii")

    def sign_relaxed(self, head: bytes, relaxed_body: Sequence[bytes]) -> bytes:
        """Like calling the signer on the message, for a body given as fragments already in relaxed form
        (`relaxed_fragment`), so the Composer canonicalises an issue's text once, not once per reader."""
        return self.sign(head, _hash_relaxed(b"".join(relaxed_body)))

    def __reduce__(self) -> tuple:
        return DkimSigner, (self.domain, self.keys, self.headers)

    def _signed_fields(self, head: bytes) -> tuple[tuple[str, ...], bytes]:
        """The h= names and the relaxed-canonical fields they select, in signing order (RFC 6376 3.4.2, 5.4.2)."""
        found: dict[bytes, list[bytes]] = {}
        for field in _FIELD_START.split(head):
            name, colon, value = field.partition(b":")
            key = name.rstrip(b" \t").lower()
            if colon and key in self._wanted:
                found.setdefault(key, []).append(value)
        if b"from" not in found:
            raise ValueError("a message without a From header can't be DKIM-signed (RFC 6376 5.4)")
        names, data = [], []
        for key in self.headers:
            for value in reversed(found.get(key, ())):  # the bottom instance first
                names.append(key.decode("ascii"))
                data += [key, b":", _relaxed_value(value), b"\r\n"]
        return tuple(names), b"".join(data)


def _relaxed_value(value: bytes) -> bytes:
    """Unfolded, WSP runs as one space, none at either end (RFC 6376 3.4.2)."""
    if b"\r" in value:
        value = value.replace(b"\r\n", b"")
    if b"\t" in value or b"  " in value:  # most values need neither: skip the regex
        value = _WSP.sub(b" ", value)
    return value.strip(b" \t")


def _split(raw: bytes) -> tuple[bytes, bytes]:
    """Header block (without its final CRLF) and body; a message without a blank line is all header."""
    if raw.startswith(b"\r\n"):
        return b"", raw[2:]
    end = raw.find(b"\r\n\r\n")
    return (raw, b"") if end < 0 else (raw[:end], raw[end + 4 :])


def relaxed_fragment(body: bytes) -> bytes:
    """A body, or a piece of one, in relaxed form (RFC 6376 3.4.4) but for the end of the body: WSP runs
    as one space, none at line ends. Quoted-printable encodes line-end spaces, so the Composer's
    messages need only the squeezing of an HTML part's indentation. Pieces joined give the relaxed whole
    when no piece ends in WSP and the text between them has none (what `Composer` checks)."""
    if b"\t" in body:
        body = body.replace(b"\t", b" ")
    if b"  " in body:
        body = _SPACES.sub(b" ", body)  # a literal prefix: 0.05 ms on 28 KB of indented HTML, [ \t]+ takes 0.8
    if _SPACE_CRLF.search(body):  # runs are single spaces now
        body = body.replace(b" \r\n", b"\r\n")
    return body


def _hash_relaxed(body: bytes) -> bytes:
    """SHA-256 of a relaxed body: no empty lines at the end, a CRLF after the last line."""
    end = len(body)
    while body.endswith(b"\r\n", 0, end):
        end -= 2
    digest = hashlib.sha256(memoryview(body)[:end])
    if end:  # an empty body hashes as nothing at all, not as one CRLF
        digest.update(b"\r\n")
    return digest.digest()


def _fold_words(text: str) -> list[str]:
    """Continuation lines (each starting with a space) of at most LINE characters, broken at spaces."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= LINE:
            lines[-1] += " " + word
        else:
            lines.append(" " + word)
    return lines


def load_signer(config: DkimConfig, root: Path, headers: Sequence[bytes]) -> DkimSigner:
    """The signer for [dkim]: the RSA key (every receiver checks rsa-sha256), then the Ed25519 one if set."""
    keys = [DkimKey(config.selector, load_key(root / config.key_file, RSA_SHA256, "[dkim] key_file"))]
    if config.ed25519_key_file is not None:
        path = root / config.ed25519_key_file  # an absolute path stays as it is
        selector = config.ed25519_selector or ""
        keys.append(DkimKey(selector, load_key(path, ED25519_SHA256, "[dkim] ed25519_key_file")))
    return DkimSigner(config.domain, keys, headers)


HINTS = {
    RSA_SHA256: "an unencrypted RSA private key in PEM, such as `openssl genrsa -out dkim.pem 2048` writes",
    ED25519_SHA256: "an unencrypted Ed25519 private key in PEM, such as "
    "`openssl genpkey -algorithm ed25519 -out dkim-ed25519.pem` writes",
}


def load_key(path: Path, algorithm: bytes, setting: str) -> RSAPrivateKey | Ed25519PrivateKey:
    """Read and parse one private key, or a DeliveryError naming the file and what is wrong with it."""
    hint = f"set {setting} to {HINTS[algorithm]}"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DeliveryError(f"{path}: can't read the DKIM key: {exc.strerror or exc}", hint) from None
    problem, key = _parse_key(data, algorithm)
    if problem:
        raise DeliveryError(f"{path}: {problem}", hint)
    return key  # type: ignore[return-value]


def _parse_key(data: bytes, algorithm: bytes) -> tuple[str, object]:
    """(what is wrong, None) or ("", the key). The messages never quote the file: it holds a secret."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    if b"-----BEGIN" not in data:
        if algorithm == ED25519_SHA256 and (seed := _base64_seed(data)):  # dkimpy's dknewkey writes this
            return "", ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        return "not a PEM private key (no -----BEGIN line)", None
    if re.search(rb"-----BEGIN [A-Z ]*PUBLIC KEY-----", data) and b"PRIVATE KEY-----" not in data:
        return "a public key; the DKIM key file must hold the private key (the public one goes in DNS)", None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's way of saying a password is needed
        return "the key is encrypted; digest needs it unencrypted (`openssl pkey -in KEY -out PLAIN`)", None
    except (ValueError, UnsupportedAlgorithm):
        return "not a valid PEM private key (damaged, or of a kind OpenSSL can't read)", None
    wanted = rsa.RSAPrivateKey if algorithm == RSA_SHA256 else ed25519.Ed25519PrivateKey
    if not isinstance(key, wanted):
        kind = "an RSA" if algorithm == RSA_SHA256 else "an Ed25519"
        return f"{_kind(key)} key, where {kind} key is needed", None
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < MIN_RSA_BITS:
        return f"an RSA key of {key.key_size} bits; receivers ignore DKIM keys under 1024 bits (use 2048)", None
    return "", key


def _base64_seed(data: bytes) -> bytes | None:
    try:
        seed = base64.b64decode(b"".join(data.split()), validate=True)
    except ValueError:
        return None
    return seed if len(seed) == 32 else None


def _kind(key: object) -> str:
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519

    kinds = [
        (rsa.RSAPrivateKey, "an RSA"), (ed25519.Ed25519PrivateKey, "an Ed25519"), (ec.EllipticCurvePrivateKey, "an EC"),
        (dsa.DSAPrivateKey, "a DSA"), (ed448.Ed448PrivateKey, "an Ed448"), (x25519.X25519PrivateKey, "an X25519"),
        (x448.X448PrivateKey, "an X448"),
    ]  # fmt: skip
    return next((name for cls, name in kinds if isinstance(key, cls)), "another kind of")
