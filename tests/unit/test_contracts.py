"""shared/contracts.py: booking ids, and the bulk UUID formatting the hot paths use instead of
`str()`."""

from __future__ import annotations

import json
import time
import uuid

import msgspec
import pytest

from shared.contracts import (
    BookingRequested,
    CancelRequested,
    PaymentReceived,
    decode_command,
    encode_command,
    new_booking_id,
    uuid_texts,
)
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


def test_commands_round_trip_by_their_tag() -> None:
    booking = new_booking_id()
    commands = [
        BookingRequested(booking, 1, "ann", 2, 1_000),
        PaymentReceived(booking, 1, "stripe", "pi_1", 2_000, 5000, "evt_1"),
        CancelRequested(booking, 1, "admin", 3_000),
    ]
    assert [decode_command(encode_command(c)) for c in commands] == commands
    assert json.loads(encode_command(commands[1]))["type"] == "pay.v1"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type": "refund.v1", "booking_id": "01a2385a-4c49-76f0-a004-e0cc6de6fb71"}',
        b'{"booking_id": "01a2385a-4c49-76f0-a004-e0cc6de6fb71", "event_id": 1}',  # no tag
        b'{"type": "pay.v1", "booking_id": "x", "event_id": 1}',
        b'{"type": "pay.v1", "booking_id": "01a2385a-4c49-76f0-a004-e0cc6de6fb71",'
        b' "event_id": 1, "provider": "paypal", "payment_ref": "p", "received_at_ms": 1}',
        b"not json",
    ],
)
def test_unknown_or_malformed_commands_are_poison(raw: bytes) -> None:
    """The worker sends whatever this refuses to the dead-letter topic."""
    with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)):
        decode_command(raw)
