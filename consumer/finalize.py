"""One batch of commands (booking requests, payments, cancellations) -> decisions: one Redis
round trip and one PostgreSQL transaction per event in the batch.

Order of effects for one event, and why it is safe to crash between any two of them:
1. One PostgreSQL transaction locks the event row FOR UPDATE and skips bookings it already
   decided (every decider of the event holds that lock, so the answer cannot go stale). It
   plans the lifecycle changes too: holds past their deadline expire, payments and
   cancellations apply in offset order (consumer/lifecycle.py has their own argument).
2. Still under the lock, reserve.lua gives back the stock of expired and cancelled bookings
   (marked per booking id), then takes stock for the bookings it admits and records a gate
   hold per booking id. A replay finds the marks and the holds and changes nothing more.
3. PostgreSQL re-checks capacity and per-user limits itself (the final word), frees the
   seats of released bookings, gives each admitted booking the seats the event's seat map
   chose (named seats first, in offset order; then groups together and the lowest free
   seats; consumer/seat_map.py), each UPDATE guarded by `booking_id IS NULL`, writes every
   booking with its seats and status (HELD with a deadline when the event has holds, else
   CONFIRMED), appends every state change to the booking-events outbox (consumer/outbox.py)
   and commits. A crash before COMMIT leaves only gate holds and release marks,
   which the replay reuses.
4. settle.lua drops the gate holds and the release marks and marks the seats given as taken
   in the gate's seat bitmap; a gate hold whose booking PostgreSQL refused gives its stock
   (and the seats it named) back, exactly once. A replay after a crash here finds
   the bookings decided and settles again, which is a no-op for holds already gone. The
   worker lets this run while it fetches and decodes the next batch (`Settling`), and waits
   for it before that batch's gate.
5. The decisions are recorded in Redis for polling clients. The worker commits the Kafka
   offsets only after all of this (consumer/tail.py).

Words: a batch is *decided* when PostgreSQL committed its decisions (1-3), *settled* when
its gate holds are gone (4), *recorded* when polling clients can see it (5), and
*committed* only ever means its Kafka offsets. A *gate hold* is reserve.lua's in-flight
claim on stock; a *hold* is a HELD booking waiting for its payment.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncCursor

from consumer import faults, lifecycle, outbox
from consumer.seat_map import (
    INVALID,
    Rendered,
    SeatChoice,
    SeatMap,
    SeatMaps,
    place,
    seat_choice,
)
from consumer.settling import Settle, Settling
from shared import abandoned, admission
from shared.config import Settings
from shared.contracts import (
    LIVE,
    BookingRequested,
    Command,
    Decision,
    PaymentReceived,
    Reason,
    Status,
)
from shared.db import Pool, TextArrayBinaryDumper, queries, text_array, uuid_array
from shared.decisions import DecisionCache
from shared.errors import CounterMissing, GateStale
from shared.inventory import HELD, Ask, Gate, Inventory, Release, SeatAsk
from shared.rules import RulesCache
from shared.seating import FREE, SOLD, Layout, runs
from shared.seating import HELD as HELD_SEAT

log = logging.getLogger(__name__)

SLOW_BATCH_S = 2.0  # a batch slower than this is logged with where its time went
# A gate rebuilt after a failover can find the primary changed again before its reserve.
REBUILD_TRIES = 3

# Binary COPY: psycopg formats datetimes and UUIDs several times faster than as text, and
# this runs under the event's row lock.
COPY_BOOKINGS = (
    "COPY bookings (booking_id, event_id, user_id, quantity, status, reason,"
    " requested_at, decided_at, seats, hold_expires_at, price_cents) FROM STDIN (FORMAT BINARY)"
)
COPY_BOOKING_TYPES = [
    "uuid", "int8", "text", "int4", "text", "text", "timestamptz", "timestamptz", "text[]",
    "timestamptz", "int4",
]  # fmt: skip

Decided = list[tuple[BookingRequested, Decision]]


def _nothing() -> None:
    pass


@dataclass(slots=True)
class _Plan:
    """What the PostgreSQL transaction decided for one event's slice of a batch."""

    decisions: dict[uuid.UUID, Decision] = field(default_factory=dict)
    settle: list[tuple[uuid.UUID, bool]] = field(default_factory=list)
    released: list[uuid.UUID] = field(default_factory=list)  # release marks to drop
    taken: list[tuple[int, int]] = field(default_factory=list)  # seats given, as runs
    changed: Decided = field(default_factory=list)  # bookings paid, expired or cancelled
    restated: Decided = field(default_factory=list)  # bookings commands named, unchanged
    rendered: list[Rendered] = field(default_factory=list)  # seat maps to publish


