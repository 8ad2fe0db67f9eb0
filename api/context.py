"""Everything a request handler needs, opened and closed by the app's lifespan."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency
from redis.asyncio import Redis

from api.auth import Authenticator
from api.coalesce import Coalescer, RecentReads
from api.idempotency import IdempotencyStore
from api.live import Hub
from api.publisher import Publisher
from api.rate_limit import Check, ClientAddresses, Limits, RateLimiter, Refusal
from api.seat_snapshots import Snapshot
from shared.config import Settings
from shared.contracts import BookingRequested
from shared.db import Pool
from shared.decisions import DecisionCache
from shared.errors import NotFound
from shared.inventory import Inventory
from shared.queue import Queues
from shared.rules import EventRules, RulesCache


@dataclass(slots=True)
class Services:
    settings: Settings
    pool: Pool
    redis: Redis
    publisher: Publisher
    inventory: Inventory
    decisions: DecisionCache
    idempotency: IdempotencyStore
    availability: RecentReads[int, int | None]  # the gate's counter, by event
    seat_maps: RecentReads[int, Snapshot | None]  # the published seat map, by event
    pending: Coalescer[BookingRequested, None]
    # Requests answered 503 that Kafka may still deliver, marked in the ledger in batches.
    abandon: Coalescer[uuid.UUID, None]
    rules: RulesCache
    auth: Authenticator
    limiter: RateLimiter
    limits: Limits
    addresses: ClientAddresses
    hub: Hub  # live updates for the Server-Sent Events streams
    queues: Queues  # the on-sale queues (waiting rooms)

    async def event_rules(self, event_id: int) -> EventRules:
        rules = await self.rules.get(event_id)
        if rules is None:
            raise NotFound(f"event {event_id} does not exist")
        return rules

    def count_against_limits(
        self, request: Request[object, object, State], user_id: str
    ) -> asyncio.Future[Refusal | None] | None:
        """The rate limits' answer to await (then `limiter.judge`) for a booking or a queue
        join: per buyer (in `token` mode only: a buyer the request names itself is no one to
        limit) and per client address; None when no limit is on (RateLimiter.ask)."""
        checks: list[Check] = []
        if self.settings.buyer_auth == "token":
            checks.append((self.limits.buyer, user_id))
        if self.limits.address.on:  # the address is worked out only when it counts
            checks.append((self.limits.address, self.addresses.of(request)))
        return self.limiter.ask(*checks)


# How a route handler asks for the services: `svc: InjectedServices` (provided by
# api.events.services). Marked explicitly; Litestar 3 stops inferring dependencies.
InjectedServices = NamedDependency[Services]
