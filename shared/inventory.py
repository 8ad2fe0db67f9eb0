"""The Redis gate: per-event stock counters, per-user totals and holds, driven by Lua scripts
(shared/lua/*.lua; the keys are in shared/keys.py)."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import msgspec
from redis.asyncio import BlockingConnectionPool, Redis

from shared.config import Settings
from shared.errors import CounterMissing
from shared.keys import EventKeys, RedisKeys
from shared.lua import register

# A batch goes to a script as one JSON argument (cjson in Redis decodes it), not as thousands
# of arguments redis-py would pack one by one in Python.
_encode = msgspec.json.Encoder().encode


def open_redis(settings: Settings) -> Redis:
    """The Redis client both processes use: text replies, short timeouts, so a dead Redis
    fails a request quickly instead of hanging it."""
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=10,
        # Past this many connections a request waits (up to `timeout`) for a free one
        # instead of failing: a burst of requests queues rather than errors.
        max_connections=settings.redis_max_connections,
        timeout=2,
    )
    return Redis.from_pool(pool)


class Gate(enum.StrEnum):
    """What reserve.lua said about one booking."""

    HELD_NOW = "N"
    HELD_BEFORE = "H"
    SOLD_OUT = "S"
    LIMIT = "L"
    SEAT_TAKEN = "T"  # a seat the ask named is taken


# The answers that leave a hold to settle. A set, not a property: the worker asks once per
# booking under the row lock, and an enum property is a Python call.
HELD = frozenset({Gate.HELD_NOW, Gate.HELD_BEFORE})


class Release(NamedTuple):
    """A booking whose stock and seats come back at the gate (expired or cancelled), as
    reserve.lua reads it."""

    booking_id: uuid.UUID
    user_id: str
    quantity: int
    seats: list[int]


class Ask(NamedTuple):
    """One booking's request at the gate. A tuple: the worker makes thousands per batch
    under the event's row lock, a frozen dataclass costs several times more, and msgspec
    encodes a list of them as the array of arrays reserve.lua reads."""

    booking_id: uuid.UUID
    user_id: str
    quantity: int


class SeatAsk(NamedTuple):
    """An ask that names its seats: the gate refuses it when one of them is taken."""

    booking_id: uuid.UUID
    user_id: str
    quantity: int
    seats: list[int]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The gate's view of one event; `available` is None when the counter is missing."""

    available: int | None
    held: int
    holds: int
    releasing: int = 0  # releases given back whose commit was not yet confirmed


def seat_bitmap(taken: Iterable[int]) -> bytes:
    """The gate's seat bitmap: bit n (the high bit first, as Redis counts) set for each
    seat n, and bit 0."""
    seats = [0, *taken]
    out = bytearray(max(seats) // 8 + 1)
    for n in seats:
        out[n >> 3] |= 0x80 >> (n & 7)
    return bytes(out)


class Inventory:
    """Stock counters in Redis. Redis is a fast gate; PostgreSQL has the final word."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self._redis = redis
        self._keys = RedisKeys(prefix)
        self._reserve = register(redis, "reserve")
        self._settle = register(redis, "settle")
        self._rebuild = register(redis, "rebuild")
        self._correct = register(redis, "correct")

    def keys(self, event_id: int) -> EventKeys:
        return self._keys.event(event_id)

    async def open(self, event_id: int, capacity: int) -> None:
        """Start a new event's counter at its capacity and its seat bitmap empty (no-op for
        what exists)."""
        keys = self.keys(event_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.setbit(keys.seats, 0, 1)
            pipe.set(keys.avail, capacity, nx=True)
            await pipe.execute()

    async def available(self, event_id: int) -> int | None:
        raw = await self._redis.get(self.keys(event_id).avail)
        return None if raw is None else int(raw)

    async def snapshot(self, event_id: int) -> Snapshot:
        keys = self.keys(event_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.avail)
            pipe.get(keys.held)
            pipe.hlen(keys.holds)
            pipe.hlen(keys.released)
            raw_avail, raw_held, n_holds, n_released = await pipe.execute()
        return Snapshot(
            available=None if raw_avail is None else int(raw_avail),
            held=int(raw_held or 0),
            holds=int(n_holds),
            releasing=int(n_released),
        )

    async def reserve(
        self,
        event_id: int,
        limit: int,
        asks: Sequence[Ask | SeatAsk],
        releases: Sequence[Release] = (),
    ) -> list[Gate]:
        """Give back the stock of `releases` (once per booking id, however often this is
        retried), then decide `asks` in order, atomically. Raises CounterMissing when a
        rebuild is due."""
        if not asks and not releases:
            return []
        args: list[str | int | bytes] = [limit, _encode(asks)]
        if releases:
            args.append(_encode(releases))
        codes = await self._reserve(keys=self.keys(event_id), args=args)
        if codes == "MISSING":
            raise CounterMissing(f"inventory counter for event {event_id} is missing")
        return [Gate(code) for code in codes]

    async def settle(
        self,
        event_id: int,
        outcomes: Iterable[tuple[uuid.UUID, bool]],
        released: Sequence[uuid.UUID] = (),
        taken: Sequence[tuple[int, int]] = (),
    ) -> int:
        """Drop holds of bookings PostgreSQL decided (True: kept, held or confirmed); give
        back stock and named seats of refused ones; forget the marks of releases PostgreSQL
        committed; mark `taken` (runs of seat numbers PostgreSQL gave) in the seat bitmap."""
        pairs = [(booking_id, "C" if kept else "R") for booking_id, kept in outcomes]
        if not pairs and not released and not taken:
            return 0
        args = [_encode(pairs), _encode(list(released))]
        if taken:
            args.append(_encode(list(taken)))
        return int(await self._settle(keys=self.keys(event_id), args=args))

    async def released_ids(self, event_id: int) -> set[uuid.UUID]:
        """Bookings whose stock was given back by a transaction not yet known to have
        committed."""
        return {uuid.UUID(str(b)) for b in await self._redis.hkeys(self.keys(event_id).released)}

    async def rebuild(
        self, event_id: int, available: int, users: dict[str, int], taken: Iterable[int]
    ) -> bool:
        """Recreate a missing counter, or a missing seat bitmap, from PostgreSQL's numbers
        (`taken`: the seat numbers held or sold); False if both existed."""
        args: list[str | int | bytes] = [available, seat_bitmap(taken)]
        for user, quantity in users.items():
            args += [user, quantity]
        return bool(await self._rebuild(keys=self.keys(event_id), args=args))

    async def hold_ids(self, event_id: int) -> set[uuid.UUID]:
        """Bookings that hold stock not yet settled by PostgreSQL."""
        return {uuid.UUID(str(b)) for b in await self._redis.hkeys(self.keys(event_id).holds)}

    async def correct(self, event_id: int, seen: int, corrected: int) -> bool:
        """Set an idle counter to `corrected` if it still reads `seen` and nothing is held."""
        keys = self.keys(event_id)
        return bool(
            await self._correct(keys=[keys.avail, keys.held, keys.released], args=[seen, corrected])
        )
