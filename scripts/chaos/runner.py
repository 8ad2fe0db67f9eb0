"""One scenario end to end (`run_scenario`): its own sandbox and processes, a sale with the
scenario's faults injected, the heal, the wait until everything is decided, the invariant
checks, and the reconciler once if they failed. Never leaves a stack service down."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psycopg

from scripts.chaos.availability import during_faults, longest_gap
from scripts.chaos.checks import invariants
from scripts.chaos.faults import ChaosPipeline, Stack, StackError
from scripts.chaos.history import write_history
from scripts.chaos.logs import append_log, say
from scripts.chaos.observe import Api, query
from scripts.chaos.report import RECONCILER_SCENARIO, Check, ScenarioResult
from scripts.chaos.sandbox import Sandbox, partition_of
from scripts.chaos.scenario import Run, Spec
from scripts.chaos.scenarios import SCENARIOS
from scripts.chaos.traffic import (
    PER_USER_LIMIT,
    Traffic,
    buyer_tokens,
    open_accounts,
    plan_demand,
)
from scripts.loadgen.tokens import BuyerAuth
from scripts.mail_sink import MailSink
from scripts.pipeline import ROOT, settings_env
from scripts.waiting import poll_until
from shared.config import Settings

RECONCILER = ROOT / "consumer" / "reconcile.py"
# The kinds of fix `python -m consumer.reconcile` prints a count of.
FIXES = (
    "counters_rebuilt", "holds_settled", "holds_released", "marks_dropped", "counters_corrected"
)  # fmt: skip

DEFAULT_CAPACITY = 150
DEFAULT_DEMAND_FACTOR = 3.0
TERMINAL = ("CONFIRMED", "REJECTED", "EXPIRED")  # a hold is followed until paid or expired


async def run_scenario(
    name: str | Spec,
    base: Settings | None = None,
    *,
    capacity: int = DEFAULT_CAPACITY,
    demand_factor: float = DEFAULT_DEMAND_FACTOR,
    log_dir: Path | None = None,
    seed: int | None = None,
    verbose: bool = True,
    keep: bool = False,
    buyer_auth: BuyerAuth = "open",
    stack_env: Mapping[str, str] | None = None,
) -> ScenarioResult:
    """Run one scenario end to end and return its checks. Never leaves a service down.
    `buyer_auth` is the API's mode; in token mode every buyer sends a token of their own.
    `stack_env`: the state dir and ports of the stack to break (an HA scenario's)."""
    spec = name if isinstance(name, Spec) else SCENARIOS[name]
    name = spec.name
    base = base or Settings.from_env()
    seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix=f"chaos-{name}-"))
    result = ScenarioResult(name, spec.title, buyer_auth=buyer_auth, log_dir=str(log_dir))
    result.seed = seed
    result.notes.append(f"seed {seed}")
    if spec.ha and stack_env is None:
        raise ValueError(f"{name} needs the HA stack: pass its environment as stack_env")
    stack = Stack(log_dir / "stack.log", stack_env)
    started = time.monotonic()
    sandbox: Sandbox | None = None
    pipeline: ChaosPipeline | None = None
    try:
        await stack.heal()
        sandbox = await Sandbox.create(base, spec.partitions, buyer_auth)
        settings = sandbox.settings
        if spec.session_timeout_ms is not None:
            settings = msgspec.structs.replace(
                settings, consumer_session_timeout_ms=spec.session_timeout_ms
            )
        settings = msgspec.structs.replace(settings, **spec.settings)
        pipeline = ChaosPipeline(
            settings, log_dir=log_dir, sink=MailSink() if spec.notifier else None
        )
        if pipeline.sink is not None:
            pipeline.sink.start()
        pipeline.start_api()
        await pipeline.wait_ready(timeout_s=60, path="/ready")
        await _run(spec, settings, pipeline, stack, rng, result, capacity, demand_factor, verbose)
    except Exception as exc:  # noqa: BLE001 - reported as the scenario's failure
        result.error = f"{type(exc).__name__}: {exc}"
        append_log(log_dir / "error.log", traceback.format_exc())
        if verbose:
            say(name, time.monotonic() - started, f"ERROR {result.error}")
    finally:
        if pipeline is not None:
            await pipeline.stop_all()
        try:
            await stack.heal()
        except StackError as exc:
            result.error = result.error or f"could not bring the stack back up: {exc}"
            raise
        finally:
            if sandbox is not None and (result.ok or not keep):
                await sandbox.destroy()
            elif sandbox is not None:
                result.notes.append(
                    f"kept database, Redis prefix and topics {sandbox.db_name}[.*] for inspection"
                )
            result.duration_s = time.monotonic() - started
    return result


