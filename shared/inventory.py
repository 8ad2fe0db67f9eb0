"""The Redis gate: per-event stock counters, per-user totals and holds, driven by Lua scripts
(shared/lua/*.lua; the keys are in shared/keys.py)."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import msgspec
from redis.asyncio import Redis

from shared.errors import CounterMissing, GateStale
from shared.keys import EventKeys, RedisKeys
from shared.lua import register

# A batch goes to a script as one JSON argument (cjson in Redis decodes it), not as thousands
# of arguments redis-py would pack one by one in Python.
_encode = msgspec.json.Encoder().encode


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
    """Stock counters in Redis. Redis is a fast gate; PostgreSQL has the final word.

    Under Sentinel the primary can change, and the promoted replica may lack the last writes
    of the old one (replication is asynchronous): a gate that comes back stale, not missing.
    So every reserve and rebuild asks, in the same transaction, which server ran it (its
    run_id); a reserve on another server than the one this process last wrote the event's
    gate on raises GateStale, and the caller rebuilds the gate from PostgreSQL under the
    event's row lock. A restarted Redis has a new run_id too."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self._redis = redis
        self._keys = RedisKeys(prefix)
        self._reserve = register(redis, "reserve")
        self._settle = register(redis, "settle")
        self._rebuild = register(redis, "rebuild")
        self._correct = register(redis, "correct")
        self._first_server: str | None = None  # the primary this process first saw
        self._servers: dict[int, str] = {}  # event id -> the primary its gate was written on

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
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.info("server")
            await self._reserve(keys=self.keys(event_id), args=args, client=pipe)
            info, codes = await pipe.execute()
        if codes == "MISSING":
            raise CounterMissing(f"inventory counter for event {event_id} is missing")
        if not self._same_server(event_id, info["run_id"]):
            # What this reserve wrote is wiped by the rebuild, before anything commits.
            raise GateStale(f"the Redis primary changed under event {event_id}'s gate")
        return [Gate(code) for code in codes]

    def _same_server(self, event_id: int, server: str) -> bool:
        """True, and remembered, when `server` is the one the event's gate was last written
        on (for an event this process has not written yet: the first server it saw)."""
        if self._first_server is None:
            self._first_server = server
        if self._servers.get(event_id, self._first_server) != server:
            return False
        self._servers[event_id] = server
        return True

    async def stale_events(self) -> list[int]:
        """Events whose gate this process wrote on another server than today's primary (the
        worker rebuilds them even when no command for them comes: a stale counter could
        answer SOLD_OUT to buyers while stock is left)."""
        if not self._servers:
            return []
        server = str((await self._redis.info("server"))["run_id"])
        return [event for event, seen in self._servers.items() if seen != server]

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
        self,
        event_id: int,
        available: int,
        users: dict[str, int],
        taken: Iterable[int],
        force: bool = False,
    ) -> bool:
        """Recreate a missing counter, or a missing seat bitmap, from PostgreSQL's numbers
        (`taken`: the seat numbers held or sold); False if both existed. With `force`, the
        whole gate, whatever exists (a stale copy after a failover)."""
        args: list[str | int | bytes] = [available, seat_bitmap(taken), "1" if force else "0"]
        for user, quantity in users.items():
            args += [user, quantity]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.info("server")
            await self._rebuild(keys=self.keys(event_id), args=args, client=pipe)
            info, rebuilt = await pipe.execute()
        if rebuilt:
            self._servers[event_id] = str(info["run_id"])
        return bool(rebuilt)

    async def hold_ids(self, event_id: int) -> set[uuid.UUID]:
        """Bookings that hold stock not yet settled by PostgreSQL."""
        return {uuid.UUID(str(b)) for b in await self._redis.hkeys(self.keys(event_id).holds)}

    async def correct(self, event_id: int, seen: int, corrected: int) -> bool:
        """Set an idle counter to `corrected` if it still reads `seen` and nothing is held."""
        keys = self.keys(event_id)
        return bool(
            await self._correct(keys=[keys.avail, keys.held, keys.released], args=[seen, corrected])
        )
