"""The fast path in `digest.addresses.normalise` only ever agrees with email-validator.

The fast path accepts plain ASCII addresses without importing email_validator; whatever it
accepts, email-validator must accept with the same normalised form, and `normalise` as a whole
must behave exactly as the email-validator-only implementation did.
"""

from __future__ import annotations

import string
import subprocess
import sys

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from digest.addresses import InvalidAddress, _plainly_valid, normalise

ATEXT_PUNCT = "!#$%&'*+-/=?^_`{|}~"
ODD = ' "@<>()[],;:\\\t\n\u00a0\u200b\u0301\u212a\uff20\u0131\u00e9\u00df\u0660\u00b2'  # invalid or non-ASCII
SPECIAL = ["localhost", "local", "test", "invalid", "onion", "arpa", "example", "LOCALHOST", "Test"]
TLDS = ["com", "org", "uk", "io", "COM", "Co", "c", "c1", "1c", "123", "x-y", "xn--p1ai", "ab--cd", "com-", "-com"]


def old_normalise(address: str) -> str:
    """The email-validator-only implementation that the fast path must not change."""
    given = address.strip()
    try:
        result = validate_email(given, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"{given!r} is not a valid email address: {exc}") from None
    except Exception as exc:  # noqa: BLE001
        raise InvalidAddress(f"{given!r} is not a valid email address: {exc}") from None
    return f"{result.local_part}@{result.ascii_domain}".lower()


good_local_char = st.sampled_from(string.ascii_letters + string.digits + ATEXT_PUNCT + "..")
local_char = st.one_of(good_local_char, good_local_char, good_local_char, st.sampled_from(ODD))
atom = st.text(st.sampled_from(string.ascii_letters + string.digits + ATEXT_PUNCT), min_size=1, max_size=6)
local_part = st.one_of(
    st.lists(atom, min_size=1, max_size=3).map(".".join),
    st.text(local_char, max_size=12),
    st.integers(60, 70).map(lambda n: "a" * n),
    st.text(good_local_char, min_size=60, max_size=70),
    st.text(local_char, max_size=8).map(lambda s: f'"{s}"'),
)
ldh_char = st.sampled_from(string.ascii_letters + string.digits + "--")
alnum = st.sampled_from(string.ascii_letters + string.digits)
label = st.one_of(
    st.builds(lambda a, mid, b: a + mid + b, alnum, st.text(ldh_char, max_size=5), alnum),
    st.text(ldh_char, max_size=8),
    st.text(st.one_of(ldh_char, ldh_char, ldh_char, st.sampled_from(ODD + "_.")), max_size=6),
    st.integers(61, 65).map(lambda n: "b" * n),
    st.text(ldh_char, min_size=61, max_size=65),
)
tld = st.one_of(st.sampled_from(SPECIAL + TLDS), st.sampled_from(SPECIAL + TLDS), label)
domain = st.builds(
    lambda labels, end: ".".join([*labels, end]),
    st.lists(label, max_size=3),
    tld,
) | st.sampled_from(["[192.0.2.1]", "[IPv6:2001:db8::1]", ".example.com", "example.com.", "a..b.com"])


@st.composite
def near_length_limit(draw: st.DrawFn) -> str:
    """Labels of 61-65 characters, domains around 253 and whole addresses around 254."""
    local_len = draw(st.integers(1, 66))
    first = draw(st.integers(61, 65))
    k = max(1, min(64, 120 - local_len - first + draw(st.integers(-3, 3))))
    return "a" * local_len + "@" + ".".join(["b" * first, "c" * 63, "d" * 63, "e" * k, "com"])


plain = st.builds(  # mostly valid, with edges: upper case, every atext char, special-use and odd TLDs
    lambda lp, labels, end: lp + "@" + ".".join([*labels, end]),
    st.lists(atom, min_size=1, max_size=3).map(".".join),
    st.lists(
        st.builds(lambda a, mid, b: a + mid + b, alnum, st.text(ldh_char, max_size=4), alnum) | alnum,
        min_size=1,
        max_size=3,
    ),
    st.sampled_from(["com", "org", "Uk", "example", *SPECIAL, *TLDS]),
)
space = st.sampled_from(["", "", "", " ", "\t", "\n", "\u00a0", "\u3000"])
addresses = st.one_of(
    plain,
    st.builds(
        lambda a, lp, at, d, b: a + lp + at + d + b,
        space,
        local_part,
        st.sampled_from(["@", "@", "@", "@", "@@", "", "@x@"]),
        domain,
        space,
    ),
    st.builds(lambda name, d: f"{name} <writer@{d}>", st.sampled_from(["Writer", '"W, X"']), domain),
    near_length_limit(),
    st.text(),
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(addresses)
@example("writer@example.com")
@example("first.last+tag@mail.example.co.uk")
@example("  Writer@Example.COM \n")
@example("a" * 64 + "@example.com")
@example("a" * 65 + "@example.com")
@example("me@example.test")
@example("me@example.localhost")
@example("me@mail.local")
@example("me@x.onion")
@example("me@1.2.3.in-addr.arpa")
@example("me@example.invalid")
@example("me@example.c1")
@example("me@xn--bcher-kva.ch")
@example("me@ab--cd.com")
@example("me@-example.com")
@example("me@example-.com")
@example(".me@example.com")
@example("me.@example.com")
@example("m..e@example.com")
@example("écrivain@example.com")
@example("me@exämple.com")
@example('"me"@example.com')
@example("me@[192.0.2.1]")
@example("Postmaster@Example.com")
def test_fast_path_agrees_with_email_validator(address: str) -> None:
    stripped = address.strip()
    if _plainly_valid(stripped):
        result = validate_email(stripped, check_deliverability=False, allow_smtputf8=True)
        assert f"{result.local_part}@{result.ascii_domain}".lower() == stripped.lower()

    try:
        expected = old_normalise(address)
    except InvalidAddress:
        with pytest.raises(InvalidAddress):
            normalise(address)
    else:
        assert normalise(address) == expected


@pytest.mark.parametrize("address", ["writer@example.com", "first.last+tag@mail.example.co.uk"])
def test_fast_path_accepts_plain_addresses(address: str) -> None:
    assert _plainly_valid(address)


def test_plain_address_does_not_import_email_validator() -> None:
    code = (
        "import sys, digest.addresses\n"
        "assert digest.addresses.normalise('Writer@Example.com') == 'writer@example.com'\n"
        "print('email_validator' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
