"""A booking's trace through Kafka for the console: what the ledger knows of it (its event,
so its partition; when its payments and cancellation happened), the booking-topic messages
that name it around those times (shared/kafka_search.py) and the dead letters that name it.

A search reads up to hundreds of thousands of messages: one runs at a time per API process,
and another asked meanwhile is answered 503 at once rather than queued behind it."""

from __future__ import annotations

import asyncio
import uuid

import msgspec

from shared.config import Settings
from shared.db import NamedQueries, Pool, fetch_one
from shared.errors import InvalidRequest, NotFound, Unavailable
from shared.kafka_search import (
    CLOCK_SKEW_MS,
    Bounds,
    Search,
    Window,
    find_booking,
    id_time_ms,
    window_around,
)
from shared.kafka_view import KafkaLook, Message, tail

queries = NamedQueries("api", "booking_trace.sql")

# A dead letter is appended when the worker meets the poison, which can be long after the
# booking was published: the dead-letter topic is searched over its last messages instead.
DEAD_LETTER_SEARCH = 10_000
# A cancellation's decided time is after its command was appended, by up to the worker's lag.
CANCEL_LOOKBACK_MS = 60_000


class SearchBusy(Unavailable):
    """Another booking search is running in this API process; retry in a few seconds."""


class LedgerEntry(msgspec.Struct):
    event_id: int
    status: str
    quantity: int
    seats: list[str]  # labels, once decided (the command itself names seat numbers)


class BookingSearch(msgspec.Struct):
    booking_id: str
    ledger: LedgerEntry | None  # None: not decided (still in Kafka) or unknown
    requests: Search  # the booking topic, around the times the ledger and the id give
    dead_letters: list[Message]  # among the dead-letter topic's last messages
    dead_letters_searched: int  # per partition, the newest ones
    how: str


def parse_booking_id(text: str) -> uuid.UUID:
    """A booking id as the API makes them (a UUIDv7), or InvalidRequest saying why not."""
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        raise InvalidRequest(f"{text[:60]!r} is not a booking id (a UUID)") from None
    if id_time_ms(parsed) is None:
        raise InvalidRequest(f"{parsed} is not a booking id of this service (not a UUIDv7)")
    return parsed


class BookingTrace:
    def __init__(self, settings: Settings, pool: Pool, look: KafkaLook) -> None:
        self._settings = settings
        self._pool = pool
        self._look = look
        self._running = asyncio.Lock()
        self.bounds = Bounds()

    async def find(self, booking_id: uuid.UUID) -> BookingSearch:
        if self._running.locked():
            raise SearchBusy()
        async with self._running:
            return await self._find(booking_id)

    async def _find(self, wanted: uuid.UUID) -> BookingSearch:
        s = self._settings
        made_ms = id_time_ms(wanted)
        assert made_ms is not None  # parse_booking_id accepts UUIDv7 only
        row = await fetch_one(self._pool, queries.booking_moments, {"booking_id": wanted})
        windows: list[Window] = [window_around(made_ms, s)]
        ledger = None
        if row is not None:
            ledger = LedgerEntry(
                row["event_id"], row["status"], row["quantity"], list(row["seats"] or [])
            )
            for received in row["payments_received"]:
                windows.append(window_around(int(received.timestamp() * 1000), s))
            if row["cancelled_at"] is not None:
                decided_ms = int(row["cancelled_at"].timestamp() * 1000)
                windows.append((decided_ms - CANCEL_LOOKBACK_MS, decided_ms + CLOCK_SKEW_MS))
        event_id = None if ledger is None else ledger.event_id
        requests = await find_booking(self._look, wanted, windows, event_id, s.topic, self.bounds)
        _, dead = await tail(
            self._look, s.dlq_topic, DEAD_LETTER_SEARCH, containing=str(wanted).encode()
        )
        if ledger is None and not requests.messages and not dead:
            raise NotFound(
                f"booking {wanted} is not in the ledger, and no message names it among the "
                f"{requests.scanned} booking-topic messages appended around its id's time "
                f"nor the last {DEAD_LETTER_SEARCH} dead letters"
            )
        bounded = (
            f"; it stopped at a bound ({', '.join(requests.bounds_hit)}) and may have missed some"
            if requests.bounds_hit
            else ""
        )
        return BookingSearch(
            str(wanted),
            ledger,
            requests,
            dead,
            DEAD_LETTER_SEARCH,
            "booking topic: the event's partition (every partition when the ledger does not "
            "know the booking), messages appended within each window (overlapping ones merged, "
            f"at most {self.bounds.windows}), at most {requests.bound_per_partition} per "
            f"partition and window and {requests.bound_total} in all{bounded}; dead-letter "
            f"topic: its last {DEAD_LETTER_SEARCH} messages per partition",
        )
