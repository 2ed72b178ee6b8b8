"""Canonical URLs: what `add` stores, and the key the duplicate checks compare (digest/urls.py)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from url_normalize import url_normalize

from digest import urls
from digest.urls import canonical_url, url_key


@pytest.mark.parametrize(
    ("given_url", "stored"),
    [
        ("HTTPS://Example.COM:443/a/b?utm_source=x&id=7&fbclid=1#top", "https://example.com/a/b?id=7#top"),
        ("http://www.example.com:80", "http://www.example.com/"),  # http and www. are kept
        ("https://example.com/p?gclid=1&mc_cid=2&mc_eid=3&igshid=4&ref_src=5&_hsenc=6&UTM_Campaign=7", "https://example.com/p"),
        ("https://example.com:8443/p?b=2&a=1", "https://example.com:8443/p?b=2&a=1"),  # other ports and order kept
        ("https://bücher.de/straße?q=ü", "https://xn--bcher-kva.de/stra%C3%9Fe?q=%C3%BC"),
        ("https://example.com/%7Euser/a/../b", "https://example.com/~user/b"),
        ("  https://example.com/x  ", "https://example.com/x"),
        ("mailto:someone@example.com", "mailto:someone@example.com"),  # not a web page: untouched
        ("not a url at all", "not a url at all"),
    ],
)  # fmt: skip
def test_canonical_url(given_url, stored):
    assert canonical_url(given_url) == stored


def test_the_same_article_under_many_addresses_has_one_key():
    variants = [
        "https://example.com/story",
        "http://example.com/story",
        "https://www.example.com/story/",
        "HTTPS://EXAMPLE.COM:443/story?utm_source=newsletter&utm_medium=email",
        "https://example.com/story?fbclid=IwAR0",
        "https://example.com/story/amp/",
        "https://example.com/story/amp",
        "https://amp.example.com/story",
        "https://example.com/story?amp",
        "https://example.com/story?amp=1",
        "https://example.com/story?outputType=amp",
        "https://example.com/story.amp.html",
        "https://example.com/story#comments",
    ]
    assert {url_key(v) for v in variants} == {"https://example.com/story"}


def test_different_pages_keep_different_keys():
    pages = [
        "https://example.com/story",
        "https://example.com/story?id=2",
        "https://example.com/story-2",
        "https://example.org/story",
        "https://example.com:8080/story",
        "https://example.com/champ",
        "https://example.com/",
    ]
    assert len({url_key(p) for p in pages}) == len(pages)


URL_PIECES = st.sampled_from(
    [*"aAwW.:/?#&=%@[]-_~+!$'()*,;0189", "www.", "m.", "amp", "utm_x", "%2F", "%zz", "xn--", "ü", "東", ":80", ":443",
     "//", "/amp/", "/amp", ".amp", "?amp", "outputType=amp", ".."]
)  # fmt: skip
URLISH = st.builds(
    "{}://{}{}".format,
    st.sampled_from(["http", "https", "HTTP", "ftp"]),
    st.lists(URL_PIECES, max_size=20).map("".join),
    st.lists(URL_PIECES, max_size=20).map("".join),
)


@given(st.one_of(st.text(), URLISH))
def test_neither_function_raises_on_any_text_and_both_are_idempotent(text):
    canonical, key = canonical_url(text), url_key(text)
    assert canonical_url(canonical) == canonical
    assert url_key(key) == key
    assert url_key(canonical) == key  # storing the canonical form never hides a duplicate


LABEL = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)
SEGMENT = st.from_regex(r"[A-Za-z0-9_~-]{1,10}", fullmatch=True).filter(lambda s: s.lower() != "amp")
PARAM = st.tuples(st.from_regex(r"[a-z]{1,6}", fullmatch=True), st.from_regex(r"[a-z0-9]{0,6}", fullmatch=True))


@st.composite
def pages(draw: st.DrawFn) -> tuple[str, str, list[tuple[str, str]]]:
    host = f"{draw(LABEL)}.{draw(st.sampled_from(['com', 'org', 'de', 'co.uk']))}"
    path = "/" + "/".join(draw(st.lists(SEGMENT, max_size=4)))
    params = draw(st.lists(PARAM, max_size=3, unique_by=lambda p: p[0]).filter(
        lambda ps: not any(n.startswith(("utm", "amp")) or n in {"si", "spm", "ncid"} for n, _ in ps)
    ))  # fmt: skip
    return host, path, params


@given(pages(), st.data())
def test_variants_of_a_page_map_to_the_same_key(page, data):
    host, path, params = page
    query = "&".join(f"{n}={v}" for n, v in params)
    plain = f"https://{host}{path}" + (f"?{query}" if query else "")
    scheme = data.draw(st.sampled_from(["http", "https", "HTTPS"]))
    www = data.draw(st.sampled_from(["", "www.", "WWW."]))
    port = data.draw(st.sampled_from(["", ":443" if scheme.lower() == "https" else ":80"]))
    slash = data.draw(st.sampled_from(["", "/"])) if path != "/" else ""
    tracking = data.draw(st.lists(st.sampled_from(["utm_source=x", "fbclid=1", "gclid=2", "mc_eid=3", "amp=1"])))
    shuffled = data.draw(st.permutations([f"{n}={v}" for n, v in params] + tracking))
    variant = f"{scheme}://{www}{host.upper()}{port}{path}{slash}" + (f"?{'&'.join(shuffled)}" if shuffled else "")
    assert url_key(variant) == url_key(plain)


# -- the duplicate checks use the key -----------------------------------------------------------


def test_the_same_article_under_two_addresses_in_one_month_is_reported(project, cli):
    project.entry("a", url="https://www.example.com/story?utm_source=rss", date="2025-02-10")
    project.entry("b", url="http://example.com/story/amp/", date="2025-02-12")
    project.entry("c", url="https://example.com/another-story", date="2025-02-13")
    result = cli(project.root, "check")
    assert result.code == 1
    assert result.out.splitlines()[0] == (
        "error: content/2025/02/b.md:3: same url as content/2025/02/a.md in 2025-02: "
        "http://example.com/story/amp/ (merge the two entries or remove one)"
    )


def test_a_link_sent_in_an_earlier_issue_is_found_under_another_address(project):
    from digest import checks
    from digest.collect import load_archive

    project.entry("first", url="https://example.com/essay", date="2025-01-10")
    project.entry("again", url="http://www.example.com/essay/?fbclid=xyz", date="2025-02-10")
    project.entry("new", url="https://example.com/essay-2", date="2025-02-11")
    config = project.config()
    archive = load_archive(config)
    issue = archive.issue(archive.latest_month)
    assert [str(p) for p in checks.repeated_links(archive, issue, config)] == [
        "content/2025/02/again.md: http://www.example.com/essay/?fbclid=xyz was already sent in 2025-01"
    ]


@pytest.mark.slow  # 3,000 generated URLs: 15 s
@settings(max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
@given(st.from_regex(urls._ALREADY_NORMAL, fullmatch=True))
def test_the_fast_path_gives_what_the_general_one_gives(url):
    """A URL of this shape is taken as it is (url-normalize would give it back the same), and read
    without urlsplit; both functions must agree with the general path on it."""
    assert url_normalize(url) == url
    assert canonical_url(url) == urls._canonical(url)
    assert url_key(url) == urls._general_key(urls._canonical(url))


@pytest.mark.parametrize(
    "url",
    ["https://Example.com/", "https://example.com", "https://example.com/a//b", "https://example.com/a/../b",
     "https://example.com/%7Euser", "https://example.com:443/", "https://xn--bcher-kva.de/", "https://ab--cd.com/",
     "https://example.com/?", "https://example.com/?a=1&&b=2", "https://example.com/#top", "https://example.com/a b"],
)  # fmt: skip
def test_urls_url_normalize_would_change_take_the_slow_path(url):
    assert not urls._ALREADY_NORMAL.fullmatch(url)
