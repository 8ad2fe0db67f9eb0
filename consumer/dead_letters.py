"""Poison messages: parked on the dead-letter topic with the reason, never retried, never
skipped silently. A poison message that names an undecided booking rejects it (INVALID), so
its buyer is not left polling PENDING forever."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import msgspec
from aiokafka import AIOKafkaProducer, ConsumerRecord

from consumer.finalize import Finalizer
from shared import deadlines
from shared.contracts import BookingRequested, Decision, Reason, Status
from shared.decisions import DecisionCache
from shared.metrics import DEAD_LETTERS

log = logging.getLogger(__name__)

REASON_MAX_BYTES = 1000


@dataclass(frozen=True, slots=True)
class Poison:
    record: ConsumerRecord[bytes, bytes]
    reason: str


class DeadLetters:
    def __init__(
        self, producer: AIOKafkaProducer, topic: str, cache: DecisionCache, finalizer: Finalizer
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._cache = cache
        self._finalizer = finalizer

    async def park(self, bad: Poison) -> None:
        """Park the message with its reason; reject its booking if it names an undecided one."""
        record = bad.record
        await self._producer.send_and_wait(
            self._topic,
            value=record.value,
            key=record.key,
            headers=[
                ("reason", bad.reason.encode()[:REASON_MAX_BYTES]),
                ("source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
            ],
        )
        DEAD_LETTERS.inc()
        request = salvage(record.value)
        log.warning(
            "dead-lettered %s/%s@%s: %s",
            record.topic,
            record.partition,
            record.offset,
            bad.reason,
            extra={"booking_id": request.booking_id} if request else {},
        )
        if request is not None and not await self._decided(request.booking_id):
            decision = Decision(
                request.booking_id, Status.REJECTED, Reason.INVALID, (), deadlines.now_ms()
            )
            await self._cache.remember_decisions([(request, decision)])

    async def _decided(self, booking_id: uuid.UUID) -> bool:
        """A poison message naming a booking that was already decided changes nothing."""
        cached = await self._cache.get(booking_id)
        if cached is not None and cached.status != Status.PENDING:
            return True
        return booking_id in await self._finalizer.decided_ids([booking_id])


def salvage(raw: bytes | None) -> BookingRequested | None:
    """The booking an invalid message was about, when it names one, with what it says."""
    if not raw:
        return None
    try:
        fields = msgspec.json.decode(raw)
        return BookingRequested(
            booking_id=msgspec.convert(fields["booking_id"], uuid.UUID),
            event_id=_as_int(fields.get("event_id")),
            user_id=str(fields.get("user_id", ""))[:64],
            quantity=_as_int(fields.get("quantity")),
            requested_at_ms=_as_int(fields.get("requested_at_ms")),
        )
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError, AttributeError):
        return None


def _as_int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
