"""shared/contracts.py: the bulk UUID formatting the hot paths use instead of `str()`."""

from __future__ import annotations

import uuid

import pytest

from shared.contracts import uuid_texts
from shared.db import uuid_array

pytestmark = pytest.mark.unit


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
