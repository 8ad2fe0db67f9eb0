"""notify_kill9: a sale with holds of 3 s, half of them paid, while a notifier mails every
buyer (each has an account) about each confirmation and expiry. The worker and the notifier
are each killed with kill -9 five times, interleaved (two loops side by side), and a
successor started at once each time. The notifier dies when it consumes again and the sink
has just taken one of its mails (mid-batch: the rest of the batch comes again); the worker
at a random moment while it consumes, once more mails came since the last kill (the sale's
changes keep reaching buyers). A kill -9 stalls the victim's group until the dead member's
session expires (6 s here); the loops overlap those stalls. The checks then want exactly one
mail per change that mails, to its buyer."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from typing import Literal

from scripts.chaos.scenario import Run, Spec

KILLS = 5  # of each
# How long a kill waits for its victim to consume, then for mails to flow.
WAIT_S = 20.0

Kind = Literal["worker", "notifier"]


async def inject(run: Run, kills: int = KILLS) -> None:
    """`kills` kill -9 of the worker and as many of the notifier, at random moments while
    mails flow."""
    workers, notifiers = await asyncio.gather(
        _kill_again_and_again(run, "worker", kills), _kill_again_and_again(run, "notifier", kills)
    )
    run.expect(
        f"{kills} kill -9 of the worker and {kills} of the notifier, each while mails flowed",
        workers == notifiers == kills,
        f"{len(run.result.faults)} kills; while mails flowed: of the worker {workers}, of the "
        f"notifier {notifiers}",
    )


async def _kill_again_and_again(run: Run, kind: Kind, kills: int) -> int:
    """Kill the live `kind` `kills` times, starting a successor each time. Returns how many
    of the kills came while mails flowed."""
    pipeline = run.pipeline
    start = run.start_worker if kind == "worker" else run.start_notifier
    flowing = 0
    for _ in range(kills):
        live = pipeline.live_workers() if kind == "worker" else pipeline.live_notifiers()
        victim = live[-1] if live else start()
        since, more = run.mails, run.rng.randint(1, 12)
        consuming = await pipeline.wait_assigned(victim, WAIT_S)
        if kind == "notifier":
            # Its own mails, anywhere in the backlog its stalled group left: it dies mid-batch
            # (and mails enough between kills for the worker's kills to see mails flow).
            since, more = run.mails, run.rng.randint(5, 40)
        if consuming and await run.wait_mails(since + more, WAIT_S):
            flowing += 1
        else:
            run.note(f"{kind} {victim.pid}: consuming {consuming}, but no mail within {WAIT_S:g}s")
        if kind == "worker":
            # Anywhere in its round: deciding, settling, relaying the outbox, expiring holds.
            await asyncio.sleep(run.rng.uniform(0.0, 1.0))
        state = _state(run, victim)
        await run.stop_worker(victim, signal.SIGKILL, timeout_s=10)
        run.fault(f"kill -9 {kind} {victim.pid} ({state}; {run.mails} mails so far)")
        start()
    return flowing


def _state(run: Run, proc: subprocess.Popen[bytes]) -> str:
    """What the victim was doing, per its log."""
    parts = run.pipeline.assignment(proc)
    if parts:
        return f"consuming partitions {parts}"
    return "joining the group" if " started: " in run.pipeline.log_of(proc) else "starting"


SPEC = Spec(
    "notify_kill9",
    "worker and notifier kill -9, 5 times each, while mails flow",
    inject,
    events=2,
    partitions=2,
    duration_s=30,
    hold_seconds=3,
    pay_share=0.5,
    notifier=True,
    session_timeout_ms=6000,
)
