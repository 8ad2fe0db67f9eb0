"""The seat maps the worker publishes to Redis (consumer/seat_map.py), as the API reads them."""

from __future__ import annotations

from typing import NamedTuple

import redis.exceptions
from redis.asyncio import Redis

from shared.keys import RedisKeys


class Snapshot(NamedTuple):
    version: int
    body: bytes  # the JSON of GET /api/events/{id}/seats
    etag: str


def etag(event_id: int, version: int) -> str:
    return f'"{event_id}-{version}"'


class SeatMapSnapshots:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def read(self, event_id: int) -> Snapshot | None:
        """The latest snapshot, or None when there is none (a new event, Redis lost it, or
        Redis cannot be reached: the ledger answers then)."""
        try:
            version, body = await self._redis.hmget(
                self._keys.seat_map(event_id), ["version", "body"]
            )
        except redis.exceptions.RedisError:
            return None
        if version is None or body is None:
            return None
        raw = body.encode() if isinstance(body, str) else body
        return Snapshot(int(version), raw, etag(event_id, int(version)))
