"""One benchmark run: set up its world, run the phases in order, clean up, write the report."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scripts.bench.meta import git_commit, machine, package_versions, services
from scripts.bench.phases.finalisation import phase_finalisation, prefill_backlog
from scripts.bench.phases.flash_sale import flash_line, phase_flash
from scripts.bench.phases.holds import phase_expiry, phase_payments
from scripts.bench.phases.http_ceiling import api_flags_match, phase_http_ceiling
from scripts.bench.phases.intake import phase_intake, start_api
from scripts.bench.phases.live import phase_streams
from scripts.bench.phases.memory import memory_of
from scripts.bench.phases.naive import phase_naive
from scripts.bench.phases.queue import phase_queue
from scripts.bench.phases.seats import phase_seat_map_read, phase_specific, phase_together
from scripts.bench.phases.sold_out import phase_sold_out
from scripts.bench.phases.storage import phase_storage_ceiling
from scripts.bench.phases.tokens import (
    phase_intake_tokens,
    phase_sold_out_tokens,
    start_token_api,
)
from scripts.bench.phases.web import phase_web, start_page_api
from scripts.bench.proc import BENCH
from scripts.bench.progress import STARTED, say
from scripts.bench.report import (
    build_rows,
    finalisation_row,
    lifecycle_rows,
    live_rows,
    markdown,
    queue_rows,
    seat_rows,
    to_jsonable,
    web_rows,
)
from scripts.bench.world import FULL, QUICK, World, analyze, connect, create_bare_event
from shared.config import Settings


async def run_phases(world: World) -> dict[str, Any]:
    """Every phase, in order; returns their results by name."""
    r: dict[str, Any] = {}
    # Each HTTP ratio is judged against the ceiling measured right before and right after it
    # (their mean): the machine's speed drifts between one 10-second run and the next.
    r["http_ceiling"] = await phase_http_ceiling(world)
    r["intake"] = await phase_intake(world)
    r["http_ceiling_after_intake"] = await phase_http_ceiling(world)
    buyers = await start_token_api(world)
    r["intake_tokens"] = await phase_intake_tokens(world, buyers)
    r["http_ceiling_after_intake_tokens"] = await phase_http_ceiling(world)
    r["streams"] = await phase_streams(world)
    assert world.pipeline.api is not None
    r["server_flags_match"] = api_flags_match(world.pipeline.api.pid)
    r["storage"] = await phase_storage_ceiling(world)
    prefill_rate = await prefill_backlog(world)
    quiet_rate = await prefill_backlog(world, "quiet")
    r["naive"] = await phase_naive(world)
    r["finalisation"] = await phase_finalisation(world, prefill_rate)
    r["outbox_off"] = await phase_finalisation(world, quiet_rate, "quiet")
    r["payments"] = await phase_payments(world)
    r["expiry"] = await phase_expiry(world)
    await seat_phases(world, r)
    r["flash"] = await phase_flash(world, r["intake"].rps)
    say("flash-sale", flash_line(r["flash"]))
    r["http_ceiling_before_sold_out"] = await phase_http_ceiling(world)
    r["sold_out"] = await phase_sold_out(world)
    r["http_ceiling_again"] = await phase_http_ceiling(world)
    r["sold_out_tokens"] = await phase_sold_out_tokens(world, buyers)
    r["http_ceiling_after_sold_out_tokens"] = await phase_http_ceiling(world)
    r["queue"] = await phase_queue(world)
    r["web"] = await phase_web(world)
    world.monitor.sample()
    r["memory"] = [
        m
        for m in (
            memory_of(world.monitor, "api", judged=True),
            memory_of(world.monitor, "worker", judged=True),
            memory_of(world.monitor, "worker-drain", judged=False),
        )
        if m is not None
    ]
    return r


async def seat_phases(world: World, r: dict[str, Any]) -> None:
    """11a, 11b and 11c/11d (which reads 11b's map)."""
    r["specific_seats"] = await phase_specific(world)
    arena, r["together"] = await phase_together(world)
    r["seat_map_read"] = await phase_seat_map_read(world, arena)


async def run_worker_only(world: World, only: str) -> dict[str, Any]:
    """`--only finalisation`: phase 5 alone (under a minute), for work on the worker; `--only
    holds`: phase 5, then 9 and 10, which are judged against it; `--only seats`: phase 5,
    then 11a to 11d. Events are created straight in PostgreSQL; the worker builds the gate's
    counters."""
    async with await connect(world.settings.database_url) as conn:
        for twin in ("drain", "quiet"):
            world.events[twin] = await create_bare_event(
                conn, f"bench hot event ({twin})", world.sizes.backlog, 1
            )
    await analyze(world.settings.database_url)
    prefill_rate = await prefill_backlog(world)
    quiet_rate = await prefill_backlog(world, "quiet") if only == "finalisation" else 0.0
    r: dict[str, Any] = {"finalisation": await phase_finalisation(world, prefill_rate)}
    if only == "finalisation":
        r["outbox_off"] = await phase_finalisation(world, quiet_rate, "quiet")
    if only == "holds":
        r["payments"] = await phase_payments(world)
        r["expiry"] = await phase_expiry(world)
    if only == "seats":
        await seat_phases(world, r)
    return r


async def bench(args: argparse.Namespace) -> int:
    sizes = QUICK if args.quick else FULL
    run_id = uuid.uuid4().hex[:8]
    out_dir: Path = args.out
    world = World(Settings.from_env(), run_id, sizes, out_dir)
    versions, world.monitor.services = await services(world.base)
    started_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta: dict[str, Any] = {
        "run_id": run_id,
        "started_at": started_at,
        "mode": ("quick" if args.quick else "full") + (f", {args.only} only" if args.only else ""),
        "commit": git_commit(),
        "machine": machine(),
        "versions": {**package_versions(), **versions},
        "sizes": asdict(sizes),
        "settings": {
            k: getattr(world.settings, k)
            for k in ("batch_max", "topic_partitions", "poll_timeout_ms")
        },
    }
    say(
        "setup",
        f"run {run_id}: {meta['mode']} mode, load average {meta['machine']['load_average']}",
    )
    world.monitor.watch(BENCH, os.getpid())
    sampler = asyncio.create_task(world.monitor.run())
    try:
        await world.create()
        results: dict[str, Any]
        if args.only == "queue":
            await start_api(world)
            results = {"queue": await phase_queue(world)}
        elif args.only == "web":
            await start_page_api(world)
            results = {"web": await phase_web(world)}
        elif args.only:
            results = await run_worker_only(world, args.only)
        else:
            results = await run_phases(world)
    finally:
        sampler.cancel()
        world.stop_processes()
        if args.keep:
            say(
                "cleanup", f"kept databases {world.databases}, prefix {world.settings.redis_prefix}"
            )
        else:
            await world.destroy()
            say("cleanup", "databases, Redis keys, topics and groups removed")
    meta["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    meta["seconds"] = time.monotonic() - STARTED
    meta["server_flags_match"] = results.pop("server_flags_match", "n/a")
    # Alone, phase 5 has no naive baseline or storage ceiling to be judged against.
    if args.only == "queue":
        rows = queue_rows(results)
    elif args.only == "web":
        rows = web_rows(results)
    elif args.only:
        rows = [
            finalisation_row(results["finalisation"]),
            *lifecycle_rows(results),
            *seat_rows(results),
            *live_rows(results),
        ]
    else:
        rows = build_rows(results)
    table = markdown(meta, rows, world.monitor.usage)
    stem = out_dir / f"bench-{started_at.replace(':', '')}-{run_id}"
    document = {
        "meta": meta,
        "results": results,
        "table": rows,
        "cpu": world.monitor.usage,
        "rss_series": world.monitor.series,
    }
    stem.with_suffix(".json").write_text(json.dumps(to_jsonable(document), indent=2) + "\n")
    stem.with_suffix(".md").write_text(table)
    print(table)
    say("done", f"wrote {stem}.json and .md")
    return 0
