"""digest/hosts.py through `digest check`: entry URLs that parse but can't work, or that pass for
another site (a Cyrillic 'а' in a Latin name), are warnings with the file and line; a host
written wholly in one script, as most international names are, is not."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.hosts import url_warnings

ENTRY = "---\ntitle: A link\nurl: {url}\ndate: 2025-02-10\n---\nNotes.\n"


@pytest.mark.parametrize(
    ("url", "warning"),
    [
        ("https://example.com:99999/", "the port in 'example.com:99999' is not a number from 1 to 65535: the link can't work"),
        ("https://example.com:abc/x", "the port in 'example.com:abc' is not a number from 1 to 65535: the link can't work"),
        ("http://example.com:0/", "the port in 'example.com:0' is 0: the link can't work"),
        ("https://p\u0430ypal.com/login", "the host 'p\u0430ypal.com' mixes Cyrillic and Latin letters in 'p\u0430ypal': a look-alike of another site's name? (check the link)"),
        ("https://xn--pypal-4ve.com/", "the host 'xn--pypal-4ve.com' mixes Cyrillic and Latin letters in 'p\u0430ypal': a look-alike of another site's name? (check the link)"),
        ("https://www.g\u03bfogle.com/", "the host 'www.g\u03bfogle.com' mixes Greek and Latin letters in 'g\u03bfogle': a look-alike of another site's name? (check the link)"),
        ("https://xn--zz.example/", "the host 'xn--zz.example' has a label 'xn--zz' that is not valid punycode"),
    ],
)  # fmt: skip
def test_check_warns_about_impossible_ports_and_mixed_script_hosts(project, cli, url, warning):
    project.write("2025/02/fine.md", ENTRY.format(url="https://example.com/fine"))
    project.write("2025/02/odd.md", ENTRY.format(url=url))
    result = cli(project.root, "check")
    assert result.code == 0, result.output  # a warning: the writer decides
    assert f"warning: content/2025/02/odd.md:3: {warning}" in result.out.splitlines()
    assert result.out.splitlines()[-1] == "ok: content is valid (1 warning)"


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/",
        "https://example.com:8443/path",
        "https://b\u00fccher.de/",
        "https://xn--bcher-kva.de/",
        "https://\u4f8b\u3048.jp/",  # Han and Hiragana: one Japanese name
        "https://\ud55c\uad6d\uc5b4.kr/",
        "https://\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444/",  # wholly Cyrillic
        "https://caf\u0065\u0301.fr/",  # a combining accent goes with its letter's script
        "https://[2001:db8::1]:8080/",
        "https://xn--r8jz45g.jp/",
    ],
)
def test_single_script_hosts_and_valid_ports_pass(url):
    assert url_warnings(urlsplit(url)) == []


def test_check_reports_nothing_for_an_international_host(project, cli):
    project.write("2025/02/idn.md", ENTRY.format(url="https://b\u00fccher.de/b\u00fccher"))
    result = cli(project.root, "check")
    assert (result.code, result.out) == (0, "ok: content is valid (0 warnings)\n")


@given(st.text(st.sampled_from("abcxyz019.-:@XN"), min_size=1, max_size=30))
@settings(max_examples=500, deadline=None)
def test_a_host_the_entry_check_passes_without_asking_has_nothing_to_warn_about(netloc):
    """content._url skips url_warnings for a plain lower-case ASCII host with no port: it must have none."""
    from digest.content import _PLAIN_NETLOC

    parts = urlsplit(f"https://{netloc}/")
    if _PLAIN_NETLOC.fullmatch(parts.netloc) and "xn--" not in parts.netloc:
        assert url_warnings(parts) == []
