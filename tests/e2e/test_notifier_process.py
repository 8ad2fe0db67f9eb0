"""`python -m consumer.notify` as a real process: it refuses to start without an SMTP server,
and killed with SIGKILL again and again, each time the instant the SMTP server has taken one
of its mails, it still sends exactly one mail per confirmation, expiry and cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import psycopg
import pytest

from scripts.mail_sink import MailSink, Received
from scripts.pipeline import free_port, settings_env, spawn, terminate
from scripts.waiting import eventually
from shared.config import Settings
from shared.contracts import BookingEvent, Status
from tests.booking_events import (
    Events,
    notifier_world,
    publish,
    wait_consumed,
)

pytestmark = pytest.mark.e2e

NOTIFIER = [sys.executable, "-m", "consumer.notify"]
KILLS = 10
BUYERS = 20
SALES = 6  # events, so that their changes spread over the topic's partitions


@pytest.fixture
async def world(settings: Settings, sink: MailSink) -> AsyncIterator[Settings]:
    buyers = {f"buyer-{n}": f"buyer-{n}@example.com" for n in range(BUYERS)}
    async with notifier_world(settings, sink.url, buyers) as s:
        yield s


@pytest.mark.parametrize("smtp_url", ["", "http://127.0.0.1:25", "smtp://127.0.0.1"])
def test_it_refuses_to_start_without_an_smtp_server(settings: Settings, smtp_url: str) -> None:
    env = settings_env(msgspec.structs.replace(settings, smtp_url=smtp_url))
    done = subprocess.run(NOTIFIER, env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode == 2
    assert b"configuration error: TICKETS_SMTP_URL" in done.stderr


def counted(
    metrics: str, outcome: str, name: str = "notifications", label: str = "outcome"
) -> float:
    series = f'tickets_{name}_total{{{label}="{outcome}"}} '
    [line] = [line for line in metrics.splitlines() if line.startswith(series)]
    return float(line.removeprefix(series))


async def test_sigterm_while_the_smtp_server_is_down_stops_promptly_and_loses_nothing(
    world: Settings, sink: MailSink, tmp_path: Path
) -> None:
    sink.stop()
    await publish(world, [Events().change("buyer-1", Status.CONFIRMED)])
    port = free_port()
    env = settings_env(msgspec.structs.replace(world, notify_metrics_port=port))
    proc = spawn(NOTIFIER, tmp_path / "notifier-down.log", env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def retrying() -> bool:
                with contextlib.suppress(httpx.TransportError):
                    text = (await client.get("/metrics")).text
                    return counted(text, "smtp", "dependency_errors", "dependency") >= 2
                return False

            await eventually(retrying, "the notifier retrying against a stopped SMTP server")
    finally:
        code = await asyncio.to_thread(terminate, proc, 10.0)
    assert code == 0

    sink.start()
    again = spawn(NOTIFIER, tmp_path / "notifier-up.log", settings_env(world))
    try:
        await wait_consumed(world)
    finally:
        assert await asyncio.to_thread(terminate, again) == 0
    assert [m.recipients for m in sink.received] == [("buyer-1@example.com",)]


def a_busy_sale() -> tuple[list[BookingEvent], dict[str, str]]:
    """About 500 changes, 300 of them mailed: holds paid, holds run out, bookings paid then
    cancelled. Returns the changes and, per mailed one, its Message-ID -> the buyer's
    address."""
    sales = [Events(event_id) for event_id in range(1, SALES + 1)]
    changes: list[BookingEvent] = []
    mailed: dict[str, str] = {}
    for n in range(225):
        sale, buyer, booking = sales[n % SALES], f"buyer-{n % BUYERS}", uuid.uuid4()
        steps = [Status.HELD]
        steps += [[Status.EXPIRED], [Status.CONFIRMED], [Status.CONFIRMED, Status.CANCELLED]][n % 3]
        for status in steps:
            change = sale.change(buyer, status, booking, quantity=1 + n % 4)
            changes.append(change)
            if status is not Status.HELD:
                mailed[f"<booking-event.{change.event_id}.{change.seq}@tickets>"] = (
                    f"{buyer}@example.com"
                )
    return changes, mailed


async def test_killed_again_and_again_it_mails_each_change_exactly_once(
    world: Settings, sink: MailSink, tmp_path: Path
) -> None:
    changes, mailed = a_busy_sale()
    assert len(mailed) == 300
    await publish(world, changes)
    env = settings_env(world)
    chance = random.Random()

    for kill in range(KILLS):
        proc = spawn(NOTIFIER, tmp_path / f"notifier-{kill}.log", env)
        # The harshest moment: the server has just taken one of its mails (and has not
        # answered yet); a notifier that had not committed its claim by then mails it twice.
        target = len(sink.received) + chance.randint(1, 30)

        def kill_at(
            mail: Received, count: int, proc: subprocess.Popen[bytes] = proc, target: int = target
        ) -> None:
            if count == target:
                proc.kill()

        sink.on_mail = kill_at

        async def died(proc: subprocess.Popen[bytes] = proc) -> bool:
            return proc.poll() is not None

        try:
            await eventually(died, f"the notifier killed at its mail number {target}", 60, 0.005)
        finally:
            sink.on_mail = None
            proc.kill()  # already dead, or the test failed first: nothing left running
            proc.wait()

    metrics_port = free_port()
    last_env = settings_env(msgspec.structs.replace(world, notify_metrics_port=metrics_port))
    last = spawn(NOTIFIER, tmp_path / "notifier-last.log", last_env)
    try:

        async def all_mailed() -> bool:
            return {m.message_id for m in sink.received} >= set(mailed)

        await eventually(all_mailed, "a mail for every change", 120, 0.1)
        await wait_consumed(world)
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    finally:
        code = await asyncio.to_thread(terminate, last)
    assert code == 0  # SIGTERM: finished in order
    for outcome in ("sent", "not_mailed"):  # what the last one did, on its own port
        assert counted(metrics, outcome) > 0

    received: list[Received] = sink.received
    counts = Counter(m.message_id for m in received)
    twice = {mid: n for mid, n in counts.items() if n > 1}
    assert not twice, f"mailed more than once: {twice}"
    assert set(counts) == set(mailed)
    for mail in received:
        assert mail.recipients == (mailed[mail.message_id],)
    with psycopg.connect(world.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM notifications WHERE outcome = 'sent'").fetchone()
    assert row == (300,)
