"""The operator's terminal tools against a real pipeline: `python -m scripts.inspect` (topics,
group lag, decoded messages) and `python -m scripts.live` (the live view of a sale)."""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass

import pytest

from scripts.pipeline import ROOT, Pipeline, settings_env
from scripts.waiting import poll_until
from shared.config import Settings
from tests.e2e.backlog import backlog_with_poison
from tests.sale import SaleClient

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


async def run(settings: Settings, module: str, *args: str) -> Ran:
    """`python -m module args` as a user would run it, with the test's TICKETS_* settings."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        cwd=ROOT,
        env=settings_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


async def inspect(settings: Settings, *args: str) -> Ran:
    ran = await run(settings, "scripts.inspect", *args)
    assert ran.code == 0, ran.err
    return ran


def row(lines: list[str], label: str) -> list[str]:
    """The columns of the view's row that starts with `label`."""
    (found,) = [line.split() for line in lines if line.strip().startswith(label)]
    return found


async def test_inspect_shows_topics_backlog_decoded_messages_and_dead_letters(
    sale: SaleClient, pipeline: Pipeline
) -> None:
    s = pipeline.settings
    # Worker stopped: what the API accepted waits in Kafka, visible as the group's lag.
    event, ids = await backlog_with_poison(sale, pipeline, lambda _: b"\x00not a booking")

    topics = await inspect(s, "topics")
    assert f"{s.topic}: 3 partitions, 6 messages" in topics.lines, topics.out
    assert f"{s.dlq_topic}: 1 partition, 0 messages" in topics.lines, topics.out

    group = await inspect(s, "group")
    assert group.lines[0].startswith(f"group {s.consumer_group}: "), group.out
    assert f"topic {s.topic}" in group.lines
    assert "total lag: 6" in group.lines, group.out

    tail = await inspect(s, "tail", "-n", "3")
    assert tail.lines[0] == f"{s.topic}: last 3 of 6 messages (3 partitions)", tail.out
    newest = tail.lines[1:]
    assert f"booking {ids[3]} event={event} user='user-3' quantity=1" in newest[0]
    assert f"booking {ids[4]} event={event} user='user-4' quantity=1" in newest[1]
    assert f"key={event}" in newest[1]
    assert "POISON" in newest[2] and repr(b"\x00not a booking") in newest[2], tail.out

    # The worker comes back, drains the backlog and parks the poison message.
    pipeline.start_worker()

    async def drained() -> Ran | None:
        group = await inspect(s, "group")
        return group if "total lag: 0" in group.lines else None

    group = await poll_until(drained, 60, interval_s=0.2) or await inspect(s, "group")
    assert "total lag: 0" in group.lines, group.out
    assert "1 member" in group.lines[0], group.out
    partitions = [line.split() for line in group.lines if line.strip()[:1].isdigit()]
    assert len(partitions) == 3
    # Every partition's committed offset is at its end; the busy one was committed to 6.
    assert all(p[1] in ("-", p[2]) for p in partitions), group.out
    assert ["6", "6", "0"] in [p[1:] for p in partitions], group.out

    dead = await inspect(s, "tail", "--dlq")
    assert dead.lines[0] == f"{s.dlq_topic}: last 1 of 1 message (1 partition)", dead.out
    assert repr(b"\x00not a booking") in dead.lines[1]
    assert dead.lines[2].strip().startswith("reason: undecodable"), dead.out
    assert dead.lines[3].strip().startswith(f"source: {s.topic}/"), dead.out
    decided = await sale.wait_decided(ids)
    assert {b["status"] for b in decided.values()} == {"CONFIRMED"}

    missing = await run(s, "scripts.inspect", "tail", "--topic", f"{s.topic}.nope")
    assert missing.code == 1
    assert f"topic {s.topic}.nope does not exist" in missing.err


async def _sale_of_20_seats(sale: SaleClient) -> tuple[int, Counter[int]]:
    event = await sale.create_event(capacity=20, per_user_limit=1)
    responses = await asyncio.gather(*(sale.book(event, f"user-{i}") for i in range(60)))
    accepted = [r.json()["booking_id"] for r in responses if r.status_code == 202]
    await sale.wait_decided(accepted)
    assert (await sale.wait_clean(event))["verdict"] == "CLEAN"
    return event, Counter(r.status_code for r in responses)


