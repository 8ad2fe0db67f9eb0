"""The ways the runner breaks things, shared by the scenarios and the soak's fault kinds: a
stack service down for a while (an outage window), a worker or notifier killed and replaced,
raw copies of booking messages produced again."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from aiokafka import AIOKafkaProducer, ConsumerRecord

from scripts.chaos.scenario import Run

Service = Literal["kafka", "postgres", "redis"]


async def service_outage(
    run: Run,
    service: Service,
    how: Literal["kill9", "stop"],
    down_s: float,
    text: str,
    end: str,
    while_down: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """`scripts/stack <how> <service>`, down for `down_s` (during which `while_down` runs,
    if given), then started again: one outage window from the break to the service's
    readiness."""
    async with run.outage(text, end):
        await run.stack(how, service)
        broken = asyncio.get_running_loop().time()
        if while_down is not None:
            await while_down()
        left = down_s - (asyncio.get_running_loop().time() - broken)
        await asyncio.sleep(max(0.0, left))
        await run.stack("start", service)


def process_state(run: Run, proc: subprocess.Popen[bytes]) -> str:
    """What a worker or notifier was doing, per its log."""
    parts = run.pipeline.assignment(proc)
    if parts:
        return f"consuming partitions {parts}"
    return "joining the group" if " started: " in run.pipeline.log_of(proc) else "starting"


async def kill9(
    run: Run,
    victim: subprocess.Popen[bytes],
    kind: Literal["worker", "notifier"],
    state: str,
    successor: bool = True,
) -> subprocess.Popen[bytes] | None:
    """kill -9 a worker or notifier (`state`: what it was doing), and start its successor at
    once, as a supervisor would. Returns the successor."""
    await run.stop_worker(victim, signal.SIGKILL, timeout_s=10)
    run.fault(f"kill -9 {kind} {victim.pid} ({state})")
    if not successor:
        return None
    return run.start_worker() if kind == "worker" else run.start_notifier()


async def produce_copies(
    run: Run, records: Sequence[ConsumerRecord[bytes, bytes]], label: str
) -> int:
    """Produce raw copies of these booking-topic records again, to their partitions (a
    duplicate delivery, as a producer retry or a replayed topic makes). Returns how many."""
    s = run.settings
    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for r in records:
            await producer.send(s.topic, value=r.value, key=r.key, partition=r.partition)
        await producer.flush()
    finally:
        await producer.stop()
    run.fault(f"{len(records)} raw duplicate messages produced ({label})")
    return len(records)
