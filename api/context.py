"""Everything a request handler needs, opened and closed by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from litestar.di import NamedDependency
from redis.asyncio import Redis

from api.coalesce import AvailabilityView, WriteCoalescer
from api.idempotency import IdempotencyStore
from api.publisher import Publisher
from shared.config import Settings
from shared.contracts import BookingRequested
from shared.db import Pool, fetch_one, queries
from shared.decisions import DecisionCache
from shared.errors import NotFound
from shared.inventory import Inventory


@dataclass(frozen=True, slots=True)
class EventRules:
    id: int
    name: str
    capacity: int
    per_user_limit: int


@dataclass(slots=True)
class Services:
    settings: Settings
    pool: Pool
    redis: Redis
    publisher: Publisher
    inventory: Inventory
    decisions: DecisionCache
    idempotency: IdempotencyStore
    availability: AvailabilityView
    pending: WriteCoalescer[BookingRequested]
    # Name, capacity and limit never change after creation: bookings never query them twice.
    _rules: dict[int, EventRules] = field(default_factory=dict)

    async def event_rules(self, event_id: int) -> EventRules:
        rules = self._rules.get(event_id)
        if rules is None:
            row = await fetch_one(self.pool, queries.get_event, {"event_id": event_id})
            if row is None:
                raise NotFound(f"event {event_id} does not exist")
            rules = EventRules(row["id"], row["name"], row["capacity"], row["per_user_limit"])
            self._rules[event_id] = rules
        return rules


# How a route handler asks for the services: `svc: InjectedServices` (provided by
# api.events.services). Marked explicitly; Litestar 3 stops inferring dependencies.
InjectedServices = NamedDependency[Services]
