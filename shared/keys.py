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


class QueueKeys(NamedTuple):
    """An event's waiting room (shared/queue.py), in the order queue_*.lua take them as KEYS.
    Under the event's hash tag, so every script on it stays atomic in a Redis Cluster."""

    meta: str  # hash: opens_at, state, seed, rate, counters (shared/queue.py lists them)
    pre: str  # sorted set: who joined before the opening, by arrival (kept: the draw's record)
    line: str  # sorted set: the waiting entries by place (drawn, then arrival order)
    seen: str  # sorted set: waiting entries by when they were last polled (epoch ms)
    owner: str  # hash: queue id -> buyer
    done: str  # hash: queue id -> how its wait ended (admitted, expired, sold out)


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

    def queue(self, event_id: int) -> QueueKeys:
        tag = f"{self.prefix}:{{ev:{event_id}}}:q"
        return QueueKeys(
            f"{tag}:meta", f"{tag}:pre", f"{tag}:line", f"{tag}:seen", f"{tag}:owner", f"{tag}:done"
        )

    @property
    def queues(self) -> str:
        """Set: the ids of the events whose queue the admission loop moves."""
        return f"{self.prefix}:queues"

    @property
    def queue_admitter(self) -> str:
        """The admission loop's lease: one process moves every queue at a time."""
        return f"{self.prefix}:queue-admitter"

    def queue_challenge(self, event_id: int, signature: str) -> str:
        """A proof-of-work challenge already spent on a join to this event (each solves one
        join), under the event's hash tag."""
        return f"{self.prefix}:{{ev:{event_id}}}:queue-pow:{signature}"

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
        """True for an event's gate key (rebuilt from PostgreSQL when lost); its queue's keys
        are not (a lost queue is not rebuilt: docs/queue.md)."""
        return "{ev:" in key and "}:q:" not in key
