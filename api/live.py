"""Live updates for the API's Server-Sent Events: one Redis subscription per API process,
fanned out to the connections that wait for them.

The worker publishes on two channels (shared/keys.py): every batch of decision records it
wrote for polling clients, and an event's availability whenever it publishes the seat map.
Each connection registers a `Watch`: a wake-up and the newest record or availability seen
(a queue of depth one: a burst of changes wakes a stream once, with the latest, and nothing
is queued per change). A lost subscription wakes every connection, with nothing attached,
once it is back: the stream then reads the current state, so a change published meanwhile
is not missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import TypeVar

import msgspec
import redis.exceptions
from redis.asyncio.client import PubSub

from shared.config import Settings
from shared.keys import RedisKeys
from shared.redis_clients import open_redis

log = logging.getLogger(__name__)

RESUBSCRIBE_PAUSE_S = 1.0


class _Head(msgspec.Struct):
    event_id: int
    version: int


_head = msgspec.json.Decoder(_Head).decode


class Watch:
    """One connection's wake-up, and what woke it (None: read the current state)."""

    __slots__ = ("record", "woken")

    def __init__(self) -> None:
        self.woken = asyncio.Event()
        self.record: bytes | None = None

    def wake(self, record: bytes | None) -> None:
        self.record = record
        self.woken.set()

    async def wait(self, timeout_s: float) -> bool:
        """Until woken (True), or `timeout_s` passed (False); the wake-up is consumed."""
        try:
            await asyncio.wait_for(self.woken.wait(), timeout_s)
        except TimeoutError:
            return False
        self.woken.clear()
        return True

    def take(self) -> bytes | None:
        record, self.record = self.record, None
        return record


class Hub:
    def __init__(self, settings: Settings, keys: RedisKeys) -> None:
        # Its own client: raw bytes, and no read timeout (a quiet channel is not a failure;
        # the health check pings it). Under Sentinel it subscribes again on the new primary.
        self._redis = open_redis(
            settings, decode_responses=False, socket_timeout=None, health_check_interval=15
        )
        self._keys = keys
        self._bookings: dict[bytes, set[Watch]] = {}  # decision key -> its watchers
        self._events: dict[int, set[Watch]] = {}  # event id -> its watchers
        self._latest: dict[int, tuple[int, bytes]] = {}  # event id -> (version, JSON)
        self._booking_changes = keys.booking_changes.encode()
        self._closing = False
        self._pubsub: PubSub | None = None

    @contextlib.contextmanager
    def booking(self, booking_id: str) -> Iterator[Watch]:
        """Woken with the booking's record whenever the worker records it, for as long as
        the `with` block runs."""
        key = self._keys.decision(booking_id).encode()
        watch = Watch()
        self._bookings.setdefault(key, set()).add(watch)
        try:
            yield watch
        finally:
            _discard(self._bookings, key, watch)

    @contextlib.contextmanager
    def availability(self, event_id: int) -> Iterator[Watch]:
        """Woken whenever the event's availability is published (`latest` has it)."""
        watch = Watch()
        self._events.setdefault(event_id, set()).add(watch)
        try:
            yield watch
        finally:
            _discard(self._events, event_id, watch)

    def latest(self, event_id: int) -> tuple[int, bytes] | None:
        """The newest availability this process has seen: (version, JSON)."""
        return self._latest.get(event_id)

    def offer(self, event_id: int, version: int, data: bytes) -> None:
        """Keep this availability if it is newer than the one kept."""
        kept = self._latest.get(event_id)
        if kept is None or kept[0] < version:
            self._latest[event_id] = (version, data)

    @property
    def connections(self) -> int:
        return sum(map(len, self._bookings.values())) + sum(map(len, self._events.values()))

    async def run(self) -> None:
        """Listen until `close()`; a lost connection is subscribed again."""
        while not self._closing:
            pubsub = self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._keys.booking_changes, self._keys.availability_changes)
                self._wake_all()  # whatever happened while not subscribed is read now
                async for message in pubsub.listen():
                    self._dispatch(message["channel"], message["data"])
            except (redis.exceptions.RedisError, OSError) as exc:
                if not self._closing:
                    log.warning("live updates: Redis subscription lost (%r); again", exc)
            except Exception:
                log.exception("live updates: unexpected error; subscribing again")
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                await pubsub.aclose()
            if not self._closing:
                await asyncio.sleep(RESUBSCRIBE_PAUSE_S)

    async def close(self) -> None:
        """End `run()` by dropping its connection: redis-py does not let a cancellation
        through a blocked read. Then the client closes."""
        self._closing = True
        pubsub = self._pubsub
        if pubsub is not None and pubsub.connection is not None:
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                await pubsub.connection.disconnect()

    async def aclose(self) -> None:
        """After `run()` has ended: the client's connections."""
        await self._redis.aclose()

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        if channel == self._booking_changes:
            if self._bookings:
                for line in data.split(b"\n"):
                    key, _, record = line.partition(b"\t")
                    for watch in self._bookings.get(key, ()):
                        watch.wake(record)
            return
        try:
            head = _head(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("live updates: ignoring an undecodable availability message")
            return
        self.offer(head.event_id, head.version, data)
        for watch in self._events.get(head.event_id, ()):
            watch.wake(None)

    def _wake_all(self) -> None:
        for watches in (*self._bookings.values(), *self._events.values()):
            for watch in watches:
                watch.wake(None)


K = TypeVar("K")


def _discard(table: dict[K, set[Watch]], key: K, watch: Watch) -> None:
    watches = table.get(key)
    if watches is not None:
        watches.discard(watch)
        if not watches:
            del table[key]
