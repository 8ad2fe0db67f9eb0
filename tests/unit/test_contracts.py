"""shared/contracts.py: booking ids, and the bulk UUID formatting the hot paths use instead of
`str()`."""

from __future__ import annotations

import time
import uuid

import pytest

from shared.contracts import new_booking_id, uuid_texts
from shared.db import uuid_array

pytestmark = pytest.mark.unit


def test_booking_ids_are_unique_and_sort_in_creation_order() -> None:
    before_ms = time.time_ns() // 1_000_000
    ids = [new_booking_id() for _ in range(10_000)]
    after_ms = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # the index-locality the worker's batches rely on
    assert {i.version for i in ids} == {7}
    stamped_ms = [i.int >> 80 for i in ids]  # a UUIDv7 starts with its creation time in ms
    assert before_ms <= stamped_ms[0] <= stamped_ms[-1] <= after_ms


def test_uuid_texts_match_str_in_order() -> None:
    ids = [uuid.uuid4() for _ in range(2_500)] + [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)]
    assert uuid_texts(ids) == [str(i) for i in ids]
    assert uuid_texts(i for i in ids) == [str(i) for i in ids]  # any iterable
    assert uuid_texts([]) == []


def test_uuid_texts_of_a_set_are_its_members() -> None:
    ids = {uuid.uuid4() for _ in range(10)}
    assert sorted(uuid_texts(ids)) == sorted(map(str, ids))


def test_uuid_array_is_postgres_array_syntax() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert uuid_array([a, b]) == f"{{{a},{b}}}"
    assert uuid_array([]) == "{}"
