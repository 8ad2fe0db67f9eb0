"""Every Redis key the service reads or writes, in one place.

All keys start with the deployment's prefix (TICKETS_REDIS_PREFIX), so several deployments or
tests can share one Redis. An event's gate keys share the hash tag `{ev:<id>}`, so a Redis
Cluster keeps them in one slot and the gate's scripts stay atomic there.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from shared.contracts import uuid_texts


class EventKeys(NamedTuple):
    """The gate's keys of one event, in the order the Lua scripts take them as KEYS."""

    avail: str  # stock the gate still admits
    users: str  # hash: user id -> quantity held or confirmed
    holds: str  # hash: booking id -> the hold reserve.lua took for it
    held: str  # total quantity held and not yet settled
    # hash: booking id -> quantity, for bookings whose stock reserve.lua gave back (expired
    # or cancelled) in a transaction not yet committed: a retry never gives it back twice
    released: str
    # bitmap: bit n set while seat n is taken (held, sold, or claimed by a gate hold); bit 0
    # is always set, so a missing bitmap is told apart from an empty one
    seats: str
    # hash: booking id -> the seat numbers its gate hold claimed ("5,6"), for asks that
    # named their seats
    seat_holds: str


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str

    def event(self, event_id: int) -> EventKeys:
        tag = f"{self.prefix}:{{ev:{event_id}}}"
        return EventKeys(
            f"{tag}:avail",
            f"{tag}:users",
            f"{tag}:holds",
            f"{tag}:held",
            f"{tag}:released",
            f"{tag}:seats",
            f"{tag}:seat-holds",
        )

    def seat_map(self, event_id: int) -> str:
        """Hash: the event's seat map as the worker last published it (`version`, `body`)."""
        return f"{self.prefix}:{{ev:{event_id}}}:seat-map"

    def decision(self, booking_id: uuid.UUID | str) -> str:
        """A booking's status record for polling clients."""
        return f"{self.prefix}:decision:{booking_id}"

    def decisions(self, booking_ids: Iterable[uuid.UUID]) -> list[str]:
        """`decision` of many ids at once (their texts formatted in one call)."""
        return [f"{self.prefix}:decision:{text}" for text in uuid_texts(booking_ids)]

    @property
    def booking_changes(self) -> str:
        """Pub/sub channel: each batch of decisions recorded, one `decision` key and its
        record per line, tab between (one message per batch, however many API processes
        listen)."""
        return f"{self.prefix}:booking-changes"

    @property
    def availability_changes(self) -> str:
        """Pub/sub channel: an event's availability (shared.seating.Availability, JSON)
        each time the worker publishes its seat map."""
        return f"{self.prefix}:availability"

    def abandoned(self, booking_id: uuid.UUID | str) -> str:
        """The mark of a booking the API answered 503 for (see shared/deadlines.py)."""
        return f"{self.prefix}:abandoned:{booking_id}"

    def abandoned_many(self, booking_ids: Iterable[uuid.UUID]) -> list[str]:
        return [f"{self.prefix}:abandoned:{text}" for text in uuid_texts(booking_ids)]

    @property
    def abandoned_any(self) -> str:
        """Set while any abandoned mark may exist, so batches skip looking for marks."""
        return f"{self.prefix}:abandoned-any"

    def idempotency(self, user_id: str, key: str) -> str:
        """An Idempotency-Key, per user; hashed so any key fits and none can collide."""
        digest = hashlib.sha256(f"{user_id}\x00{key}".encode()).hexdigest()
        return f"{self.prefix}:idem:{digest}"

    def rate(self, scope: str, subject: str) -> str:
        """A rate limit's state (its theoretical arrival time) for one buyer or address."""
        return f"{self.prefix}:rate:{scope}:{subject}"

    @property
    def revoked(self) -> str:
        """Sorted set of revoked token ids (`jti:<id>`) and deleted buyers (`sub:<id>`),
        scored by when the revocation may be forgotten (epoch ms)."""
        return f"{self.prefix}:revoked"

    @property
    def everything(self) -> str:
        """A SCAN pattern matching every key of this deployment."""
        return f"{self.prefix}:*"

    @staticmethod
    def is_gate_key(key: str) -> bool:
        """True for an event's gate key (rebuilt from PostgreSQL when lost)."""
        return "{ev:" in key
