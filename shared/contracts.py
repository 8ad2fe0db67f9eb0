"""The structs that cross process boundaries: Kafka messages and cached decisions."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from typing import Annotated, Literal

import msgspec
from aiokafka.partitioner import DefaultPartitioner
from uuid_utils.compat import uuid7

UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Quantity = Annotated[int, msgspec.Meta(ge=1)]
EventId = Annotated[int, msgspec.Meta(ge=1)]
PaymentRef = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


def new_booking_id() -> uuid.UUID:
    """A fresh booking id: a UUIDv7, whose leading bits are the creation time in ms.

    Ids made in the same moment sort together, so a batch's inserts and lookups land on the
    same few right-hand pages of the bookings primary key instead of thousands of random
    ones. The 74 random bits still make an id unguessable."""
    return uuid7()


class Status(enum.StrEnum):
    PENDING = "PENDING"
    HELD = "HELD"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


# Bookings that hold stock: their quantity counts against capacity and the buyer's limit.
LIVE = frozenset({Status.HELD, Status.CONFIRMED})


class Reason(enum.StrEnum):
    SOLD_OUT = "SOLD_OUT"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    INVALID = "INVALID"
    SEAT_TAKEN = "SEAT_TAKEN"
    NO_ADJACENT_SEATS = "NO_ADJACENT_SEATS"
    NOT_ADMITTED = "NOT_ADMITTED"


class BookingRequested(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, tag="booking.v1"
):
    """One accepted booking request, as published to Kafka (key: the event id)."""

    booking_id: uuid.UUID
    event_id: EventId
    user_id: UserId
    quantity: Quantity
    requested_at_ms: int
    # The API answers 503 if Kafka has not acknowledged by then, and the worker drops the
    # message if the broker appended it later (shared/deadlines.py). None: never expires.
    expires_at_ms: int | None = None
    # Seat choice (shared/seating.py numbers the seats): these seats, all or none; or
    # `quantity` seats in `section`, side by side in one row when `together`; or, with
    # neither, the lowest free seats of the event.
    seats: tuple[int, ...] | None = None
    section: str | None = None
    together: bool = False
    # For an event sold through its queue: the buyer's admission token (shared/admission.py),
    # checked again by the worker, so a message published around the API skips no queue.
    admission: str | None = None


class PaymentReceived(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="pay.v1"):
    """A payment for a held booking (key: the booking's event id). The worker applies each
    (provider, payment_ref) once: it confirms the hold, or is recorded as refund_due."""

    booking_id: uuid.UUID
    event_id: EventId
    provider: Literal["dev", "stripe"]
    payment_ref: PaymentRef
    received_at_ms: int
    amount_cents: int | None = None
    webhook_event_id: str | None = None  # Stripe's event id: each is applied once
    expires_at_ms: int | None = None  # the publisher's deadline; the worker applies it anyway


class CancelRequested(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="cancel.v1"):
    """A buyer or an admin cancels a held or confirmed booking (key: its event id)."""

    booking_id: uuid.UUID
    event_id: EventId
    by: UserId  # the buyer's id, or "admin"
    requested_at_ms: int
    expires_at_ms: int | None = None


# Everything that changes an event's inventory, in one stream per event (one partition).
Command = BookingRequested | PaymentReceived | CancelRequested


class Decision(msgspec.Struct, frozen=True):
    """A booking's state after the worker decided it, or changed it (paid, expired,
    cancelled)."""

    booking_id: uuid.UUID
    status: Status
    reason: Reason | None = None
    seats: tuple[str, ...] = ()
    decided_at_ms: int = 0
    hold_expires_at_ms: int | None = None
    paid_at_ms: int | None = None
    cancelled_at_ms: int | None = None
    price_cents: int | None = None


class BookingEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One state change of a booking, as published to `tickets.booking-events` (key: the
    event id) from the outbox. At least once, in `seq` order per event: a consumer skips a
    `seq` it has seen. The JSON Schema is docs/booking-events.schema.json."""

    event_id: EventId
    seq: Annotated[int, msgspec.Meta(ge=1)]  # rising by one per change within the event
    booking_id: uuid.UUID
    user_id: UserId
    status: Status  # never PENDING: only decided states are events
    reason: Reason | None
    seats: tuple[str, ...]
    quantity: Quantity
    price_cents: int | None
    hold_expires_at: str | None  # ISO 8601 UTC, for HELD
    at: str  # ISO 8601 UTC: when the change was decided


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Command)
_event_decoder = msgspec.json.Decoder(BookingEvent)


def encode_booking_event(event: BookingEvent) -> bytes:
    return _encoder.encode(event)


def decode_booking_event(raw: bytes | None) -> BookingEvent:
    """Decode a booking-events value; raises msgspec.DecodeError/ValidationError on poison."""
    if raw is None:
        raise msgspec.DecodeError("empty message value")
    return _event_decoder.decode(raw)


def encode_command(message: Command) -> bytes:
    return _encoder.encode(message)


def decode_command(raw: bytes | None) -> Command:
    """Decode a Kafka value; raises msgspec.DecodeError/ValidationError on poison (an
    unknown `type` tag included)."""
    if raw is None:
        raise msgspec.DecodeError("empty message value")
    return _decoder.decode(raw)


_texts = msgspec.json.Decoder(list[str])


def uuid_texts(ids: Iterable[uuid.UUID]) -> list[str]:
    """The canonical text of many UUIDs at once. msgspec formats them in C, several times
    faster than `str()` on each, which took a tenth of the worker's CPU."""
    many = ids if isinstance(ids, list | tuple | set | frozenset) else list(ids)
    return _texts.decode(_encoder.encode(many))


def event_key(event_id: int) -> bytes:
    """Kafka key: one event's commands stay in one partition, in order."""
    return str(event_id).encode()


_partitioner = DefaultPartitioner()


def partition_of(event_id: int, partitions: Iterable[int]) -> int:
    """The partition of the event's key among the topic's partitions: aiokafka's default
    partitioner (murmur2, as in the Java client), which the API's publisher uses."""
    return int(_partitioner(event_key(event_id), sorted(partitions), []))
