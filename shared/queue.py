"""The on-sale queue (waiting room) in Redis: one per queued event, moved by queue_*.lua
(shared/lua/), its keys in shared/keys.py QueueKeys. docs/queue.md tells the whole design.

An event's queue keeps, in `meta` (a hash): `opens_at` and `opened_at` (epoch ms), `state`
(`pre` before the opening, `drawing` while the pre-queue is being drawn, `open`, `sold_out`),
`seed` (the draw's, recorded), `rate` (admissions per second), `paused` (by an admin),
`measured` (the admission rate the loop measured), the counters `seq` (joins), `admitted`,
`expired` and `sold_out`, and the admission loop's `tick_at`, `carry` and `cursor`.

Places: whoever joined before the opening is in `pre` by arrival; the draw gives each of
them the place `draw_score(seed, queue_id)` (below 2^52), later joiners `2^52 + arrival`.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from shared.errors import QueueLost
from shared.keys import RedisKeys
from shared.lua import register

ARRIVALS = 2**52  # later joiners' places start here, behind every drawn one (queue_entry.lua)
CHUNK = 5000  # the most entries one queue_admit.lua call touches


class QueueStatus(enum.StrEnum):
    WAITING = "WAITING"
    ADMITTED = "ADMITTED"
    EXPIRED = "EXPIRED"
    SOLD_OUT = "SOLD_OUT"


def queue_id(key: bytes, event_id: int, buyer: str) -> str:
    """A buyer's entry id in an event's queue: the same on every join (one entry per buyer),
    and unguessable without the key."""
    digest = hmac.new(key, f"{event_id}\x00{buyer}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:15]).decode()


def draw_score(seed: str, entry: str) -> int:
    """An entry's place after the draw: the first 52 bits of sha1(seed:queue id), as
    queue_admit.lua computes it (an integer a double holds exactly)."""
    return int(hashlib.sha1(f"{seed}:{entry}".encode(), usedforsecurity=False).hexdigest()[:13], 16)


def draw_order(seed: str, entries: Iterable[str]) -> list[str]:
    """The order the draw with `seed` puts the pre-queue in, as Redis sorts it (equal places
    by the id's bytes): the audit's reproduction of the opening."""
    return sorted(entries, key=lambda entry: (draw_score(seed, entry), entry))


@dataclass(frozen=True, slots=True)
class Entry:
    """A buyer's entry as a poll sees it."""

    queue_id: str
    buyer: str
    status: QueueStatus
    position: int | None  # 1 = next; None before the draw has placed it
    admitted_at_ms: int | None
    admission_no: int | None  # the n-th admission of this queue
    measured_rate: float | None  # admissions per second; None when not known yet
    state: str
    created: bool = False

    def eta_s(self) -> float | None:
        """How long until admission at the measured rate; None when not known."""
        if self.status is not QueueStatus.WAITING or self.position is None:
            return None
        if not self.measured_rate:
            return None
        return round(self.position / self.measured_rate, 1)


@dataclass(frozen=True, slots=True)
class Step:
    """What one queue_admit.lua call did."""

    state: str
    admitted: int
    expired: int
    sold_out: int
    drawn: int
    more: bool
    waiting: int


@dataclass(frozen=True, slots=True)
class Stats:
    state: str
    opens_at_ms: int
    opened_at_ms: int | None
    seed: str | None
    rate: float
    measured_rate: float | None
    paused: bool
    joined: int
    waiting: int  # entries still holding a place (before or after the draw)
    admitted: int
    expired: int
    sold_out: int


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _rate(text: str) -> float | None:
    return float(text) if text else None


class Queues:
    """Every event's queue, over one Redis client."""

    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self.redis = redis
        self.keys = keys
        self._entry = register(redis, "queue_entry")
        self._admit = register(redis, "queue_admit")
        self._control = register(redis, "queue_control")

    async def create(self, event_id: int, opens_at_ms: int, rate: float) -> bool:
        """The event's queue, opening at `opens_at_ms`; False when it exists already."""
        done = await self._control(
            keys=[self.keys.queue(event_id).meta], args=["create", opens_at_ms, rate]
        )
        await self.redis.sadd(self.keys.queues, event_id)
        return int(done) == 1

    async def control(self, event_id: int, mode: str, value: float | None = None) -> bool:
        """`open` (now), `pause`, `resume` or `rate` (to `value`); False when the queue's data
        is missing."""
        args: list[Any] = [mode] if value is None else [mode, value]
        done = await self._control(keys=[self.keys.queue(event_id).meta], args=args)
        return int(done) == 1

    async def join(self, event_id: int, entry: str, buyer: str) -> Entry:
        """Join (or find again) the buyer's entry; QueueLost when the queue's data is gone."""
        joined = await self._call(event_id, "join", entry, buyer)
        assert joined is not None
        return joined

    async def join_many(self, event_id: int, entries: Sequence[tuple[str, str]]) -> None:
        """(queue id, buyer) pairs joined through the same script as `join`, in one pipeline:
        bulk loading for the benchmark."""
        keys = list(self.keys.queue(event_id))
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry, buyer in entries:
                await self._entry(keys=keys, args=["join", entry, buyer, ARRIVALS], client=pipe)
            await pipe.execute()

    async def poll(self, event_id: int, entry: str) -> Entry | None:
        """The entry, now seen; None when there is no such entry; QueueLost when the queue's
        data is gone."""
        return await self._call(event_id, "poll", entry, "")

    async def _call(self, event_id: int, mode: str, entry: str, buyer: str) -> Entry | None:
        keys = list(self.keys.queue(event_id))
        reply = await self._entry(keys=keys, args=[mode, entry, buyer, ARRIVALS])
        found = _text(reply[0])
        if found == "missing":
            raise QueueLost()
        if found == "unknown":
            return None
        ended, rank = _text(reply[2]), int(reply[3])
        admitted_at = admission_no = None
        if ended == "W":
            status = QueueStatus.WAITING
        elif ended.startswith("A:"):
            status = QueueStatus.ADMITTED
            _, at, no = ended.split(":")
            admitted_at, admission_no = int(at), int(no)
        elif ended == "S":
            status = QueueStatus.SOLD_OUT
        else:
            status = QueueStatus.EXPIRED
        return Entry(
            queue_id=entry,
            buyer=_text(reply[1]),
            status=status,
            position=rank + 1 if status is QueueStatus.WAITING and rank >= 0 else None,
            admitted_at_ms=admitted_at,
            admission_no=admission_no,
            measured_rate=_rate(_text(reply[5])),
            state=_text(reply[4]),
            created=found == "new",
        )

    async def step(
        self,
        event_id: int,
        seed: str,
        *,
        hold: bool,
        sold_out: bool,
        idle_ms: int,
        measured: float | None,
        chunk: int = CHUNK,
    ) -> Step:
        """One queue_admit.lua call (the admission loop's)."""
        reply = await self._admit(
            keys=list(self.keys.queue(event_id)),
            args=[
                seed,
                "1" if hold else "0",
                "1" if sold_out else "0",
                idle_ms,
                chunk,
                "" if measured is None else f"{measured:.3f}",
            ],
        )
        state, *counts = reply
        admitted, expired, gone, drawn, more, waiting = (int(c) for c in counts)
        return Step(_text(state), admitted, expired, gone, drawn, bool(more), waiting)

    async def stats(self, event_id: int) -> Stats | None:
        keys = self.keys.queue(event_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.meta)
            pipe.zcard(keys.seen)
            meta, waiting = await pipe.execute()
        if not meta:
            return None
        m = {_text(k): _text(v) for k, v in meta.items()}
        return Stats(
            state=m["state"],
            opens_at_ms=int(m["opens_at"]),
            opened_at_ms=int(m["opened_at"]) if "opened_at" in m else None,
            seed=m.get("seed"),
            rate=float(m["rate"]),
            measured_rate=_rate(m.get("measured", "")),
            paused=m.get("paused") == "1",
            joined=int(m["seq"]),
            waiting=int(waiting),
            admitted=int(m["admitted"]),
            expired=int(m["expired"]),
            sold_out=int(m["sold_out"]),
        )

    async def pre_queue(self, event_id: int) -> list[str]:
        """Who joined before the opening, by arrival: with the seed, what the audit needs to
        reproduce the draw (`draw_order`)."""
        members = await self.redis.zrange(self.keys.queue(event_id).pre, 0, -1)
        return [_text(m) for m in members]

    async def admissions(self, event_id: int) -> list[tuple[int, str]]:
        """(admission number, queue id) of every admitted entry, in admission order."""
        done = await self.redis.hgetall(self.keys.queue(event_id).done)
        numbered = []
        for entry, ended in done.items():
            text = _text(ended)
            if text.startswith("A:"):
                numbered.append((int(text.rsplit(":", 1)[1]), _text(entry)))
        return sorted(numbered)

    async def queued_events(self) -> list[int]:
        return sorted(int(_text(e)) for e in await self.redis.smembers(self.keys.queues))

    async def forget(self, event_id: int) -> None:
        """The loop stops moving this queue (it is sold out and empty)."""
        await self.redis.srem(self.keys.queues, event_id)
