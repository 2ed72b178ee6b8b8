"""The front-matter loader's short cuts (a flat mapping built from the nodes, remembered scalar tags)
give exactly what PyYAML's own safe loader gives, for generated YAML that hits the implicit types."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest import content


class _Reference(yaml.SafeLoader):
    """PyYAML's pure-Python safe loader with the same lenient timestamps and integers: the slow, plain way."""


for _tag, _build in (
    ("tag:yaml.org,2002:timestamp", yaml.constructor.SafeConstructor.construct_yaml_timestamp),
    ("tag:yaml.org,2002:int", yaml.constructor.SafeConstructor.construct_yaml_int),
):
    _Reference.add_constructor(_tag, content._lenient(_build))


def reference(front: str) -> object:
    return yaml.load(front, Loader=_Reference)  # noqa: S506 (a safe loader)


# Scalars a writer types, and the look-alikes of YAML's implicit types: dates, times, numbers, booleans,
# nulls, octal and hex, infinities, merge and value keys, quoted forms of each.
plain = st.sampled_from(
    [
        "2025-02-03", "2025-02-30", "2025-02-03 10:00:00", "2025-02-03T10:00:00+01:00", "2025-2-3",
        "12", "012", "0x1F", "0o17", "1_000", "1e3", "1.5", ".inf", "-.inf", ".nan", "+12", "-0",
        "yes", "no", "true", "False", "on", "OFF", "null", "~", "Null", "=", "<<", "Articles and Blogs",
        "https://example.com/a?b=c#d", "Café — 读书笔记", "שלום", "emoji 🎉", "title", "url", "a: b",
    ]
)  # fmt: skip
words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)


def scalar(value: str) -> st.SearchStrategy[str]:
    quoted = value.replace("\\", "\\\\").replace('"', '\\"')
    single = value.replace("'", "''")
    return st.sampled_from([value, f'"{quoted}"', f"'{single}'"])


# Dates and times as writers type them, and near misses: days and hours that do not exist, other separators,
# fractions, zones, digits of other scripts (the loader reads the plain ones without YAML's constructor)
dates = st.one_of(
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,7})?( ?(Z|[-+][0-9]{1,2}(:[0-9]{2})?))?)?", fullmatch=True),
    st.sampled_from(["2024-02-29", "2025-02-29", "0000-01-01", "0001-01-01 00:00:00", "9999-12-31T23:59:59",
                     "2025-02-03 24:00:00", "2025-02-03 23:60:00", "2025-02-03  10:00:00", "\u0662\u0660\u0662\u0665-02-03"]),
)  # fmt: skip
values = st.one_of(
    plain.flatmap(scalar), words.flatmap(scalar), dates, st.just("[a, b]"), st.just("!!str 12"), st.just("")
)
keys = st.one_of(st.sampled_from(content.KNOWN_KEYS + ("<<", "1", "true", "null", "? x")), words.map(repr))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(keys, values), max_size=8), st.booleans())
def test_the_fast_load_equals_the_safe_loaders(pairs, with_anchor):
    lines = [f"{key}: {value}" for key, value in pairs]
    if with_anchor and lines:
        lines[0] = lines[0].replace(": ", ": &first ", 1)
        lines.append("again: *first")
    front = "\n".join(lines) + "\n"
    try:
        expected = reference(front)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        try:
            content.load_front_matter(front)
        except (yaml.YAMLError, ValueError, OverflowError):
            return
        raise AssertionError(f"the reference refused {front!r} ({exc}), the fast load did not") from None
    loaded, lines = content.load_front_matter(front)
    assert loaded == expected and [type(v) for v in (loaded or {}).values()] == [
        type(v) for v in (expected or {}).values()
    ], front
    assert lines == content._parsed_front_matter(front)[1], front  # each key's line, as the parser's marks give it


tricky = st.text(
    st.sampled_from("abcXYZ019 .,:#-?'\"!&*[]{}|>%@`~/=<\\\té—读ש🎉\x85\u2028\x7f"), min_size=1, max_size=16
)
safe = st.text(st.sampled_from("abcXYZ0129 .,/—é读ש🎉'\"#:-?()!"), min_size=1, max_size=16)
calm = st.text(st.sampled_from("abcXYZ0129 .,/—é读ש🎉()!-:#"), min_size=1, max_size=16).map(str.strip).filter(bool)
anything = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
text_values = st.integers(0, 9).flatmap(lambda n: (tricky, anything, safe, safe)[n] if n < 4 else calm)
words_as_keys = st.sampled_from(content.KNOWN_KEYS + ("on", "No", "a1", "_x", "Title", "null", "y", "<<"))
simple_keys = st.integers(0, 9).flatmap(lambda n: text_values if n == 0 else words_as_keys)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            simple_keys,
            st.one_of(
                plain,
                dates,
                text_values,
                text_values,
                st.one_of(calm, text_values).map(lambda v: f'"{v}"'),
                st.one_of(calm, text_values).map(lambda v: f"'{v}'"),
            ),
        ),
        min_size=1,
        max_size=5,
    ),
    st.lists(st.sampled_from(["", "", "", "", "", " ", "# comment", "  indented: x", "\r", "- item"]), max_size=1),
)
def test_key_value_lines_read_without_the_parser_read_as_the_parser_reads_them(pairs, extra):
    """The short cut for `key: value` lines (`content._simple_front_matter`) on text that is mostly such
    lines, with a little of what it must leave to the parser (comments, indentation, lists, line breaks)."""
    lines = [f"{key}: {value}" for key, value in pairs] + extra
    front = "\n" + "\n".join(lines) + "\n"
    try:
        expected = (reference(front), content._parsed_front_matter(front)[1])
    except (yaml.YAMLError, ValueError, OverflowError):
        expected = None
    simple = content._simple_front_matter(front)
    if simple is not None:
        assert expected is not None, f"the parser refuses {front!r}, the short cut did not"
        assert simple == expected and [type(v) for v in simple[0].values()] == [
            type(v) for v in expected[0].values()
        ], front


def test_a_scalars_tag_is_remembered_by_its_text_only_for_plain_scalars():
    loaded, _ = content.load_front_matter("a: 12\nb: '12'\nc: \"12\"\nd: 12\n")
    assert loaded == {"a": 12, "b": "12", "c": "12", "d": 12}
