"""Idempotency-Key handling: the same key from the same user with the same body gets the same
booking id and publishes nothing new; the same key with another body is refused.

A key is first claimed as `pending` (short TTL, so a crashed request frees it), and becomes
`done` with the booking id only after Kafka acknowledged. Concurrent requests with the key wait
for the first one to finish, so they never answer 202 for a request that was not published.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.errors import IdempotencyConflict, IdempotencyInProgress
from shared.keys import RedisKeys
from shared.lua import register

PENDING_TTL_S = 30
WAIT_FOR_FIRST_S = 5.0
POLL_S = 0.02


@dataclass(frozen=True, slots=True)
class Claim:
    key: str
    value: str
    booking_id: str
    first: bool  # True: this request publishes; False: replay of an earlier one


class IdempotencyStore:
    def __init__(self, redis: Redis, prefix: str, ttl_s: int) -> None:
        self._redis = redis
        self._keys = RedisKeys(prefix)
        self._ttl = ttl_s
        self._release_if = register(redis, "release_if")

    async def claim(self, user_id: str, key: str, fingerprint: str, booking_id: str) -> Claim:
        redis_key = self._keys.idempotency(user_id, key)
        pending = f"pending|{fingerprint}|{booking_id}"
        deadline = time.monotonic() + WAIT_FOR_FIRST_S
        while time.monotonic() < deadline:
            if await self._redis.set(redis_key, pending, nx=True, ex=PENDING_TTL_S):
                return Claim(redis_key, pending, booking_id, first=True)
            raw = await self._redis.get(redis_key)
            if raw is None:
                continue  # the first request gave up between our SET and GET
            state, their_fingerprint, their_id = str(raw).split("|", 2)
            if their_fingerprint != fingerprint:
                raise IdempotencyConflict()
            if state == "done":
                return Claim(redis_key, str(raw), their_id, first=False)
            await asyncio.sleep(POLL_S)  # the first request is publishing; bounded wait
        raise IdempotencyInProgress()

    async def complete(self, claim: Claim) -> None:
        done = claim.value.replace("pending|", "done|", 1)
        await self._redis.set(claim.key, done, ex=self._ttl)

    async def abandon(self, claim: Claim) -> None:
        """Free the key after a failed publish, so the client's retry can try again."""
        await self._release_if(keys=[claim.key], args=[claim.value])


def fingerprint(event_id: int, user_id: str, quantity: int, *choice: object) -> str:
    """What a request asked for, so a key reused for another request is told apart. A
    request without a seat choice prints as it did before seat choices existed."""
    parts = [event_id, user_id, quantity, *choice]
    return hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()[:32]
