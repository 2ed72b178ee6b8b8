"""The pipeline stages pause the cyclic collector and always hand it back."""

from __future__ import annotations

import gc

import pytest

from digest.gcpause import cyclic_gc_paused, stage


def test_a_stage_pauses_the_collector_and_restores_it_even_on_error():
    @stage
    def failing() -> None:
        assert not gc.isenabled()
        raise ValueError("boom")

    assert gc.isenabled()
    with pytest.raises(ValueError):
        failing()
    assert gc.isenabled()


def test_nested_stages_resume_collection_only_when_the_outer_one_ends():
    with cyclic_gc_paused():
        with cyclic_gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    try:
        with cyclic_gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