async def _run(
    spec: Spec,
    settings: Settings,
    pipeline: ChaosPipeline,
    stack: Stack,
    rng: random.Random,
    result: ScenarioResult,
    capacity: int,
    demand_factor: float,
    verbose: bool,
) -> None:
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=pipeline.url, timeout=10, limits=limits) as client:
        api = Api(client, settings.admin_token)
        capacity = spec.capacity or capacity
        events = await _create_events(api, spec, capacity)
        asks = plan_demand(
            events, demand_factor, spec.duration_s, rng, stock_share=spec.stock_share
        )
        traffic = Traffic(
            pipeline.url,
            asks,
            rng,
            flaky_share=spec.flaky_share,
            replay_share=spec.replay_share,
            replay_window_s=spec.duration_s,
            tokens=buyer_tokens(settings, asks),
            pay_share=spec.pay_share if spec.hold_seconds else None,
        )
        run = Run(
            spec, settings, pipeline, stack, api, events, traffic, rng, result, verbose=verbose
        )
        run.say(
            f"sale: {len(asks)} requests for {sum(a.quantity for a in asks)} tickets, events "
            f"{events} (capacity each {capacity}), over {spec.duration_s:.0f}s, buyers in "
            f"{settings.buyer_auth} mode; logs {pipeline.log_dir}"
        )
        if pipeline.sink is not None:
            opened = await open_accounts(settings, asks)
            run.say(f"{opened} buyers have an account; their mails go to {pipeline.sink.url}")
        if spec.start_workers:
            for _ in range(spec.workers):
                run.start_worker()
        if spec.notifier:
            run.start_notifier()
        supervisor = asyncio.create_task(run.supervisor())
        # The sale's clock, for Run.at(), the faults' times and the availability figures.
        traffic.started = run.t0 = time.monotonic()
        run.t0_wall = time.time()
        sale = asyncio.create_task(traffic.run())
        try:
            await spec.inject(run)
            await asyncio.wait_for(asyncio.shield(sale), spec.duration_s + 90)
            run.say(f"traffic done: {traffic.codes()}")
            await stack.heal()
            if not pipeline.live_workers():
                run.note("no worker alive after the faults: starting one")
                run.start_worker()
            if spec.notifier and not pipeline.live_notifiers():
                run.note("no notifier alive after the faults: starting one")
                run.start_notifier()
            healed = time.monotonic()
            run.say("faults healed; waiting for every accepted booking to be decided")
            views = await _converge(run, spec.converge_timeout_s + spec.hold_seconds)
            if views is not None:
                result.converge_s = time.monotonic() - healed
            checks = await invariants(run, views)
            repairing = spec.name == RECONCILER_SCENARIO
            if (repairing or not all(c.ok for c in checks)) and RECONCILER.exists():
                result.reconciled_checks, reconciled = await _reconcile(run, checks)
                if repairing:
                    result.converge_s = reconciled - healed if reconciled else None
                    checks = _repaired(result, checks)
            result.checks += checks
            await _longest_gap(run)
        finally:
            run.supervise = False
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
            if not sale.done():
                sale.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sale
            _summarise(run)
            try:
                result.history = str(await write_history(run, Path(result.log_dir)))
            except OSError as exc:
                run.note(f"history not written: {exc!r}")


async def _create_events(api: Api, spec: Spec, capacity: int) -> dict[int, int]:
    """`spec.events` events whose requests land on distinct partitions (one per event)."""
    events: dict[int, int] = {}
    used: set[int] = set()
    for n in range(50):
        event_id = await api.create_event(
            capacity, PER_USER_LIMIT, f"chaos {spec.name} {n}", spec.hold_seconds
        )
        part = partition_of(event_id, spec.partitions)
        if part not in used:
            used.add(part)
            events[event_id] = capacity
        if len(events) == spec.events:
            return events
    raise RuntimeError(f"could not place {spec.events} events on distinct partitions")


async def _converge(run: Run, timeout_s: float) -> dict[str, dict[str, Any]] | None:
    """Poll until every accepted booking reads as decided and every audit is CLEAN. Returns
    the booking views, or None if that did not happen in time (the checks then say what)."""
    deadline = time.monotonic() + timeout_s
    views = await _decide_all(run, timeout_s)
    left = deadline - time.monotonic()
    if views is None or left <= 0:
        return None

    async def clean() -> bool:
        audits = [await run.api.audit(e) for e in run.events]
        return all(a is not None and a["verdict"] == "CLEAN" for a in audits)

    return views if await poll_until(clean, left, interval_s=0.25) else None


