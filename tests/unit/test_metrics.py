"""shared/metrics.py: the batch-fed histogram reads exactly like prometheus_client's own."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from shared.metrics import LATENCY_BUCKETS, BatchHistogram

pytestmark = pytest.mark.unit


def exposed(registry: CollectorRegistry, name: str) -> list[str]:
    lines = generate_latest(registry).decode().splitlines()
    return [line.removeprefix(name) for line in lines if line.startswith(f"{name}_")]


def test_batch_histogram_exposes_what_observe_would() -> None:
    registry = CollectorRegistry()
    batched = BatchHistogram("batched_seconds", "doc", LATENCY_BUCKETS, registry=registry)
    reference = Histogram("reference_seconds", "doc", buckets=LATENCY_BUCKETS, registry=registry)
    # On a bound, just above one, past the last, and zero: `le` is inclusive.
    values = [0.0, 0.001, 0.0011, 0.0025, 0.05, 0.3, 7.0, 100.0]
    batched.observe_many(values[:3])
    batched.observe_many(values[3:])
    batched.observe_many([])
    for value in values:
        reference.observe(value)
    mine = exposed(registry, "batched_seconds")
    theirs = [line for line in exposed(registry, "reference_seconds") if "_created" not in line]
    assert mine == theirs
    assert '_bucket{le="0.001"} 2.0' in mine and "_count 8.0" in mine
