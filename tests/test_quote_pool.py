"""digest/quotes.py: the quote of the month from the pool, over 24 consecutive issues and more."""

from __future__ import annotations

from datetime import date

import pytest

from digest.quotes import choose, month_number, permutation, pool_order

FIRST = date(2024, 7, 1)


def months(count: int, first: date = FIRST) -> list[date]:
    return [date(first.year + (first.month - 1 + i) // 12, (first.month - 1 + i) % 12 + 1, 1) for i in range(count)]


def pool(size: int) -> list[str]:
    # real-world names: accents, CJK, RTL, emoji; the order given is not the pool's order
    names = ["é-citation", "名言", "اقتباس", "🙂-smile", "plain", "Zoë", "ünïcode", "b", "a", "z—dash", "中文", "x"]
    return [f"quotes/{names[i % len(names)]}-{i}.md" for i in reversed(range(size))]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 24])
def test_24_consecutive_issues_use_every_quote_once_per_pass(size):
    quotes = pool(size)
    chosen = [choose(month, FIRST, quotes) for month in months(24)]
    assert all(key in quotes for key in chosen)
    passes = [chosen[start : start + size] for start in range(0, 24, size)]
    for number, one_pass in enumerate(passes):
        assert len(set(one_pass)) == len(one_pass), f"a quote repeats in pass {number}"
        if len(one_pass) == size:
            assert sorted(one_pass) == sorted(quotes), f"pass {number} leaves a quote out"
    if size > 1:
        assert all(a != b for a, b in zip(chosen, chosen[1:], strict=False)), "the same quote two months running"


def test_the_choice_is_the_same_on_every_rebuild_and_for_any_order_of_the_pool():
    quotes = pool(7)
    first = [choose(m, FIRST, quotes) for m in months(24)]
    permutation.cache_clear()  # a new process: nothing remembered
    assert [choose(m, FIRST, list(reversed(quotes))) for m in months(24)] == first
    assert [choose(m, FIRST, quotes + quotes[:2]) for m in months(24)] == first  # duplicates count once


def test_passes_are_shuffled_differently():
    quotes = pool(12)
    chosen = [choose(m, FIRST, quotes) for m in months(36)]
    assert chosen[:12] != chosen[12:24] or chosen[12:24] != chosen[24:]
    assert chosen[:12] != sorted(quotes)  # not simply the files' order


def test_months_count_from_the_first_issue_including_months_without_one():
    quotes = pool(5)
    assert month_number(date(2025, 6, 1), FIRST) == 11
    assert choose(date(2025, 6, 1), FIRST, quotes) == [choose(m, FIRST, quotes) for m in months(12)][11]
    assert choose(date(2024, 6, 1), FIRST, quotes) is None  # before the first issue
    assert choose(date(2025, 6, 1), FIRST, []) is None  # no pool, no quote


def test_a_late_month_in_a_long_run_of_passes():
    quotes = pool(1)
    assert choose(date(9998, 12, 1), date(2, 1, 1), quotes) == quotes[0]  # ~120,000 passes: no recursion
    three = pool(3)
    assert choose(date(9998, 12, 1), date(2, 1, 1), three) in three


def test_the_pool_order_is_by_path():
    assert pool_order(["quotes/b.md", "quotes/a.md", "quotes/b.md"]) == ("quotes/a.md", "quotes/b.md")
