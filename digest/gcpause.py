"""Pause Python's cyclic garbage collector while a pipeline stage runs.

Collecting and rendering a month allocate millions of small objects (syntax trees, strings,
lxml proxies), almost none of them in reference cycles: reference counting frees them. The
cyclic collector would still walk every live object again and again as the heap grows, which
makes a 3,000-entry month cost more than ten 300-entry months. Pausing it for the stage keeps
the cost linear; any cycles the stage left behind are collected once it ends.
"""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Nestable and thread-safe: the collector resumes when the last paused stage ends."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()


def stage(function: Callable[P, R]) -> Callable[P, R]:
    """Run `function` with the cyclic collector paused."""

    @functools.wraps(function)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        with cyclic_gc_paused():
            return function(*args, **kwargs)

    return paused
