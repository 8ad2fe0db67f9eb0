"""The soak: one sale of 10,000 seats with demand at 3x, for a fixed time, under a seeded
random mix of every fault kind the suite knows (fault_kinds.KINDS), then the same heal,
convergence and invariant checks as every scenario, plus the availability figures.

    python -m scripts.chaos soak [--minutes N] [--seed S]

It runs on the HA stack (three Kafka nodes, Redis under Sentinel), whose services it breaks
too: from the command line, the one the environment names (`scripts/stack up --services-only
--kafka-brokers 3 --redis-sentinel` with TICKETS_STACK_DIR and the ports exported, then
`eval "$(scripts/stack env)"`); in the tests, the `ha_stack` fixture's.

The seed is printed (and in the report and history): the same seed replays the same choices
of kinds, victims and moments (the timing of a real system still differs). Demand arrives
over the whole soak: 0.9x the capacity over its first half, the rest over the second, so the
stock lasts into the middle of the soak and faults land while the worker decides."""

from __future__ import annotations

import asyncio
from collections import Counter

from scripts.chaos.fault_kinds import KINDS, FaultKind
from scripts.chaos.scenario import Run, Spec

CAPACITY = 10_000
# Pauses between two faults of a lane: processes break often; services get a moment to
# carry traffic between outages.
PAUSE_S = {"process": (0.0, 1.0), "service": (1.0, 3.0)}
KIND_TIMEOUT_S = 90.0  # one fault, from the break to its mending


async def inject(run: Run) -> None:
    """Both lanes until the soak's time is up; then the counts by kind into the result."""
    done: Counter[str] = Counter()
    skipped: dict[str, str] = {}
    lanes = {lane for kind in KINDS.values() for lane in [kind.lane]}
    await asyncio.gather(*(_lane(run, lane, done, skipped) for lane in sorted(lanes)))
    run.result.fault_kinds = dict(done)
    run.result.skipped_kinds = {k: why for k, why in skipped.items() if k not in done}
    never = sorted(set(KINDS) - set(done) - set(skipped))
    run.note(
        f"soak: {sum(done.values())} faults of {len(done)} kinds {dict(done)}; skipped "
        f"{run.result.skipped_kinds or 'none'}{f'; never drawn {never}' if never else ''}"
    )


async def _lane(run: Run, lane: str, done: Counter[str], skipped: dict[str, str]) -> None:
    kinds = [k for k in KINDS.values() if k.lane == lane]
    while run.elapsed < run.spec.duration_s:
        ready: list[FaultKind] = []
        for kind in kinds:
            why = await kind.needs(run) if kind.needs is not None else None
            if why is None:
                ready.append(kind)
            else:
                skipped[kind.name] = why
        if ready:
            kind = run.rng.choices(ready, weights=[k.weight for k in ready])[0]
            try:
                await asyncio.wait_for(kind.inject(run), KIND_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 - one fault failing is a finding, not the end
                run.expect(f"fault {kind.name} injected", False, repr(exc))
            else:
                done[kind.name] += 1
        low, high = PAUSE_S[lane]
        await asyncio.sleep(run.rng.uniform(low, high))


def spec(minutes: float) -> Spec:
    """The soak as a scenario the runner runs like any other."""
    return Spec(
        "soak",
        f"{minutes:g} min, 10,000 seats, 3x demand, a random mix of every fault kind",
        inject,
        workers=2,
        partitions=3,
        duration_s=minutes * 60,
        capacity=CAPACITY,
        # 6 s, the broker's minimum: a kill -9 stalls the group for less.
        session_timeout_ms=6000,
        stock_share=0.5,
        # Every simulated buyer comes from the runner's one address; a real sale's from
        # thousands, so the per-address limit would only measure the runner.
        settings={"rate_limit_address_per_s": 5000.0, "rate_limit_address_burst": 10000},
        # Reading 15,000 bookings back through the API takes a while on a shared machine.
        converge_timeout_s=180.0,
        # Every fault the suite knows includes a broker dying while the others carry on and
        # Redis failing over: the soak runs on the HA stack.
        ha=True,
    )
