"""shared/heap.py: what `settle` does to the collector, and that 0 leaves it alone."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from shared import heap
from shared.config import Settings

pytestmark = pytest.mark.unit


@pytest.fixture
def collector() -> Iterator[None]:
    """Put the collector back as it was, whatever the test did to it."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    gc.enable()


def test_settle_freezes_startup_objects_and_raises_the_young_threshold(collector: None) -> None:
    _, middle, oldest = gc.get_threshold()
    startup_object = {"route": "/api/bookings"}
    heap.settle(10_000)
    assert gc.get_threshold() == (10_000, middle, oldest)
    assert gc.get_freeze_count() > 0
    assert startup_object["route"] == "/api/bookings"  # frozen objects stay usable


def test_cycles_made_after_settle_are_still_collected(collector: None) -> None:
    heap.settle(10_000)

    class Node:
        pass

    node = Node()
    node.self = node  # type: ignore[attr-defined]
    gone: list[bool] = []
    weakref.finalize(node, gone.append, True)
    del node
    gc.collect()
    assert gone == [True]


@pytest.mark.parametrize("young_threshold", [10_000, 0])
def test_settle_turns_back_on_a_collector_held_off_for_the_start(
    collector: None, young_threshold: int
) -> None:
    gc.disable()  # as consumer/__main__.py does before its imports
    heap.settle(young_threshold)
    assert gc.isenabled()


def test_zero_leaves_the_collector_as_python_set_it_up(collector: None) -> None:
    before = gc.get_threshold()
    heap.settle(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_default_is_a_raised_threshold() -> None:
    python_default = 700  # CPython's youngest-generation threshold (gc.get_threshold docs)
    assert Settings().gc_young_threshold > python_default