async def _decide_all(run: Run, timeout_s: float) -> dict[str, dict[str, Any]] | None:
    pending = set(run.traffic.accepted)
    views: dict[str, dict[str, Any]] = {}
    not_found: set[str] = set()
    gate = asyncio.Semaphore(32)

    async def one(booking_id: str) -> None:
        async with gate:
            code, body = await run.api.booking(booking_id)
        if code == 200 and body.get("status") in TERMINAL:
            views[booking_id] = body
            pending.discard(booking_id)
        elif code == 404:
            not_found.add(booking_id)

    async def all_decided() -> bool:
        await asyncio.gather(*(one(b) for b in list(pending)))
        return not pending

    await poll_until(all_decided, timeout_s, interval_s=0.25)
    if not_found:
        run.note(
            f"GET /api/bookings/{{id}} answered 404 for {len(not_found)} accepted bookings "
            "while they were undecided"
        )
    if pending:
        run.note(f"{len(pending)} accepted bookings still undecided, e.g. {sorted(pending)[:3]}")
        return None
    return views


async def _reconcile(run: Run, checks: list[Check]) -> tuple[list[Check], float | None]:
    """Run `python -m consumer.reconcile` once, then converge and check the invariants again
    (the verdict of every scenario but the reconciler's ignores them). Returns those checks,
    and when everything had converged after it (None: it did not)."""
    failed = [c.name for c in checks if not c.ok]
    run.say(f"invariants failed ({failed}): running the reconciler")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "consumer.reconcile",
        cwd=ROOT,
        env=settings_env(run.settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    run.result.reconciler = f"exit {proc.returncode}: {out.decode(errors='replace')}"
    append_log(Path(run.result.log_dir) / "reconcile.log", run.result.reconciler)
    views = await _converge(run, run.spec.converge_timeout_s)
    converged = time.monotonic() if views is not None else None
    return await invariants(run, views), converged


def _repaired(r: ScenarioResult, broken: list[Check]) -> list[Check]:
    """The reconciler scenario's verdict: the invariants failed without the reconciler (the
    state really was broken), and all held once it had run."""
    failed = [c.name for c in broken if not c.ok]
    fixed = re.findall(rf"({'|'.join(FIXES)}): *([1-9]\d*)", r.reconciler or "")
    return [
        Check(
            "without the reconciler, the broken gate failed the invariants",
            bool(failed),
            f"failed: {failed[:4]}",
        ),
        Check(
            "the reconciler ran cleanly and fixed something",
            (r.reconciler or "").startswith("exit 0:") and bool(fixed),
            f"fixes {dict(fixed)}; {(r.reconciler or 'not run').strip()[:300]}",
        ),
        *r.reconciled_checks,
    ]


async def _longest_gap(run: Run) -> None:
    """The longest stretch without a decision, from the ledger's decided_at."""
    try:
        rows = await query(
            run.settings,
            "SELECT extract(epoch FROM decided_at)::float8 AS at FROM bookings"
            " WHERE event_id = ANY(%(ids)s)",
            {"ids": list(run.events)},
        )
    except psycopg.Error as exc:
        run.note(f"longest stretch without a decision unknown: {exc!r}")
        return
    gap = longest_gap(row["at"] - run.t0_wall for row in rows)
    if gap is not None:
        run.result.longest_gap_s, run.result.longest_gap_at_s = gap[1] - gap[0], gap[0]


def _summarise(run: Run) -> None:
    r, traffic = run.result, run.traffic
    seen = during_faults(traffic.attempts(), r.fault_windows, run.t0)
    r.attempts_in_faults, r.availability = seen.attempts, seen.share
    r.requests = len(traffic.outcomes)
    r.demand = sum(o.ask.quantity for o in traffic.outcomes)
    r.accepted = len(traffic.accepted)
    r.sold_out_409 = traffic.count(409)
    r.codes = dict(traffic.codes())
    r.capacity = sum(run.events.values())
    r.sold = sum(int(a.get("sold", 0)) for a in r.audits.values())
    r.confirmed = sum(int(a.get("confirmed_bookings", 0)) for a in r.audits.values())
    r.rejected = sum(int(a.get("rejected_bookings", 0)) for a in r.audits.values())
