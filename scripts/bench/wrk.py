"""The wrk driver: one measured run of keep-alive POSTs (post.lua) or GETs (get.lua), parsed
into a result."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from scripts.bench.progress import say
from scripts.bench.world import World
from scripts.pipeline import spawn, wait_child

WRK_SCRIPT = Path(__file__).with_name("post.lua")
GET_SCRIPT = Path(__file__).with_name("get.lua")
JOIN_SCRIPT = Path(__file__).with_name("join.lua")


@dataclass(frozen=True)
class Get:
    """GETs of one path instead of booking POSTs; with If-None-Match when `etag` is set."""

    path: str
    etag: str = ""


@dataclass
class WrkResult:
    """One measured wrk run. `rps` counts only the expected status (`good`)."""

    good: str
    rps: float
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]
    errors: dict[str, int]
    connections: int
    loadgen_cpu_pct: float
    kafka_ack_mean_ms: float | None = None  # the API's own produce->ack time, if scraped
    server_cpu_pct: float | None = None  # CPU the server process got (% of one core)

    @property
    def per_cpu_second(self) -> float | None:
        """Answers per CPU-second of the server: robust to other load on a shared machine."""
        if not self.server_cpu_pct:
            return None
        return self.rps / (self.server_cpu_pct / 100)


async def run_wrk(
    url: str,
    event_id: int,
    tag: str,
    seconds: float,
    connections: int,
    good: str,
    buyers: Path | None = None,
    get: Get | None = None,
    join: bool = False,
) -> WrkResult:
    """wrk, one thread (the machine has two cores to share), distinct users per request (or
    the signed-in `buyers` of a file, in turn), or the GETs of `get`, or with `join` distinct
    buyers joining the event's queue."""
    script, script_args = WRK_SCRIPT, [str(event_id), tag, *([str(buyers)] if buyers else [])]
    if get is not None:
        script, script_args = GET_SCRIPT, [get.path, get.etag]
    if join:
        script, script_args = JOIN_SCRIPT, [str(event_id), tag]
    args = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(round(seconds), 1)}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
        "--",
        *script_args,
    ]
    proc = spawn(args)
    ended = await wait_child(proc, timeout_s=seconds + 30)
    assert proc.stdout is not None
    output = proc.stdout.read().decode(errors="replace")
    proc.stdout.close()
    line = next((ln for ln in output.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if ended.code != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {ended.code}):\n{output}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    secs = raw["duration_us"] / 1e6
    statuses = {str(k): int(v) for k, v in raw["statuses"].items()}
    return WrkResult(
        good=good,
        rps=statuses.get(good, 0) / secs,
        requests=raw["requests"],
        seconds=secs,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        statuses=statuses,
        errors={k: int(v) for k, v in raw["errors"].items() if k != "status" and v},
        connections=connections,
        loadgen_cpu_pct=100 * ended.cpu_s / ended.wall_s,
    )


def wrk_line(result: WrkResult) -> str:
    return (
        f"{result.rps:,.0f} req/s ({result.good}), p50 {result.p50_ms:.1f} ms, "
        f"p99 {result.p99_ms:.1f} ms, statuses {result.statuses}, "
        f"wrk CPU {result.loadgen_cpu_pct:.0f}%"
    )


async def measured_wrk(
    world: World,
    phase: str,
    url: str,
    event_id: int,
    good: str,
    seconds: float,
    server: str,
    buyers: Path | None = None,
    get: Get | None = None,
    join: bool = False,
) -> WrkResult:
    """A short wrk warm-up, then the measured run inside a CPU-accounting window; notes the
    CPU share the `server` process got, for the CPU-normalised rate."""
    s = world.sizes
    say(phase, f"wrk warm-up {s.warmup_s:g} s, {s.connections} connections")
    tag = f"{world.run_id}-{phase}"
    await run_wrk(url, event_id, f"{tag}-w", s.warmup_s, s.connections, good, buyers, get, join)
    say(phase, f"wrk measuring {seconds:g} s")
    with world.monitor.measure(phase) as usage:
        result = await run_wrk(url, event_id, tag, seconds, s.connections, good, buyers, get, join)
        usage.loadgen_cpu_pct = result.loadgen_cpu_pct
    result.server_cpu_pct = usage.cpu_pct.get(server)
    say(phase, wrk_line(result))
    return result