@dataclass(slots=True)
class Outcome:
    """A decided batch: its requests' decisions, the bookings its lifecycle changes touched,
    and its gate being settled."""

    decided: Decided
    changed: Decided
    settling: Settling
    rendered: list[Rendered] = field(default_factory=list)  # seat maps to publish
    restated: Decided = field(default_factory=list)  # bookings commands named, unchanged

    @property
    def recorded(self) -> Decided:
        """Everything polling clients must see, in one list."""
        return self.decided + self.changed + self.restated


class Finalizer:
    """Turns booking requests into decisions. Safe to call again with the same requests."""

    def __init__(
        self,
        settings: Settings,
        pool: Pool,
        inventory: Inventory,
        cache: DecisionCache,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self.inventory = inventory
        self._cache = cache
        self._rules = RulesCache(pool)
        self.seat_maps = SeatMaps(inventory.redis, settings.redis_prefix)

    async def finalize(self, requests: Sequence[Command]) -> list[Decision]:
        """Every step at once (`apply`); the requests' decisions."""
        return [decision for _, decision in (await self.apply(requests)).decided]

    async def apply(self, commands: Sequence[Command], expire: Sequence[int] = ()) -> Outcome:
        """Every step at once: decide every command (duplicate requests by booking id
        collapse to one decision), settle the gate and record the decisions for polling
        clients."""
        outcome = await self.decide(commands, expire=expire)
        await outcome.settling.wait()
        await self._cache.remember_decisions(outcome.recorded)
        await self.seat_maps.publish(outcome.rendered)
        return outcome

    async def decide(
        self,
        commands: Sequence[Command],
        after_gate: Callable[[], None] = _nothing,
        expire: Sequence[int] = (),
    ) -> Outcome:
        """Steps 1-3, and step 4 started: decisions committed in PostgreSQL, and the gate's
        holds being settled (wait for `Settling` before this event's next gate). The caller
        records the decisions (the worker does it while the next batch is decided).
        `after_gate` is called once the gate has answered, when the rest of the transaction
        needs only PostgreSQL: a good moment for other Redis work. The events in `expire`
        get a transaction even without commands, to expire their due holds."""
        unique: dict[uuid.UUID, BookingRequested] = {}
        by_event: dict[int, list[Command]] = {event_id: [] for event_id in expire}
        for command in commands:
            if isinstance(command, BookingRequested):
                if command.booking_id in unique:
                    continue
                unique[command.booking_id] = command
            by_event.setdefault(command.event_id, []).append(command)

        decided: Decided = []
        changed: Decided = []
        restated: Decided = []
        settles: list[Settle] = []
        rendered: list[Rendered] = []
        try:
            for event_id, group in by_event.items():
                plan = await self._decide_event(event_id, group, after_gate)
                decided += [
                    (r, plan.decisions[r.booking_id])
                    for r in group
                    if isinstance(r, BookingRequested)
                ]
                changed += plan.changed
                restated += plan.restated
                rendered += plan.rendered
                settles.append((event_id, plan.settle, plan.released, plan.taken))
        except BaseException:
            # A later event failed: the events committed so far are settled anyway (the
            # retry settles them again), so their refused stock does not wait for it.
            Settling(self.inventory, settles)
            raise
        return Outcome(decided, changed, Settling(self.inventory, settles), rendered, restated)

    async def _decide_event(
        self, event_id: int, commands: list[Command], after_gate: Callable[[], None]
    ) -> _Plan:
        started = time.monotonic()
        plan = await self._decide_locked(event_id, commands, after_gate)
        faults.point(self._settings, "after_db_commit")
        faults.point(
            self._settings,
            "after_payment_commit",
            lambda: any(isinstance(c, PaymentReceived) for c in commands),
        )
        took = time.monotonic() - started
        if took > SLOW_BATCH_S:
            log.warning(
                "slow batch for event %s: %d commands, gate and ledger %.2fs",
                event_id,
                len(commands),
                took,
                extra={"event_id": event_id},
            )
        return plan

    async def decided_ids(self, booking_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        async with self._pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(queries.decided_among, {"booking_ids": uuid_array(booking_ids)})
            return {row["booking_id"] for row in await cur.fetchall()}

    async def abandoned_among(self, booking_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """The requests among these that the API answered 503 for (shared/abandoned.py)."""
        return await abandoned.abandoned_among(self._pool, booking_ids)

    async def knows_event(self, event_id: int) -> bool:
        return await self._rules.get(event_id) is not None

    def _not_admitted(self, requests: list[BookingRequested]) -> dict[uuid.UUID, Reason]:
        """The requests of a queued event without a valid admission token, each with a
        NOT_ADMITTED verdict; the batch logs how many, and why the first was refused."""
        key = self._settings.admission_key
        refused: dict[uuid.UUID, Reason] = {}
        first = ""
        for r in requests:
            why = admission.refusal(key, r.admission, r.user_id, r.event_id, r.requested_at_ms)
            if why is not None:
                refused[r.booking_id] = Reason.NOT_ADMITTED
                first = first or f"booking {r.booking_id}: {why}"
        if refused:
            log.warning(
                "%d bookings rejected NOT_ADMITTED (the first, %s)",
                len(refused),
                first,
                extra={"event_id": requests[0].event_id},
            )
        return refused

    async def _reserve(
        self,
        cur: AsyncCursor[Any],
        event_id: int,
        limit: int,
        asks: list[Ask | SeatAsk],
        releases: list[Release],
    ) -> list[Gate]:
        """The Redis gate, called under the event's row lock (held by `cur`): the releases'
        stock back, then one answer per ask, in order. A gate that is missing, or stale after
        a Redis failover, is rebuilt from PostgreSQL first (PostgreSQL has not seen this
        transaction's writes yet, so its numbers are the gate's before these asks)."""
        for _ in range(REBUILD_TRIES):
            try:
                return await self.inventory.reserve(event_id, limit, asks, releases)
            except CounterMissing:
                await self._rebuild_locked(cur, event_id)
            except GateStale:
                await self._rebuild_locked(cur, event_id, force=True)
        raise GateStale(f"event {event_id}'s gate changed server while it was rebuilt")

    async def rebuild_counter(self, event_id: int, force: bool = False) -> bool:
        """Recreate the event's Redis counter from PostgreSQL (with `force`, even one that
        exists), under the event's row lock so no finalisation of this event commits in
        between."""
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.execute(queries.lock_event, {"event_id": event_id})
            if await cur.fetchone() is None:
                return False
            return await self._rebuild_locked(cur, event_id, force)

    async def rebuild_stale_gates(self) -> int:
        """Rebuild every gate this process wrote on a Redis primary that is not today's (a
        failover): idle events too, whose stale counter nothing else would correct."""
        stale = await self.inventory.stale_events()
        for event_id in stale:
            await self.rebuild_counter(event_id, force=True)
        return len(stale)

    async def _rebuild_locked(
        self, cur: AsyncCursor[Any], event_id: int, force: bool = False
    ) -> bool:
        """rebuild_counter's work, for a caller that already holds the event's row lock."""
        await cur.execute(queries.get_event, {"event_id": event_id})
        event = await cur.fetchone()
        assert event is not None, "the caller holds this event's row lock"
        await cur.execute(queries.live_by_all_users, {"event_id": event_id})
        users = {row["user_id"]: row["quantity"] for row in await cur.fetchall()}
        await cur.execute(queries.taken_seats, {"event_id": event_id})
        taken = [row["seat_no"] for row in await cur.fetchall()]
        available = event["capacity"] - event["sold"] - event["held"]
        rebuilt = await self.inventory.rebuild(event_id, available, users, taken, force)
        if rebuilt:
            log.warning(
                "rebuilt inventory counter of event %s: available=%s%s",
                event_id,
                available,
                " (the Redis primary changed)" if force else "",
                extra={"event_id": event_id},
            )
        return rebuilt

    async def _decide_locked(
        self, event_id: int, commands: list[Command], after_gate: Callable[[], None]
    ) -> _Plan:
        """Under the event's row lock: skip what an earlier delivery decided, plan the
        lifecycle changes, give back and take stock at the gate, arbitrate against the locked
        row, choose seats, write. Whoever decides this event holds that lock, so "already
        decided" cannot change between the check and the COMMIT."""
        rules = await self._rules.get(event_id)
        assert rules is not None, "the worker dead-letters requests for unknown events"
        try:
            plan, seat_map, version = await self._decide_in_txn(
                event_id, rules.layout, commands, after_gate
            )
        except BaseException:
            self.seat_maps.forget(event_id)  # it may hold choices that were not committed
            raise
        seat_map.version = version
        plan.rendered = self.seat_maps.render([event_id])
        return plan

    async def _decide_in_txn(
        self,
        event_id: int,
        layout: Layout,
        commands: list[Command],
        after_gate: Callable[[], None],
    ) -> tuple[_Plan, SeatMap, int]:
        """_decide_locked's transaction; returns the plan, the event's seat map as committed
        and the seat version the commit left."""
        plan = _Plan()
        requests = [c for c in commands if isinstance(c, BookingRequested)]
        changes = [c for c in commands if not isinstance(c, BookingRequested)]
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.execute(queries.lock_event, {"event_id": event_id})
            event = await cur.fetchone()
            assert event is not None, "the worker dead-letters requests for unknown events"
            version = event["seat_version"]
            limit, capacity = event["per_user_limit"], event["capacity"]
            decided_at = dt.datetime.now(dt.UTC)
            decided_ms = int(decided_at.timestamp() * 1000)
            await cur.execute(queries.probes_only)
            earlier = await self._already_decided(cur, [r.booking_id for r in requests])
            todo = [r for r in requests if r.booking_id not in earlier]
            seat_map = await self.seat_maps.get(cur, event_id, layout, version)
            life = await lifecycle.plan(cur, event_id, event, changes, decided_at, layout)
            seat_map.mark(life.paid_seats, SOLD)
            seat_map.mark(life.freed_seats, FREE)  # after: a hold paid then cancelled is free
            # A queued event sells only to admitted buyers: the rest are refused before the
            # gate, as invalid requests are (an event without a queue pays one lookup).
            refused = self._not_admitted(todo) if event["queue"] else {}
            choices = [INVALID if r.booking_id in refused else seat_choice(r, layout) for r in todo]
            asks = [
                Ask(r.booking_id, r.user_id, r.quantity)
                if c.seats is None
                else SeatAsk(r.booking_id, r.user_id, r.quantity, list(c.seats))
                for r, c in zip(todo, choices, strict=True)
                if c is not INVALID
            ]
            # Redis and PostgreSQL at once: the gate, and what these users already hold.
            async with conn.cursor() as users_cur:
                lookup = asyncio.create_task(
                    self._live_by_users(users_cur, event_id, {r.user_id for r in todo})
                )
                try:
                    answers = await self._reserve(cur, event_id, limit, asks, life.releases)
                except BaseException:
                    # The gate failed: end the lookup before the transaction is rolled back.
                    lookup.cancel()
                    with contextlib.suppress(Exception, asyncio.CancelledError):
                        await lookup
                    raise
                users = await lookup
            for release in life.releases:
                if release.user_id in users:
                    users[release.user_id] -= release.quantity
            faults.point(self._settings, "after_reserve")
            faults.point(self._settings, "after_expiry_reserve", lambda: bool(life.expired))
            after_gate()
            admitted_as, hold_until = Status.CONFIRMED, None
            if event["hold_seconds"]:
                admitted_as = Status.HELD
                hold_until = decided_at + dt.timedelta(seconds=event["hold_seconds"])
            state = HELD_SEAT if admitted_as is Status.HELD else SOLD
            taken = event["sold"] + event["held"] + life.sold + life.held
            verdicts: dict[uuid.UUID, tuple[Status, Reason | None]] = {}
            seats: dict[uuid.UUID, list[int]] = {}
            gated: list[uuid.UUID] = []  # holding stock at the gate: settled as decided
            placed_later: list[tuple[BookingRequested, SeatChoice]] = []
            gates = iter(answers)
            # In offset order: the gate's answer, PostgreSQL's own count, named seats.
            for request, choice in zip(todo, choices, strict=True):
                if choice is INVALID:
                    refusal = refused.get(request.booking_id, Reason.INVALID)
                    verdicts[request.booking_id] = (Status.REJECTED, refusal)
                    continue
                gate = next(gates)
                status, reason = _arbitrate(request, gate, limit, capacity, taken, users)
                if status is Status.CONFIRMED and choice.seats is not None:
                    if seat_map.take(choice.seats, state):
                        # In seat order, as the seat map lists them (and the audit compares).
                        seats[request.booking_id] = sorted(choice.seats)
                    else:
                        status, reason = Status.REJECTED, Reason.SEAT_TAKEN
                if status is Status.CONFIRMED:
                    status = admitted_as
                    taken += request.quantity
                    users[request.user_id] = users.get(request.user_id, 0) + request.quantity
                    if choice.seats is None:
                        placed_later.append((request, choice))
                if gate in HELD:
                    gated.append(request.booking_id)
                verdicts[request.booking_id] = (status, reason)
            # Then the rest, in offset order, around the seats named in this batch.
            for request, choice in placed_later:
                found = place(seat_map, choice, request.quantity)
                if found is None:
                    reason = Reason.NO_ADJACENT_SEATS if choice.together else Reason.SOLD_OUT
                    verdicts[request.booking_id] = (Status.REJECTED, reason)
                    taken -= request.quantity
                    users[request.user_id] -= request.quantity
                else:
                    seat_map.mark(found, state)
                    seats[request.booking_id] = found
            # Seats given back before new ones are taken, so this batch can have them.
            await lifecycle.write(cur, event_id, life, decided_at)
            faults.point(self._settings, "after_payment_write", lambda: bool(life.payments))
            # Seats first, so each booking row is written once, with its seats.
            admitted = [r for r in todo if r.booking_id in seats]
            next_seat = event["next_seat"]
            if admitted:
                next_seat = max(next_seat, await self._write_seats(cur, event_id, admitted, seats))
            hold_until_ms = int(hold_until.timestamp() * 1000) if hold_until else None
            rows: list[tuple[Any, ...]] = []
            for request in todo:
                status, reason = verdicts[request.booking_id]
                nos = seats.get(request.booking_id, ())
                labels = layout.labels(nos)
                price = layout.price_of(nos) if nos else None
                live = status in LIVE
                plan.decisions[request.booking_id] = Decision(
                    request.booking_id,
                    status,
                    reason,
                    tuple(labels),
                    decided_ms,
                    hold_expires_at_ms=hold_until_ms if live else None,
                    price_cents=price,
                )
                rows.append(
                    (
                        request.booking_id,
                        event_id,
                        request.user_id,
                        request.quantity,
                        status.value,
                        reason.value if reason else None,
                        _from_ms(request.requested_at_ms),
                        decided_at,
                        labels,
                        hold_until if live else None,
                        price,
                    )
                )
            if rows:
                cur.adapters.register_dumper(None, TextArrayBinaryDumper)  # the seats column
                async with cur.copy(COPY_BOOKINGS) as copy:
                    copy.set_types(COPY_BOOKING_TYPES)
                    for row in rows:
                        await copy.write_row(row)
            new_quantity = sum(r.quantity for r in admitted)
            sold = life.sold + (new_quantity if admitted_as is Status.CONFIRMED else 0)
            held = life.held + (new_quantity if admitted_as is Status.HELD else 0)
            if admitted or not life.empty:
                await cur.execute(
                    queries.change_stock,
                    {"event_id": event_id, "sold": sold, "held": held, "next_seat": next_seat},
                )
                version += 1
            if self._settings.outbox:
                states = life.transitions() + [(r, plan.decisions[r.booking_id]) for r in todo]
                await outbox.write(cur, event_id, event["event_seq"], states, decided_at)
        # Bookings decided by an earlier delivery: report that decision; a gate hold that
        # delivery left behind (it crashed before settling) settles as it decided. Stock a
        # booking took and later gave back (expired, cancelled) came back by its release.
        taken_seats = [n for nos in seats.values() for n in nos]
        for booking_id in gated:
            plan.settle.append((booking_id, booking_id in seats))
        for booking_id, decision in earlier.items():
            plan.decisions[booking_id] = decision
            kept = decision.status is not Status.REJECTED
            plan.settle.append((booking_id, kept))
            if decision.status in LIVE:
                taken_seats += layout.seat_nos(decision.seats)
        plan.taken = runs(taken_seats)
        plan.released = [release.booking_id for release in life.releases]
        plan.changed = life.views()
        plan.restated = life.restated_views()
        return plan, seat_map, version

    async def _already_decided(
        self, cur: AsyncCursor[Any], booking_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, Decision]:
        await cur.execute(queries.decided_among, {"booking_ids": uuid_array(booking_ids)})
        earlier: dict[uuid.UUID, Decision] = {}
        for row in await cur.fetchall():
            earlier[row["booking_id"]] = Decision(
                row["booking_id"],
                Status(row["status"]),
                Reason(row["reason"]) if row["reason"] else None,
                tuple(row["seats"]),
                _now_ms(),
                hold_expires_at_ms=_ms_or_none(row["hold_expires_at"]),
                paid_at_ms=_ms_or_none(row["paid_at"]),
                cancelled_at_ms=_ms_or_none(row["cancelled_at"]),
            )
        if earlier:
            log.info(
                "skipping %d bookings decided by an earlier delivery",
                len(earlier),
                extra={"booking_id": ",".join(str(b) for b in earlier)},
            )
        return earlier

    async def _live_by_users(
        self, cur: AsyncCursor[Any], event_id: int, user_ids: set[str]
    ) -> dict[str, int]:
        if not user_ids:
            return {}
        await cur.execute(
            queries.live_by_users, {"event_id": event_id, "user_ids": text_array(user_ids)}
        )
        return {row["user_id"]: row["quantity"] for row in await cur.fetchall()}

    async def _write_seats(
        self,
        cur: AsyncCursor[Any],
        event_id: int,
        admitted: list[BookingRequested],
        seats: dict[uuid.UUID, list[int]],
    ) -> int:
        """Give the admitted bookings the seats chosen for them, each only if still free
        (PostgreSQL's guard: a seat row holds one booking). Returns one past the highest
        seat number given."""
        owners = [r.booking_id for r in admitted for _ in seats[r.booking_id]]
        nos = [n for r in admitted for n in seats[r.booking_id]]
        params: dict[str, Any] = {"event_id": event_id, "booking_ids": uuid_array(owners)}
        first, last = nos[0], nos[-1]
        if last - first + 1 == len(nos) and nos == list(range(first, last + 1)):
            await cur.execute(queries.assign_seat_range, {**params, "first": first, "last": last})
        else:
            await cur.execute(queries.assign_seats, {**params, "seat_nos": nos})
        if cur.rowcount != len(nos):
            # The map said free and the ledger disagrees: abort, reload the map, retry.
            raise RuntimeError(f"event {event_id}: assigned {cur.rowcount} of {len(nos)} seats")
        return max(nos) + 1


def _arbitrate(
    request: BookingRequested,
    gate: Gate,
    limit: int,
    capacity: int,
    taken: int,
    users: dict[str, int],
) -> tuple[Status, Reason | None]:
    """PostgreSQL's own check of what the gate admitted, against the locked event row
    (`taken`: the quantity sold and held). CONFIRMED here means admitted."""
    if gate is Gate.SOLD_OUT:
        return Status.REJECTED, Reason.SOLD_OUT
    if gate is Gate.LIMIT:
        return Status.REJECTED, Reason.LIMIT_EXCEEDED
    if gate is Gate.SEAT_TAKEN:
        return Status.REJECTED, Reason.SEAT_TAKEN
    if users.get(request.user_id, 0) + request.quantity > limit:
        return Status.REJECTED, Reason.LIMIT_EXCEEDED
    if taken + request.quantity > capacity:
        return Status.REJECTED, Reason.SOLD_OUT
    return Status.CONFIRMED, None


def _ms_or_none(stamp: dt.datetime | None) -> int | None:
    return None if stamp is None else int(stamp.timestamp() * 1000)


def _now_ms() -> int:
    return int(time.time() * 1000)


@functools.lru_cache(maxsize=4096)
def _from_ms(ms: int) -> dt.datetime:
    """Cached: a burst puts many requests in each millisecond, and building a datetime for
    each of a batch's thousands of requests shows under the event's row lock."""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