async def test_live_once_shows_the_sale_and_the_clean_verdict(
    sale: SaleClient, pipeline: Pipeline
) -> None:
    event, codes = await _sale_of_20_seats(sale)
    worker = pipeline.worker_metrics_urls[-1]
    args = ("--event", str(event), "--api", pipeline.url, "--worker-metrics", worker, "--once")

    # Decisions are counted just after buyers can see them: poll until the view has them all.
    async def view_once() -> Ran:
        view = await run(pipeline.settings, "scripts.live", *args)
        assert view.code == 0, view.err
        return view

    async def all_decided() -> Ran | None:
        view = await view_once()
        relayed = row(view.lines, "booking events relayed")[-1]
        return view if row(view.lines, "decided")[-1] == relayed == str(codes[202]) else None

    # A buyer watching the event's availability while the operator looks.
    async with sale.http.stream("GET", f"/api/events/{event}/stream") as watching:
        assert watching.status_code == 200
        view = await poll_until(all_decided, 30) or await view_once()
    decided = row(view.lines, "decided")
    assert view.lines[0].startswith(f'tickets live - event {event} "Test"'), view.out
    assert "API up - workers 1/1 up" in view.lines
    assert row(view.lines, "booking requests")[-1] == "60"
    assert row(view.lines, "accepted (202)")[-1] == str(codes[202])
    if codes[409]:
        assert row(view.lines, "sold out (409)")[-1] == str(codes[409])
    assert decided[-1] == str(codes[202])
    assert row(view.lines, "confirmed")[-1] == "20"
    assert row(view.lines, "rejected SOLD_OUT")[-1] == str(codes[202] - 20)
    assert "consumer lag  0 messages" in [line.strip() for line in view.lines]
    assert "outbox not yet relayed  0" in [line.strip() for line in view.lines]
    assert "open streams (API)  event 1" in [line.strip() for line in view.lines], view.out
    assert "capacity 20  sold 20  available 0  in flight 0  drift 0" in view.out
    assert row(view.lines, "verdict") == ["verdict", "CLEAN"], view.out


async def test_live_prints_a_line_per_refresh_when_piped(
    sale: SaleClient, pipeline: Pipeline
) -> None:
    event, codes = await _sale_of_20_seats(sale)
    view = await run(
        pipeline.settings,
        "scripts.live",
        *("--event", str(event), "--api", pipeline.url),
        *("--worker-metrics", pipeline.worker_metrics_urls[-1]),
        *("--interval", "0.5", "--duration", "1.2"),
    )
    assert view.code == 0, view.err
    assert len(view.lines) == 3, view.out  # at 0, 0.5 and 1.0 s
    for line in view.lines:
        assert f"event={event} " in line
        assert f"accepted={codes[202]} " in line
        assert " lag=0 " in line and " sold=20/20 " in line
        assert line.endswith(" verdict=CLEAN"), line
    assert "requests/s=- " in view.lines[0]  # no rate before a second scrape
    assert "requests/s=0.0 " in view.lines[1]  # the sale is over: nothing arrives


async def test_live_redraws_in_place_on_a_terminal(sale: SaleClient, pipeline: Pipeline) -> None:
    event, _ = await _sale_of_20_seats(sale)
    args = [sys.executable, "-m", "scripts.live", "--event", str(event), "--api", pipeline.url]
    args += ["--worker-metrics", pipeline.worker_metrics_urls[-1], "--interval", "0.3"]
    args += ["--duration", "0.5"]
    env = settings_env(pipeline.settings) | {"NO_COLOR": "1"}
    screen = await asyncio.to_thread(_run_on_terminal, args, env)
    frames = screen.split("\x1b[H")[1:]  # each frame starts by moving the cursor home
    assert len(frames) == 2, screen
    for frame in frames:
        assert "verdict  CLEAN\x1b[K" in frame
        assert "consumer lag  0 messages\x1b[K" in frame
    assert screen.endswith("\x1b[?25h"), "the cursor is shown again on exit"


def _run_on_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run a command with a pseudo-terminal as its stdout; return everything it wrote."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=follower, stderr=subprocess.PIPE)
        os.close(follower)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
        return b"".join(chunks).decode()
    finally:
        os.close(leader)
