"""Property-based tests: any input gives entries or a clear error, never a traceback."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest import tokens
from digest.collect import month_bounds, month_of
from digest.config import Config
from digest.content import Entry, commentary_html, parse_entry
from digest.errors import DigestError, Problem
from digest.importers import read_archive, write_entry
from digest.render.text import Footnotes, commentary_text

SECTIONS = ("Articles and Blogs", "News")
ZONES = [ZoneInfo(z) for z in ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Pacific/Chatham", "Australia/Lord_Howe", "America/St_Johns")]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

yaml_scalars = st.one_of(
    st.text(max_size=40), st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
    st.sampled_from(["no", "null", "~", "2024-01-01", "'quoted'", "[a, b]", "{a: 1}", "&x 1", "*x", "!!python/object:os.system", "|", ">"]),
)  # fmt: skip


def config(tmp: Path) -> Config:
    (tmp / "content").mkdir(exist_ok=True)
    return Config(
        site={"title": "T", "description": "D", "author": "A", "base_url": "https://e.com/", "timezone": "Europe/Berlin", "sections": list(SECTIONS)},
        sender={"name": "T", "address": "t@e.com"},
        root=tmp,
    )


@SETTINGS
@given(st.binary(max_size=400))
def test_any_bytes_give_an_entry_or_problems(raw):
    entry, problems = parse_entry(Path("content/x.md"), raw, SECTIONS, ZONES[1])
    assert entry is not None or any(not p.warning for p in problems)
    assert all(isinstance(p, Problem) and str(p).startswith("content/x.md") for p in problems)


@SETTINGS
@given(st.dictionaries(st.sampled_from(["title", "url", "date", "section", "source", "tags", "draft", "quote", "x-y", "é"]), yaml_scalars, max_size=8), st.text(max_size=200))
def test_any_front_matter_gives_an_entry_or_problems(fields, body):
    front = "".join(f"{key}: {value}\n" for key, value in fields.items())
    entry, problems = parse_entry(Path("content/x.md"), f"---\n{front}---\n{body}".encode(), SECTIONS, ZONES[1])
    if entry is None:
        assert any(not p.warning for p in problems)
    else:
        assert isinstance(entry, Entry) and entry.title and entry.date.tzinfo is not None
        assert entry.url is None or entry.url.startswith(("http://", "https://"))


@SETTINGS
@given(st.text(max_size=600))
def test_any_commentary_renders_safely(body):
    html = commentary_html(body)
    assert "<script" not in html.lower() and "javascript:" not in html.lower().replace("[", "").split('href="')[0]
    for chunk in html.split('href="')[1:]:
        assert chunk.lower().startswith(("http://", "https://", "mailto:", "#")), chunk[:40]
    commentary_text(body, Footnotes())


@SETTINGS
@given(st.text(max_size=800))
def test_the_importer_gives_entries_or_a_clear_error(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "archive.txt"
        path.write_text(text, encoding="utf-8")
        try:
            when, items = read_archive(path, config(Path(folder)))
        except DigestError as exc:
            assert str(path) in str(exc)
        else:
            assert items and all(i.title for i in items) and isinstance(when, date)


@SETTINGS
@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.sampled_from([UTC, *ZONES])), st.sampled_from(ZONES))
def test_the_month_boundary(moment, zone):
    month = month_of(moment, zone)
    local = moment.astimezone(zone)
    assert (month.year, month.month) == (local.year, local.month)
    start, end = month_bounds(month, zone)
    assert start <= moment < end
    assert month_of(end, zone) != month and month_of(end - timedelta(microseconds=1), zone) == month


addresses = st.builds(lambda local, domain: f"{local}@{domain}.example", st.from_regex(r"[a-z0-9._+-]{1,20}", fullmatch=True), st.from_regex(r"[a-z0-9-]{1,15}", fullmatch=True))


@SETTINGS
@given(addresses, st.one_of(st.none(), st.integers(min_value=1, max_value=2**40)), st.sampled_from(["unsubscribe", "confirm"]))
def test_tokens_round_trip(address, subscriber_id, purpose):
    token = tokens.make_token("secret", purpose, tokens.TokenSubject(address, subscriber_id))
    assert tokens.read_token("secret", purpose, token, max_age=60) == tokens.TokenSubject(address, subscriber_id)


@SETTINGS
@given(addresses, st.integers(min_value=1, max_value=10**6), st.data())
def test_any_change_to_a_token_is_rejected(address, subscriber_id, data):
    token = tokens.make_token("secret", "unsubscribe", tokens.TokenSubject(address, subscriber_id))
    position = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    replacement = data.draw(st.characters(codec="ascii").filter(lambda c: c != token[position]))
    changed = token[:position] + replacement + token[position + 1 :]
    try:
        subject = tokens.read_token("secret", "unsubscribe", changed)
    except tokens.TokenError:
        return
    assert subject == tokens.TokenSubject(address, subscriber_id)  # only a no-op change (e.g. base64 padding bits) may pass


@SETTINGS
@given(st.text(max_size=300))
def test_read_token_only_ever_raises_token_error(text):
    try:
        tokens.read_token("secret", "unsubscribe", text)
    except tokens.TokenError:
        pass


titles = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=60).filter(lambda t: t.strip())
words = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=12).filter(lambda w: "," not in w)


@SETTINGS
@given(
    title=st.one_of(titles, st.sampled_from(["no", "null", "2024-01-01", "- dash", "a: b", "'q'", '"dq"', "#hash", "[x]", "yes"])),
    url=st.one_of(st.none(), st.sampled_from(["https://example.com/a?b=c&d=e#f", "http://x.org/%20y", "https://ex.com/é"])),
    source=st.one_of(st.none(), titles),
    quote=st.one_of(st.none(), titles),
    note=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00"), max_size=200),
    tags=st.lists(words, max_size=4),
    moment=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2080, 1, 1), timezones=st.sampled_from(ZONES)),
    section=st.sampled_from(SECTIONS),
)
def test_an_entry_written_by_add_parses_back_to_the_same_values(title, url, source, quote, note, tags, moment, section):
    with tempfile.TemporaryDirectory() as folder:
        cfg = config(Path(folder))
        path = write_entry(cfg, title=title, url=url, when=moment, section=section, source=source, note=note, quote=quote, tags=tuple(tags))
        entry, problems = parse_entry(path, path.read_bytes(), SECTIONS, ZONES[1])
    assert entry is not None, problems
    norm = lambda text: " ".join(text.split()) if text else None  # noqa: E731  # titles are read with whitespace collapsed
    assert (entry.title, entry.url, entry.source, entry.quote, entry.section) == (norm(title), url, norm(source), norm(quote), section)
    assert entry.tags == tuple(t for t in (norm(t) for t in tags) if t)
    assert entry.date.timestamp() == moment.timestamp()  # the same instant (ambiguous local times never compare equal across zones)
    assert entry.body == note.strip()
