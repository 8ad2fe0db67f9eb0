"""What a scenario declares (Spec), and what its fault injection works with while the sale
runs (Run): the processes, the stack, the API, the traffic, and the ways to wait for a moment
worth breaking things at."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import psycopg
import redis.exceptions
from aiokafka.errors import KafkaError

from scripts.chaos.availability import (
    INSTANT_WINDOW_S,
    FaultWindow,
    during_faults,
    longest_silence,
)
from scripts.chaos.faults import ChaosPipeline, Stack
from scripts.chaos.logs import say
from scripts.chaos.observe import Api, Offsets, decided_ids, query, read_offsets
from scripts.chaos.report import Check, ScenarioResult
from scripts.chaos.sandbox import partition_of
from scripts.chaos.traffic import Traffic
from scripts.waiting import poll_until
from shared.config import Settings
from shared.keys import RedisKeys
from shared.redis_clients import open_redis


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    inject: Callable[[Run], Awaitable[None]]
    events: int = 1
    workers: int = 1
    partitions: int = 3
    duration_s: float = 20.0
    start_workers: bool = True
    flaky_share: float = 0.0
    replay_share: float = 0.0
    capacity: int | None = None  # per event; None: the runner's
    # Above 0: the events hold each booking this long, and `pay_share` of the holders pay
    # (the rest let the hold run out); the checks then follow every hold to its end.
    hold_seconds: int = 0
    pay_share: float = 0.5
    # A notifier (`python -m consumer.notify`) runs with the workers, supervised like them,
    # mailing to an SMTP sink in the runner; every buyer has an account, so every change
    # that mails does, and the checks then count the mails.
    notifier: bool = False
    # How long a group waits for a member killed by kill -9 (None: the settings' default).
    # 6 s, the broker's minimum, lets a scenario kill more often in the same time.
    session_timeout_ms: int | None = None
    # How long the runner waits, once the faults healed, for every accepted booking to be
    # decided and every audit to be CLEAN (plus hold_seconds).
    converge_timeout_s: float = 45.0
    # Demand: 0.9x the capacity arrives over this share of the sale, the rest after it.
    stock_share: float = 0.7
    # Settings of the scenario's processes that differ from the sandbox's.
    settings: Mapping[str, Any] = field(default_factory=dict)
    # Needs the highly available stack (three Kafka nodes, Redis under Sentinel):
    # run_scenario is then given that stack's environment (tests/chaos/conftest.py).
    ha: bool = False


@dataclass
class Outage:
    start: float  # sale clock
    end: str  # what is recorded when it ends
    window: FaultWindow | None = None  # once it has ended


@dataclass
class Run:
    """What a scenario's fault injection works with."""

    spec: Spec
    settings: Settings
    pipeline: ChaosPipeline
    stack: Stack
    api: Api
    events: dict[int, int]  # event id -> capacity
    traffic: Traffic
    rng: random.Random
    result: ScenarioResult
    t0: float = field(default_factory=time.monotonic)  # the sale's clock: set as traffic starts
    t0_wall: float = field(default_factory=time.time)  # the same moment, wall clock
    expected_exits: set[int] = field(default_factory=set)
    seen_exits: set[int] = field(default_factory=set)
    supervise: bool = True
    verbose: bool = True
    collect: list[Check] | None = None  # where expect() puts checks (else the result)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def say(self, text: str) -> None:
        if self.verbose:
            say(self.spec.name, self.elapsed, text)

    def fault(self, text: str) -> None:
        """An instantaneous fault, just done; its window is availability.INSTANT_WINDOW_S."""
        now = self._record(text)
        self.result.fault_windows.append(FaultWindow(now, now + INSTANT_WINDOW_S, text))

    @contextlib.asynccontextmanager
    async def outage(self, text: str, end: str = "") -> AsyncIterator[Outage]:
        """A fault with a duration: `async with run.outage("kill -9 kafka", "kafka started")`
        around breaking and mending it. Both ends are recorded as faults (the end as
        `end`, which the body may still set on the yielded Outage), the window between
        them counts for availability."""
        outage = Outage(self._record(text), end or f"end of: {text}")
        try:
            yield outage
        finally:
            now = self._record(outage.end)
            outage.window = FaultWindow(outage.start, now, text)
            self.result.fault_windows.append(outage.window)

    def _record(self, text: str) -> float:
        now = self.elapsed
        self.result.faults.append(f"{now:5.1f}s {text}")
        self.say(f"FAULT {text}")
        return now

    async def expect_available(self, window: FaultWindow, share: float, silence_s: float) -> None:
        """A scenario's availability checks over one fault window: the share of request
        attempts made in it answered 202 or 409, and the longest stretch in it without a
        decision (scripts/chaos/availability.py)."""
        seen = during_faults(self.traffic.attempts(), [window], self.t0)
        self.expect(
            f"at least {share:.0%} of requests during the fault answered 202 or 409",
            seen.share is not None and seen.share >= share,
            f"{seen.answered} of {seen.attempts} attempts in {window.end - window.start:.1f}s",
        )
        rows = await query(
            self.settings,
            "SELECT extract(epoch FROM decided_at)::float8 AS at FROM bookings"
            " WHERE event_id = ANY(%(ids)s)",
            {"ids": list(self.events)},
        )
        silent = longest_silence(window, (row["at"] - self.t0_wall for row in rows))
        self.expect(
            f"the sale kept deciding (longest stretch without a decision < {silence_s:.0f}s)",
            silent < silence_s,
            f"longest stretch without a decision during the fault {silent:.1f}s",
        )
        self.note(
            f"availability during the fault: {seen.share or 0:.1%} answered 202/409, longest "
            f"silence {silent:.1f}s over {window.end - window.start:.1f}s"
        )

    def note(self, text: str) -> None:
        self.result.notes.append(text)
        self.say(f"note: {text}")

    def expect(self, name: str, ok: bool, detail: str = "") -> bool:
        (self.result.checks if self.collect is None else self.collect).append(
            Check(name, bool(ok), detail)
        )
        if not ok:
            self.say(f"CHECK FAILED {name}: {detail}")
        return bool(ok)

    def start_worker(self, fault_point: str = "") -> subprocess.Popen[bytes]:
        settings = msgspec.structs.replace(self.settings, fault_point=fault_point)
        proc = self.pipeline.start_worker(settings=settings)
        if fault_point:
            self.expected_exits.add(proc.pid)
        self.say(
            f"worker {proc.pid} started{f' (fault point {fault_point})' if fault_point else ''}"
        )
        return proc

    async def stop_worker(
        self, proc: subprocess.Popen[bytes], sig: signal.Signals, timeout_s: float = 25.0
    ) -> int | None:
        """Send `sig` to a worker (or a notifier) and wait for its exit, which is expected."""
        self.expected_exits.add(proc.pid)
        if proc.poll() is None:
            proc.send_signal(sig)
        return await self.pipeline.wait_exit(proc, timeout_s)

    def start_notifier(self) -> subprocess.Popen[bytes]:
        proc = self.pipeline.start_notifier()
        self.say(f"notifier {proc.pid} started")
        return proc

    @property
    def mails(self) -> int:
        """Mails the SMTP sink has accepted so far."""
        return len(self.pipeline.sink.received) if self.pipeline.sink is not None else 0

    async def wait_mails(self, count: int, timeout_s: float) -> bool:
        """Until the sink has accepted `count` mails (bounded): mails are flowing."""

        async def enough() -> bool:
            return self.mails >= count

        return bool(await poll_until(enough, timeout_s, interval_s=0.005))

    async def sold(self) -> int | None:
        """Tickets sold over the scenario's events, per PostgreSQL (None while it is down)."""
        try:
            rows = await query(
                self.settings,
                "SELECT coalesce(sum(sold), 0)::int AS sold FROM events WHERE id = ANY(%(ids)s)",
                {"ids": list(self.events)},
            )
        except psycopg.Error:
            return None
        return int(rows[0]["sold"])

    async def decided(self) -> int | None:
        try:
            rows = await query(self.settings, "SELECT count(*)::int AS n FROM bookings")
        except psycopg.Error:
            return None
        return int(rows[0]["n"])

    def _held_keys(self) -> list[str]:
        keys = RedisKeys(self.settings.redis_prefix)
        return [keys.event(e).held for e in self.events]

    async def held(self) -> dict[int, int]:
        """Tickets each event's worker holds in Redis right now (reserved, not yet settled)."""
        async with open_redis(self.settings) as client:
            values = await client.mget(self._held_keys())
        return {e: int(str(v or 0)) for e, v in zip(self.events, values, strict=True)}

    async def wait_mid_batch(self, timeout_s: float) -> tuple[int, int] | None:
        """Poll Redis every millisecond or so until some event's held stock grows: a worker
        has just reserved for a batch and not settled it yet, i.e. it is mid-batch. (Holds a
        killed worker left behind do not count: they only shrink, when a replay settles.)
        Returns (event, tickets held)."""
        keys = self._held_keys()
        last: list[int] | None = None
        async with open_redis(self.settings) as client:

            async def grew() -> tuple[int, int] | None:
                nonlocal last
                try:
                    now = [int(str(v or 0)) for v in await client.mget(keys)]
                except redis.exceptions.RedisError:
                    return None  # Redis restarting or failing over: look again
                if last is not None:
                    for event_id, before, held in zip(self.events, last, now, strict=True):
                        if held > before:
                            return event_id, held
                last = now
                return None

            return await poll_until(grew, timeout_s, interval_s=0.001)

    def owner_of(self, event_id: int) -> subprocess.Popen[bytes] | None:
        """The live worker whose log says it consumes the event's partition."""
        part = partition_of(event_id, self.spec.partitions)
        for worker in self.pipeline.live_workers():
            if part in (self.pipeline.assignment(worker) or ()):
                return worker
        return None

    async def wait_sold(self, share: float, timeout_s: float) -> bool:
        """Until `share` of the capacity is sold (bounded): a fault then lands mid-sale."""
        wanted = share * sum(self.events.values())

        async def sold_enough() -> bool:
            sold = await self.sold()
            return sold is not None and sold >= wanted

        if await poll_until(sold_enough, timeout_s):
            return True
        self.note(f"{share:.0%} of the capacity was not sold within {timeout_s}s")
        return False

    async def wait_accepted(self, count: int, timeout_s: float) -> bool:
        """Until `count` bookings were accepted, or the traffic is over (bounded)."""

        async def enough_or_over() -> bool:
            return len(self.traffic.accepted) >= count or self.traffic.done.is_set()

        await poll_until(enough_or_over, timeout_s, interval_s=0.05)
        return len(self.traffic.accepted) >= count

    async def at(self, share: float) -> None:
        """Sleep until `share` of the traffic's planned duration has passed."""
        target = self.traffic.started + share * self.spec.duration_s
        await asyncio.sleep(max(0.0, target - time.monotonic()))

    async def check_offsets(self, label: str) -> Offsets | None:
        """Every message below the committed offset has its booking in PostgreSQL."""
        try:
            offsets = await read_offsets(self.settings)
            below = {b for b in offsets.below_committed() if b is not None}
            decided = await decided_ids(self.settings, below)
        except (KafkaError, OSError, TimeoutError, psycopg.Error) as exc:
            self.note(f"offset check {label} skipped: {exc!r}")
            return None
        missing = below - decided
        missing -= await self.abandoned(missing)
        self.expect(
            f"offsets committed only for decided bookings ({label})",
            not missing,
            f"{len(below)} bookings below committed offsets {offsets.committed}, "
            f"{len(missing)} not in PostgreSQL {sorted(missing)[:3]}",
        )
        return offsets

    async def abandoned(self, booking_ids: set[str]) -> set[str]:
        """Of these, the ones the API answered 503 for and marked (the worker drops them)."""
        rows = await query(
            self.settings,
            "SELECT booking_id::text AS id FROM abandoned_requests WHERE booking_id = ANY(%(ids)s)",
            {"ids": [uuid.UUID(b) for b in booking_ids]},
        )
        return {r["id"] for r in rows}

    async def supervisor(self) -> None:
        """A worker or notifier (or the API) that dies without being told to is noted and
        restarted, as a process supervisor would."""
        while True:
            await asyncio.sleep(0.2)
            self._supervise("worker", self.pipeline.workers, self.start_worker)
            self._supervise("notifier", self.pipeline.notifiers, self.start_notifier)
            api = self.pipeline.api
            if api is not None and api.poll() is not None and api.pid not in self.seen_exits:
                self.seen_exits.add(api.pid)
                self.result.checks.append(
                    Check("API did not crash", False, f"exit {api.returncode}")
                )
                self.note(f"API exited by itself with {api.returncode}; restarting it")
                if self.supervise:
                    self.pipeline.start_api()

    def _supervise(
        self,
        kind: str,
        procs: list[subprocess.Popen[bytes]],
        restart: Callable[[], subprocess.Popen[bytes]],
    ) -> None:
        for proc in list(procs):
            if proc.poll() is None or proc.pid in self.seen_exits:
                continue
            self.seen_exits.add(proc.pid)
            if proc.pid in self.expected_exits:
                continue
            log = self.pipeline.log_of(proc)
            tail = " | ".join(log.strip().splitlines()[-3:])
            if proc.returncode == 0 and re.search(r"(SIGTERM|SIGINT): finishing", log):
                # Stopped cleanly by a signal the runner did not send (on a shared machine,
                # someone's `pkill -f`): not its fault; restart it.
                self.note(f"{kind} {proc.pid} stopped by an external signal: {tail}")
            else:
                self.note(f"{kind} {proc.pid} exited by itself with {proc.returncode}: {tail}")
                self.result.checks.append(
                    Check(
                        f"{kind} {proc.pid} did not crash",
                        False,
                        f"exit {proc.returncode}; log {self.pipeline.logs[proc.pid]}",
                    )
                )
            if self.supervise:
                restart()
