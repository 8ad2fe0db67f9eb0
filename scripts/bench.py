"""`python -m scripts.bench [--quick] [--only finalisation] [--out DIR] [--keep]`: the benchmark.

Measures, in one run on one machine, the system next to its physical ceilings (see "Performance:
how it is measured" in the design brief), and prints a markdown table of ratios against the
targets; the same numbers, the machine and the versions go to a JSON file.

Phases, in order (each prints progress lines on stderr):
 1. HTTP ceiling: a bare Litestar POST handler (scripts/bench/bare_app.py), wrk.
 2. intake: POST /api/bookings -> 202 after Kafka's ack, real API process, wrk; then the
    HTTP ceiling again (1a): intake is judged against the mean of 1 and 1a.
 3. storage ceiling: COPY batches of TICKETS_BATCH_MAX rows into a bookings-like table, one
    transaction each; and (for attribution) the same plus the worker's seat assignment.
 4. naive baseline: one PostgreSQL transaction per booking over the same Kafka backlog.
 5. finalisation: the real worker (`python -m consumer --stop-when-idle`) draining a backlog
    for one hot event, produced beforehand straight into Kafka.
 6. flash sale: API + worker, requests offered at a steady rate (half the intake) by an
    open-loop paced client, for an event with 10x fewer seats than requests.
 7. sold-out fast path: the HTTP ceiling again (1c), wrk against the sold-out event (409s),
    and the HTTP ceiling once more (1b): sold-out is judged against the mean of 1c and 1b.
    Each ratio is taken against ceilings measured right before and after it, because the
    speed of a shared VM drifts by tens of percent from one 10-second run to the next.
 8. memory: VmHWM/VmRSS of the API and workers, RSS sampled through the run.

Isolation: its own databases (bench_<id>, and bench_<id>_base for the baselines), Redis prefix,
topics and consumer groups, all removed at the end unless --keep. Services come from TICKETS_*
(`eval "$(scripts/stack env)"`). Everything talks to 127.0.0.1 only, and every phase is
bounded in count and time. Absolute numbers on a shared 2-core machine are noisy: compare the
ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import itertools
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, LiteralString, cast
from urllib.parse import urlsplit, urlunsplit

import msgspec
import psycopg
import redis.exceptions
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import DeleteGroupsRequest
from psycopg import sql
from psycopg.rows import DictRow, dict_row

from consumer.finalize import Finalizer
from scripts.loadgen import (
    TRANSPORT_ERRORS,
    Client,
    bearer,
    booking_bodies,
    local_target,
    settled_audit,
)
from scripts.pipeline import ROOT, Pipeline, free_port
from shared.config import Settings
from shared.contracts import (
    BookingRequested,
    decode_request,
    encode_request,
    event_key,
    new_booking_id,
)
from shared.db import migrate, open_pool, queries
from shared.decisions import DecisionCache
from shared.inventory import Inventory, open_redis
from shared.topics import ensure_topics

BENCH_DIR = ROOT / "scripts" / "bench"
WRK_SCRIPT = BENCH_DIR / "post.lua"
# The real API's server flags (scripts/pipeline.py); the bare app gets the very same ones,
# and the run checks the API's command line against them.
UVICORN_FLAGS = ["--no-access-log", "--loop", "uvloop", "--http", "httptools"]
MIB = 1024
BENCH = "bench"  # this process, in the CPU table: the naive client, COPY client, paced client

Conn = psycopg.AsyncConnection[DictRow]


# ------------------------------------------------------------------------------ sizes


@dataclass(frozen=True)
class Sizes:
    """How much each phase does. --quick divides the counts and durations by about 10."""

    warmup_s: float  # wrk warm-up before each measured wrk run (not counted)
    http_s: float  # measured wrk duration: HTTP ceiling, intake, sold-out
    connections: int  # wrk keep-alive connections
    intake_capacity: int  # seats of the intake event (nothing decides it: never sells out)
    backlog: int  # booking requests the real worker drains (one hot event)
    naive: int  # bookings the naive finaliser decides (it is slow)
    flash_requests: int
    flash_seats: int
    paced_connections: int  # the flash-sale client's connection cap
    drain_timeout_s: float  # worker drain bound
    decide_timeout_s: float  # flash sale: bound on waiting for the last decision


FULL = Sizes(2, 10, 64, 200_000, 100_000, 5_000, 100_000, 10_000, 128, 420, 120)
QUICK = Sizes(1, 3, 64, 20_000, 10_000, 500, 10_000, 1_000, 128, 60, 60)


# --------------------------------------------------------------------------- progress


_T0 = time.monotonic()


def say(phase: str, message: str) -> None:
    """One progress line on stderr, stamped with seconds since the start."""
    print(f"[bench {time.monotonic() - _T0:6.1f}s] {phase}: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ /proc measurements


CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcSample:
    """One look at a process: resident memory now, its high-water mark, CPU used so far."""

    rss_kib: int
    hwm_kib: int
    cpu_s: float


def read_proc(pid: int) -> ProcSample | None:
    """VmRSS/VmHWM from /proc/PID/status and utime+stime from /proc/PID/stat; None when the
    process is gone (or a zombie, which has no memory lines)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if "VmRSS" not in fields:
        return None
    after_comm = stat.rsplit(")", 1)[1].split()  # [0] is field 3 (state): utime is field 14
    ticks = int(after_comm[11]) + int(after_comm[12])
    return ProcSample(
        rss_kib=int(fields["VmRSS"].split()[0]),
        hwm_kib=int(fields["VmHWM"].split()[0]),
        cpu_s=ticks / CLK_TCK,
    )


def machine_ticks() -> tuple[int, int, int]:
    """(busy, steal, total) jiffies of all CPUs from /proc/stat. iowait counts as idle;
    steal (time the hypervisor gave our vCPUs to someone else) is kept apart from busy."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])  # guest time is already inside user
    idle, steal = values[3] + values[4], values[7]
    return total - idle - steal, steal, total


def tree_cpu_s(pid: int) -> float | None:
    """CPU seconds of a server and all its workers, past and present: its own time, the time
    of children it has reaped (cutime/cstime: PostgreSQL's finished backends) and the time of
    its live children. None when it is gone or not readable."""
    try:
        own = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = sum(int(v) for v in own[11:15])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


@dataclass
class PhaseUsage:
    """CPU use over one measured window, in % of one core: our processes, the services (whole
    servers, shared with anyone else using them), the load generator and what is left of the
    machine's busy time (others' load on this shared machine)."""

    name: str
    wall_s: float = 0.0
    machine_busy_pct: float = 0.0  # of all cores
    steal_pct: float = 0.0  # of all cores: CPU the hypervisor did not give this VM
    cpu_pct: dict[str, float] = field(default_factory=dict)
    loadgen_cpu_pct: float | None = None

    @property
    def unattributed_pct(self) -> float:
        busy = self.machine_busy_pct * (os.cpu_count() or 1)
        return busy - sum(self.cpu_pct.values()) - (self.loadgen_cpu_pct or 0.0)


@dataclass
class Sample:
    t_s: float
    phase: str
    rss_kib: int


class Monitor:
    """Samples the RSS of the watched processes every `interval_s` and measures CPU per phase
    for them and for the services (PostgreSQL, Redis, Kafka).

    The last reading of each process is kept, so a process that has exited still has its
    final high-water mark (as of the last sample)."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.pids: dict[str, int] = {}
        self.services: dict[str, int] = {}
        self.series: dict[str, list[Sample]] = {}
        self.last: dict[str, ProcSample] = {}
        self.phase = "setup"
        self.usage: list[PhaseUsage] = []

    def watch(self, name: str, pid: int) -> None:
        self.pids[name] = pid
        self.series.setdefault(name, [])
        self.sample()

    def unwatch(self, name: str) -> None:
        self.pids.pop(name, None)

    def sample(self) -> None:
        now = time.monotonic() - _T0
        for name, pid in self.pids.items():
            got = read_proc(pid)
            if got is not None:
                self.last[name] = got
                self.series[name].append(Sample(round(now, 2), self.phase, got.rss_kib))

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval_s)

    def _cpu(self) -> dict[str, float]:
        """CPU seconds so far of the live watched processes and of the services."""
        self.sample()
        out = {n: self.last[n].cpu_s for n, pid in self.pids.items() if read_proc(pid)}
        for name, pid in self.services.items():
            cpu = tree_cpu_s(pid)
            if cpu is not None:
                out[name] = cpu
        return out

    @contextlib.contextmanager
    def measure(self, name: str, bench_is_loadgen: bool = False) -> Iterator[PhaseUsage]:
        """CPU accounting for the `with` block. The caller sets `loadgen_cpu_pct` when the
        load generator is a child (wrk); `bench_is_loadgen` when this process generates the
        load (its CPU then moves from the process list to the load generator column)."""
        self.phase = name
        usage = PhaseUsage(name)
        cpu0, (busy0, steal0, total0), t0 = self._cpu(), machine_ticks(), time.monotonic()
        try:
            yield usage
        finally:
            cpu1, (busy1, steal1, total1) = self._cpu(), machine_ticks()
            usage.wall_s = max(time.monotonic() - t0, 1e-9)
            usage.machine_busy_pct = 100 * (busy1 - busy0) / max(total1 - total0, 1)
            usage.steal_pct = 100 * (steal1 - steal0) / max(total1 - total0, 1)
            for n in cpu1.keys() & cpu0.keys():
                usage.cpu_pct.setdefault(n, 100 * (cpu1[n] - cpu0[n]) / usage.wall_s)
            if bench_is_loadgen:
                usage.loadgen_cpu_pct = usage.cpu_pct.pop(BENCH, None)
            self.usage.append(usage)


# ------------------------------------------------------------------ child processes


@dataclass
class ChildExit:
    """How a child we waited for ended, with its own CPU time (from wait4; its ru_maxrss is
    not used: it counts the forked copy of this process before exec)."""

    code: int
    wall_s: float
    cpu_s: float


async def wait_child(
    proc: subprocess.Popen[bytes], timeout_s: float, started: float | None = None
) -> ChildExit:
    """Reap `proc` with wait4 (polled, so the event loop keeps running) to get its own CPU
    time; SIGKILL it if it runs past `timeout_s` or if we are cancelled."""
    started = time.monotonic() if started is None else started
    deadline = started + timeout_s
    try:
        while (reaped := _reap(proc.pid, block=False)) is None:
            if time.monotonic() > deadline:
                proc.kill()
                reaped = _reap(proc.pid, block=True)
                assert reaped is not None
                break
            await asyncio.sleep(0.02)
    except asyncio.CancelledError:
        proc.kill()
        proc.wait()
        raise
    status, usage = reaped
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildExit(
        code=proc.returncode,
        wall_s=time.monotonic() - started,
        cpu_s=usage.ru_utime + usage.ru_stime,
    )


def _reap(pid: int, block: bool) -> tuple[int, resource.struct_rusage] | None:
    """wait4: (wait status, the child's own rusage), or None if it is still running."""
    got, status, usage = os.wait4(pid, 0 if block else os.WNOHANG)
    return (status, usage) if got else None


def spawn(args: list[str], log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a child in the repository; its output goes to `log_path` (or a pipe)."""
    if log_path is None:
        return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with open(log_path, "wb") as log:
        return subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM a child we started (SIGKILL after 20 s); no-op when it has already ended."""
    if proc is not None and proc.returncode is None:
        Pipeline.terminate(proc)


# ------------------------------------------------------------------------------- wrk


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
    url: str, event_id: int, tag: str, seconds: float, connections: int, good: str
) -> WrkResult:
    """wrk, one thread (the machine has two cores to share), distinct users per request."""
    args = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(round(seconds), 1)}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        url,
        "--",
        str(event_id),
        tag,
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


# ------------------------------------------------------------------- the paced client


@dataclass
class Paced:
    """What the open-loop client saw. Latencies count from each request's scheduled time
    (so queueing in the client when the API stalls is included, as wrk2 does)."""

    offered_rps: float
    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    max_dispatch_lag_ms: float = 0.0
    last_202: float = 0.0  # time.time() of the last 202 received
    seconds: float = 0.0
    cpu_s: float = 0.0  # this process' CPU over the firing


async def paced_fire(client: Client, bodies: Iterable[bytes], rate: float, phase: str) -> Paced:
    """POST every body at `rate` per second, on schedule, whatever the API's latency (up to
    the client's connection cap). Bounded: each request times out in the client."""
    out = Paced(offered_rps=rate)
    cpu0 = time.process_time()
    start = time.perf_counter() + 0.05
    tasks: set[asyncio.Task[None]] = set()
    next_report = start + 5

    async def one(body: bytes, due: float) -> None:
        try:
            status, _ = await client.request("POST", "/api/bookings", body)
        except TRANSPORT_ERRORS as exc:
            out.statuses[type(exc).__name__] += 1
            return
        out.latencies_s.append(time.perf_counter() - due)
        out.statuses[str(status)] += 1
        if status == 202:
            out.last_202 = time.time()

    for i, body in enumerate(bodies):
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        elif i % 32 == 0:
            await asyncio.sleep(0)  # behind schedule: still let responses in
        out.max_dispatch_lag_ms = max(out.max_dispatch_lag_ms, (time.perf_counter() - due) * 1e3)
        task = asyncio.create_task(one(body, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        out.sent += 1
        if time.perf_counter() >= next_report:
            next_report += 5
            say(phase, f"{out.sent} sent, {dict(out.statuses)}, {len(tasks)} in flight")
    await asyncio.gather(*tasks)
    out.seconds = time.perf_counter() - start
    out.cpu_s = time.process_time() - cpu0
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# ------------------------------------------------------------------------ environment


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def git_commit() -> str:
    """HEAD, with "+dirty" when tracked files differ from it."""
    try:
        head = _git("rev-parse", "--short=12", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


def machine() -> dict[str, Any]:
    """nproc, CPU model, memory, kernel and load averages now."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model.group(1).strip() if model else "unknown",
        "memory_gib": round(int(mem.group(1)) / MIB / MIB, 1) if mem else None,
        "kernel": platform.release(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def find_kafka(bootstrap: str) -> tuple[int | None, str]:
    """(pid, version) of the local `kafka.Kafka` process that listens on our bootstrap port;
    the version from the jar names on its classpath (the broker does not report it)."""
    port = bootstrap.split(",")[0].rsplit(":", 1)[-1]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = [
                a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0")
            ]
        except OSError:
            continue
        if "kafka.Kafka" not in argv:
            continue
        args = [a for a in argv if a]
        try:
            props = Path(args[-1]) if args[-1].endswith(".properties") else None
            if props is not None and f":{port}" not in props.read_text():
                continue
        except OSError:
            continue
        return int(proc.name), _kafka_jar_version(args) or "unknown"
    return None, "unknown"


def _kafka_jar_version(args: list[str]) -> str | None:
    for flag in ("-cp", "-classpath"):
        if flag not in args:
            continue
        for entry in args[args.index(flag) + 1].split(":"):
            names = (
                [p.name for p in Path(entry[:-1]).glob("kafka_*.jar")]
                if entry.endswith("*")
                else [Path(entry).name]
            )
            for name in names:
                found = re.fullmatch(r"kafka_[\d.]+-([\d.]+)\.jar", name)
                if found:
                    return found.group(1)
    return None


def package_versions() -> dict[str, str]:
    names = ["litestar", "uvicorn", "uvloop", "httptools", "aiokafka", "psycopg", "redis"]
    names += ["msgspec"]
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    out["wrk"] = (wrk.stdout or wrk.stderr).split("\n", 1)[0].split(" Copyright")[0].strip()
    return out


def parent_pid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


async def services(settings: Settings) -> tuple[dict[str, Any], dict[str, int]]:
    """Versions of PostgreSQL (with its durability settings), Redis and Kafka, and the pids
    of their servers on this machine (for CPU accounting; missing ones are skipped)."""
    pids: dict[str, int] = {}
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        names = ["server_version", "fsync", "synchronous_commit", "wal_sync_method"]
        names += ["full_page_writes", "shared_buffers"]
        pg = {n: (await (await conn.execute(f"SHOW {n}")).fetchone() or ["?"])[0] for n in names}
        backend = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone() or [0])[0]
    postmaster = parent_pid(backend)  # the postmaster forks every backend
    if postmaster:
        pids["postgres"] = postmaster
    client = open_redis(settings)
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    if read_proc(int(info.get("process_id", 0))):
        pids["redis"] = int(info["process_id"])
    kafka_pid, kafka = find_kafka(settings.kafka_bootstrap)
    if kafka_pid:
        pids["kafka"] = kafka_pid
    versions = {"postgresql": pg, "redis": info.get("redis_version", "unknown"), "kafka": kafka}
    return versions, pids


# --------------------------------------------------------------------- isolated world


@dataclass
class World:
    """Everything this run owns: settings pointing at its own database, prefix, topics and
    groups; the processes it started; where logs and results go."""

    base: Settings
    run_id: str
    sizes: Sizes
    out_dir: Path
    settings: Settings = field(init=False)
    drain: Settings = field(init=False)  # the finalisation phase's topic and group
    base_db_url: str = field(init=False)  # baselines live in their own database
    base_settings: Settings = field(init=False)  # ... with their own Redis prefix
    admin_url: str = field(init=False)
    log_dir: Path = field(init=False)
    pipeline: Pipeline = field(init=False)
    monitor: Monitor = field(default_factory=Monitor)
    bare: subprocess.Popen[bytes] | None = None
    events: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ns = f"bench{self.run_id}"
        self.admin_url = with_database(self.base.database_url, "postgres")
        self.base_db_url = with_database(self.base.database_url, f"bench_{self.run_id}_base")
        self.settings = msgspec.structs.replace(
            self.base,
            database_url=with_database(self.base.database_url, f"bench_{self.run_id}"),
            redis_prefix=ns,
            topic=f"{ns}.booking-requests",
            dlq_topic=f"{ns}.booking-requests.dlq",
            consumer_group=f"{ns}-finalizer",
            admin_token=secrets.token_hex(16),
            worker_metrics_port=0,  # no port clashes with other workers on the machine
        )
        self.drain = msgspec.structs.replace(
            self.settings,
            topic=f"{ns}.backlog",
            dlq_topic=f"{ns}.backlog.dlq",
            consumer_group=f"{ns}-drain",
        )
        self.base_settings = msgspec.structs.replace(
            self.settings, database_url=self.base_db_url, redis_prefix=f"{ns}base"
        )
        self.log_dir = self.out_dir / f"logs-{self.run_id}"
        self.pipeline = Pipeline(self.settings, log_dir=self.log_dir)

    @property
    def databases(self) -> list[str]:
        return [
            urlsplit(u).path.lstrip("/") for u in (self.settings.database_url, self.base_db_url)
        ]

    async def create(self) -> None:
        """Databases (migrated), topics. Redis keys appear with use, under the prefix."""
        async with await psycopg.AsyncConnection.connect(self.admin_url, autocommit=True) as c:
            for name in self.databases:
                await c.execute(f'CREATE DATABASE "{name}"')
        for url in (self.settings.database_url, self.base_db_url):
            await asyncio.to_thread(migrate, url)
        await ensure_topics(self.settings)
        await ensure_topics(self.drain)
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def stop_processes(self) -> None:
        stop(self.bare)
        self.pipeline.stop()

    async def destroy(self) -> None:
        """Remove every trace of the run (each step on its own, so one failure does not
        leave the rest behind)."""
        with contextlib.suppress(psycopg.Error, OSError):
            async with await psycopg.AsyncConnection.connect(self.admin_url, autocommit=True) as c:
                for name in self.databases:
                    await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            await delete_redis_prefix(self.settings)
            await delete_redis_prefix(self.base_settings)
        with contextlib.suppress(KafkaError, OSError):
            await delete_kafka(self.settings, self.drain)


async def delete_redis_prefix(settings: Settings) -> int:
    client = open_redis(settings)
    deleted = 0
    try:
        batch: list[str] = []
        async for key in client.scan_iter(match=f"{settings.redis_prefix}:*", count=5000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += await client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += await client.unlink(*batch)
    finally:
        await client.aclose()
    return deleted


async def delete_kafka(*all_settings: Settings) -> None:
    """Delete the run's topics and consumer groups (aiokafka's admin client has no
    delete-groups call, so the DeleteGroups request is sent to the group coordinator)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=all_settings[0].bootstrap_servers)
    await admin.start()
    try:
        topics = [t for s in all_settings for t in (s.topic, s.dlq_topic)]
        await admin.delete_topics(topics)
        for group in {s.consumer_group for s in all_settings}:
            with contextlib.suppress(KafkaError):
                coordinator = await admin.find_coordinator(group)
                await admin._send_request_to_node(coordinator, DeleteGroupsRequest([group]))
    finally:
        await admin.close()


# ---------------------------------------------------------------------------- phases


async def api_client(url: str, connections: int = 4) -> Client:
    return Client(local_target(url), connections, timeout_s=30.0)


async def wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """Until GET /health answers 200 (or the process died, or time ran out)."""
    client = await api_client(url, 1)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{url}: server exited with {proc.returncode}")
            with contextlib.suppress(*TRANSPORT_ERRORS):
                if (await client.get_json("/health", retries=0))[0] == 200:
                    return
            await asyncio.sleep(0.1)
    finally:
        client.close()
    raise TimeoutError(f"{url} not ready after {timeout_s}s")


async def measured_wrk(
    world: World, phase: str, url: str, event_id: int, good: str, seconds: float, server: str
) -> WrkResult:
    """A short wrk warm-up, then the measured run inside a CPU-accounting window; notes the
    CPU share the `server` process got, for the CPU-normalised rate."""
    s = world.sizes
    say(phase, f"wrk warm-up {s.warmup_s:g} s, {s.connections} connections")
    await run_wrk(url, event_id, f"{world.run_id}-{phase}-w", s.warmup_s, s.connections, good)
    say(phase, f"wrk measuring {seconds:g} s")
    with world.monitor.measure(phase) as usage:
        result = await run_wrk(
            url, event_id, f"{world.run_id}-{phase}", seconds, s.connections, good
        )
        usage.loadgen_cpu_pct = result.loadgen_cpu_pct
    result.server_cpu_pct = usage.cpu_pct.get(server)
    say(phase, wrk_line(result))
    return result


async def phase_http_ceiling(world: World) -> WrkResult:
    """1. The bare Litestar handler under the real API's uvicorn flags."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH_DIR), "bare_app:app"]
    args += ["--host", "127.0.0.1", "--port", str(port), *UVICORN_FLAGS]
    world.bare = spawn(args, world.log_dir / "00-bare-app.log")
    world.monitor.watch("bare-app", world.bare.pid)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_http(url, world.bare)
        say("http-ceiling", f"bare Litestar app up at {url}")
        return await measured_wrk(
            world, "http-ceiling", url, 1, "202", world.sizes.http_s, "bare-app"
        )
    finally:
        stop(world.bare)
        world.monitor.unwatch("bare-app")


def api_flags_match(pid: int) -> bool:
    """True when the real API runs with UVICORN_FLAGS (what the bare app got)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    return all(flag in argv for flag in UVICORN_FLAGS) and (
        argv[argv.index("--loop") + 1] == "uvloop" and argv[argv.index("--http") + 1] == "httptools"
    )


async def create_event(client: Client, token: str, name: str, capacity: int, limit: int) -> int:
    body = json.dumps({"name": name, "capacity": capacity, "per_user_limit": limit}).encode()
    status, raw = await client.request("POST", "/api/events", body, bearer(token))
    if status != 201:
        raise RuntimeError(f"creating event {name!r} failed: {status} {raw[:300]!r}")
    return int(json.loads(raw)["id"])


async def start_api(world: World) -> None:
    """The real API process, and the events the API-side phases use (created through it)."""
    world.pipeline.start_api()
    assert world.pipeline.api is not None
    world.monitor.watch("api", world.pipeline.api.pid)
    await world.pipeline.wait_ready(timeout_s=60, path="/ready")
    client = await api_client(world.pipeline.url)
    token = world.settings.admin_token
    s = world.sizes
    try:
        world.events["intake"] = await create_event(
            client, token, "bench intake", s.intake_capacity, 1000
        )
        world.events["flash"] = await create_event(client, token, "bench flash", s.flash_seats, 1)
        world.events["warm"] = await create_event(client, token, "bench warm-up", 100, 1)
        world.events["drain"] = await create_event(client, token, "bench hot event", s.backlog, 1)
    finally:
        client.close()
    await analyze(world.settings.database_url)
    say("intake", f"API up at {world.pipeline.url}; events {world.events}")


async def produce_totals(url: str) -> tuple[float, float]:
    """(sum of seconds, count) of the API's tickets_produce_seconds histogram (/metrics):
    how long the API waited for Kafka's acknowledgements."""
    client = await api_client(url, 1)
    try:
        _, body = await client.request("GET", "/metrics")
    finally:
        client.close()
    text = body.decode(errors="replace")
    totals = []
    for suffix in ("sum", "count"):
        found = re.search(rf"^tickets_produce_seconds_{suffix} (\S+)$", text, re.MULTILINE)
        totals.append(float(found.group(1)) if found else 0.0)
    return totals[0], totals[1]


def mean_ms(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    count = after[1] - before[1]
    return 1000 * (after[0] - before[0]) / count if count > 0 else None


async def phase_intake(world: World) -> WrkResult:
    """2. POST /api/bookings -> 202 (Kafka acks=all) on the real API; nothing decides them
    (no worker runs), so the event never sells out. The API's mean wait for Kafka's ack is
    scraped from its /metrics (over the warm-up and the measured run)."""
    await start_api(world)
    url = world.pipeline.url
    before = await produce_totals(url)
    result = await measured_wrk(
        world, "intake", url, world.events["intake"], "202", world.sizes.http_s, "api"
    )
    result.kafka_ack_mean_ms = mean_ms(before, await produce_totals(url))
    return result


# ---- 3. storage ceiling


@dataclass
class CeilingResult:
    rows: int
    batch_size: int
    batches: int
    seconds: float
    rows_per_s: float
    what: str


def copy_text(event_id: int, count: int, tag: str) -> list[bytes]:
    """COPY text rows shaped like the worker's (confirmed bookings), one per line."""
    now = dt.datetime.now(dt.UTC).isoformat()
    return [
        f"{new_booking_id()}\t{event_id}\t{tag}-{i}\t1\tCONFIRMED\t\\N\t{now}\t{now}\n".encode()
        for i in range(count)
    ]


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


async def connect(url: str) -> Conn:
    """A connection for the bench's own SQL; no statement may run past a minute (bound)."""
    return await psycopg.AsyncConnection.connect(
        url, row_factory=dict_row, options="-c statement_timeout=60000"
    )


async def analyze(url: str) -> None:
    """Fresh planner statistics after bulk-creating seats, as autovacuum would have them by
    the time a sale starts (stale ones can pick pathological plans: seen here, a one-row
    UPDATE of the naive baseline burning minutes)."""
    async with await connect(url) as conn:
        await conn.set_autocommit(True)
        await conn.execute("ANALYZE")


async def create_bare_event(conn: Conn, name: str, capacity: int, limit: int) -> int:
    """An event with its seats, straight in PostgreSQL (the baselines have no Redis gate)."""
    async with conn.transaction():
        cur = await conn.execute(
            queries.create_event, {"name": name, "capacity": capacity, "per_user_limit": limit}
        )
        row = await cur.fetchone()
        assert row is not None
        await conn.execute(queries.create_seats, {"event_id": row["id"], "capacity": capacity})
    return int(row["id"])


COPY_COLUMNS: LiteralString = (
    " (booking_id, event_id, user_id, quantity, status, reason, requested_at, decided_at)"
    " FROM STDIN"
)
COPY_RAW: LiteralString = "COPY bookings_raw" + COPY_COLUMNS


async def copy_batches(conn: Conn, sql: LiteralString, rows: list[bytes], size: int) -> float:
    """COPY `rows` in batches of `size`, one transaction each; returns seconds."""
    started = time.perf_counter()
    for chunk in batches(rows, size):
        async with conn.transaction(), conn.cursor() as cur, cur.copy(sql) as copy:
            await copy.write(b"".join(chunk))
    return time.perf_counter() - started


async def phase_storage_ceiling(world: World) -> tuple[CeilingResult, CeilingResult]:
    """3. Raw COPY into a bookings-like table (same columns, checks, indexes and foreign keys,
    empty at start) in batches of the worker's batch size, one transaction each. Then, for
    attribution, the real finaliser in this process on the same batches: its Redis and
    PostgreSQL work without Kafka or the worker loop (the baseline database, own prefix)."""
    n, size = world.sizes.backlog, world.settings.batch_max
    async with await connect(world.base_db_url) as conn:
        await create_raw_table(conn)
        raw_event = await create_bare_event(conn, "bench raw copy", 1, 1)
        inproc_event = await create_bare_event(conn, "bench in-process finaliser", n, 1)
        await conn.commit()
        await analyze(world.base_db_url)
        rows = copy_text(raw_event, n, "raw")
        say("storage", f"COPY {n} rows into bookings_raw, batches of {size}")
        with world.monitor.measure("storage-raw"):
            seconds = await copy_batches(conn, COPY_RAW, rows, size)
    raw = CeilingResult(n, size, -(-n // size), seconds, n / seconds, "COPY, txn per batch")
    say("storage", f"raw COPY: {raw.rows_per_s:,.0f} rows/s")
    say("storage", f"in-process finaliser: Finalizer.decide on {n} bookings")
    with world.monitor.measure("finaliser-in-process"):
        seconds = await finaliser_in_process(world.base_settings, inproc_event, n, size)
    inproc = CeilingResult(
        n, size, -(-n // size), seconds, n / seconds, "Finalizer.decide: Redis + PostgreSQL"
    )
    say("storage", f"in-process finaliser: {inproc.rows_per_s:,.0f} decisions/s")
    return raw, inproc


FOREIGN_KEYS: LiteralString = (
    "SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint"
    " WHERE conrelid = 'bookings'::regclass AND contype = 'f'"
)


async def create_raw_table(conn: Conn) -> None:
    """bookings_raw: a copy of the current `bookings` table with its columns, checks,
    indexes and foreign keys (LIKE copies all but the foreign keys, added one by one), so
    the ceiling follows the schema as migrations change it."""
    await conn.execute("CREATE TABLE bookings_raw (LIKE bookings INCLUDING ALL)")
    for fk in await (await conn.execute(FOREIGN_KEYS)).fetchall():
        # The definition comes from the server's own catalog, not from any input.
        definition = cast(LiteralString, fk["def"])
        await conn.execute(sql.SQL("ALTER TABLE bookings_raw ADD {}").format(sql.SQL(definition)))


async def finaliser_in_process(settings: Settings, event_id: int, n: int, size: int) -> float:
    """The worker's own Finalizer, called directly on batches of one-seat requests for one
    event with `n` seats; returns seconds. Only public calls, so it follows the hot path."""
    pool = open_pool(settings, max_size=4)
    await pool.open()
    client = open_redis(settings)
    inventory = Inventory(client, settings.redis_prefix)
    cache = DecisionCache(client, settings.redis_prefix, settings.status_cache_ttl_s)
    finalizer = Finalizer(settings, pool, inventory, cache)
    now_ms = int(time.time() * 1000)
    requests = [
        BookingRequested(new_booking_id(), event_id, f"inproc-{i}", 1, now_ms) for i in range(n)
    ]
    try:
        await inventory.open(event_id, n)
        started = time.perf_counter()
        for chunk in batches(requests, size):
            await finalizer.finalize(chunk)
        return time.perf_counter() - started
    finally:
        await client.aclose()
        await pool.close()


# ---- 4/5. backlog, naive baseline, real worker


async def prefill_backlog(world: World) -> float:
    """Produce the backlog straight into the drain topic (acks=all, idempotent, batched):
    one hot event, distinct users, one seat each. Returns messages/s."""
    say("finalisation", f"producing {world.sizes.backlog} requests into {world.drain.topic}")
    s, event_id = world.drain, world.events["drain"]
    producer = AIOKafkaProducer(
        bootstrap_servers=s.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    key = event_key(event_id)
    started = time.perf_counter()
    try:
        for lo in range(0, world.sizes.backlog, 5000):
            futures = []
            for i in range(lo, min(lo + 5000, world.sizes.backlog)):
                message = BookingRequested(
                    booking_id=new_booking_id(),
                    event_id=event_id,
                    user_id=f"backlog-{world.run_id}-{i}",
                    quantity=1,
                    requested_at_ms=int(time.time() * 1000),
                )
                futures.append(await producer.send(s.topic, encode_request(message), key=key))
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    rate = world.sizes.backlog / (time.perf_counter() - started)
    say("finalisation", f"backlog produced at {rate:,.0f} msgs/s")
    return rate


@dataclass
class NaiveResult:
    decided: int
    confirmed: int
    seconds: float
    decisions_per_s: float


NAIVE_USER_TOTAL: LiteralString = (
    "SELECT coalesce(sum(quantity), 0)::int AS quantity FROM bookings"
    " WHERE event_id = %(event_id)s AND user_id = %(user_id)s AND status = 'CONFIRMED'"
)
NAIVE_INSERT: LiteralString = (
    "INSERT INTO bookings (booking_id, event_id, user_id, quantity, status, reason,"
    " requested_at, decided_at, seats)"
    " VALUES (%(booking_id)s, %(event_id)s, %(user_id)s, %(quantity)s, %(status)s,"
    " %(reason)s, %(requested_at)s, now(), %(seats)s)"
)
NAIVE_TAKE_SEATS: LiteralString = (
    "UPDATE seats SET booking_id = %(booking_id)s"
    " WHERE event_id = %(event_id)s AND seat_no BETWEEN %(first)s AND %(last)s"
    " AND booking_id IS NULL RETURNING label"
)


async def naive_decide(conn: Conn, event_id: int, request: BookingRequested) -> bool:
    """One booking, one transaction: lock the event, check, seat, insert, count, commit.
    A fresh booking id keeps it apart from the real worker's bookings. Seats come from the
    event's next_seat, as the worker's usually do (every seat here is taken this way)."""
    async with conn.transaction():
        cur = await conn.execute(queries.lock_event, {"event_id": event_id})
        event = await cur.fetchone()
        assert event is not None
        params = {"event_id": event_id, "user_id": request.user_id}
        mine = await (await conn.execute(NAIVE_USER_TOTAL, params)).fetchone()
        used = mine["quantity"] if mine else 0
        ok = used + request.quantity <= event["per_user_limit"] and (
            event["sold"] + request.quantity <= event["capacity"]
        )
        booking = {
            "booking_id": new_booking_id(),
            "event_id": event_id,
            "user_id": request.user_id,
            "quantity": request.quantity,
            "status": "CONFIRMED" if ok else "REJECTED",
            "reason": None if ok else "SOLD_OUT",
            "requested_at": dt.datetime.fromtimestamp(request.requested_at_ms / 1000, dt.UTC),
            "seats": [],
        }
        if ok:
            first = event["next_seat"]
            last = first + request.quantity - 1
            seats = {**booking, "first": first, "last": last}
            taken = await (await conn.execute(NAIVE_TAKE_SEATS, seats)).fetchall()
            booking["seats"] = [row["label"] for row in taken]
            sold = {"event_id": event_id, "quantity": request.quantity, "next_seat": last + 1}
            await conn.execute(queries.add_sold, sold)
        await conn.execute(NAIVE_INSERT, booking)
    return bool(ok)


async def phase_naive(world: World) -> NaiveResult:
    """4. The baseline to beat: the first `naive` messages of the backlog, fetched from Kafka
    in batches (no offset commits, which favours it), decided one transaction each, into an
    event of the baseline database with as many seats as the backlog."""
    n = world.sizes.naive
    consumer = AIOKafkaConsumer(bootstrap_servers=world.drain.bootstrap_servers)
    await consumer.start()
    decided = confirmed = 0
    try:
        partitions = await partitions_of(world.drain.bootstrap_servers, world.drain.topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        async with await connect(world.base_db_url) as conn:
            event_id = await create_bare_event(conn, "bench naive", world.sizes.backlog, 1)
            await conn.commit()
            await analyze(world.base_db_url)
            say("naive", f"deciding {n} bookings, one transaction each")
            with world.monitor.measure("naive"):
                started = time.perf_counter()
                while decided < n and time.perf_counter() - started < 300:
                    got = await consumer.getmany(timeout_ms=1000, max_records=min(500, n - decided))
                    for record in (r for records in got.values() for r in records):
                        confirmed += await naive_decide(
                            conn, event_id, decode_request(record.value)
                        )
                        decided += 1
                seconds = time.perf_counter() - started
    finally:
        await consumer.stop()
    result = NaiveResult(decided, confirmed, seconds, decided / seconds)
    say("naive", f"{result.decisions_per_s:,.0f} decisions/s ({decided} in {seconds:.2f} s)")
    return result


async def partitions_of(bootstrap: list[str], topic: str) -> list[TopicPartition]:
    """The topic's partitions, from the broker's metadata."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [TopicPartition(topic, p["partition"]) for p in described["partitions"]]


@dataclass
class DrainResult:
    backlog: int
    prefill_msgs_per_s: float
    decided: int
    confirmed: int
    seats_assigned: int
    exit_code: int
    wall_s: float
    decisions_per_s: float  # decided / wall time from spawn to exit
    startup_s: float  # spawn -> first batch's decision time
    batches: int
    steady_decisions_per_s: float  # between the first and the last batch
    # Time between consecutive batches' decisions: a long one is a stall (a fetch refill,
    # a checkpoint), which the rates alone do not show.
    gap_median_ms: float
    gap_max_ms: float
    worker_cpu_pct: float


BATCH_TIMES: LiteralString = (
    "SELECT decided_at, count(*) AS n, count(*) FILTER (WHERE status = 'CONFIRMED') AS ok"
    " FROM bookings WHERE event_id = %(event_id)s GROUP BY decided_at ORDER BY decided_at"
)
SEATS_TAKEN: LiteralString = (
    "SELECT count(*) AS n FROM seats WHERE event_id = %(event_id)s AND booking_id IS NOT NULL"
)


async def phase_finalisation(world: World, prefill_rate: float) -> DrainResult:
    """5. The real worker drains the backlog and exits (--stop-when-idle). Every batch has
    one `decided_at`, so the ledger tells when each batch was decided."""
    event_id = world.events["drain"]
    say("finalisation", f"worker draining {world.sizes.backlog} requests for event {event_id}")
    with world.monitor.measure("finalisation") as usage:
        spawned_wall, spawned = time.time(), time.monotonic()
        proc = world.pipeline.start_worker("--stop-when-idle", settings=world.drain)
        world.monitor.watch("worker-drain", proc.pid)
        ended = await wait_child(proc, world.sizes.drain_timeout_s, started=spawned)
        usage.cpu_pct["worker-drain"] = 100 * ended.cpu_s / ended.wall_s
    world.monitor.unwatch("worker-drain")
    async with await connect(world.settings.database_url) as conn:
        rows = await (await conn.execute(BATCH_TIMES, {"event_id": event_id})).fetchall()
        seats = await (await conn.execute(SEATS_TAKEN, {"event_id": event_id})).fetchone()
    decided = sum(r["n"] for r in rows)
    first = rows[0]["decided_at"].timestamp() if rows else spawned_wall
    last = rows[-1]["decided_at"].timestamp() if rows else spawned_wall
    steady = (decided - rows[-1]["n"]) / (last - first) if len(rows) > 1 else 0.0
    times = [r["decided_at"].timestamp() for r in rows]
    gaps = sorted(1000 * (b - a) for a, b in itertools.pairwise(times)) or [0.0]
    result = DrainResult(
        backlog=world.sizes.backlog,
        prefill_msgs_per_s=prefill_rate,
        decided=decided,
        confirmed=sum(r["ok"] for r in rows),
        seats_assigned=seats["n"] if seats else 0,
        exit_code=ended.code,
        wall_s=ended.wall_s,
        decisions_per_s=decided / ended.wall_s,
        startup_s=first - spawned_wall,
        batches=len(rows),
        steady_decisions_per_s=steady,
        gap_median_ms=gaps[len(gaps) // 2],
        gap_max_ms=gaps[-1],
        worker_cpu_pct=100 * ended.cpu_s / ended.wall_s,
    )
    say(
        "finalisation",
        f"{decided} decided in {ended.wall_s:.2f} s (exit {ended.code}): "
        f"{result.decisions_per_s:,.0f}/s incl. startup ({result.startup_s:.2f} s), "
        f"{steady:,.0f}/s steady over {len(rows)} batches",
    )
    return result


# ---- 6/7. flash sale and sold-out fast path


async def skip_to_end(settings: Settings) -> None:
    """Commit the group's offsets at the topic's end, so the worker decides only what comes
    next, not the intake phase's requests (which went to the same topic)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.consumer_group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partitions = await partitions_of(settings.bootstrap_servers, settings.topic)
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit(dict(ends))
    finally:
        await consumer.stop()


async def start_live_worker(world: World) -> None:
    """The flash sale's worker; ready once it has decided a booking for the warm-up event."""
    await skip_to_end(world.settings)
    proc = world.pipeline.start_worker()
    world.monitor.watch("worker", proc.pid)
    client = await api_client(world.pipeline.url)
    body = b'{"event_id":%d,"user_id":"warm-%s","quantity":1}' % (
        world.events["warm"],
        world.run_id.encode(),
    )
    try:
        status, raw = await client.request("POST", "/api/bookings", body)
        if status != 202:
            raise RuntimeError(f"warm-up booking refused: {status} {raw[:300]!r}")
        booking_id = json.loads(raw)["booking_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}")
            _, view = await client.get_json(f"/api/bookings/{booking_id}")
            if isinstance(view, dict) and view.get("status") not in (None, "PENDING"):
                return
            await asyncio.sleep(0.1)
    finally:
        client.close()
    raise TimeoutError("the worker did not decide the warm-up booking within 60 s")


@dataclass
class FlashResult:
    requests: int
    seats: int
    offered_rps: float
    achieved_rps: float
    statuses: dict[str, int]
    sold_out_fast_path: int  # 409s answered by the API from the gate
    http_p50_ms: float
    http_p99_ms: float
    max_dispatch_lag_ms: float
    accepted: int
    decided: int
    confirmed: int
    last_202_to_all_decided_s: float | None  # until the ledger held every accepted booking
    last_202_to_last_decided_at_s: float | None  # max(decided_at) - last 202
    decision_p50_ms: float
    decision_p99_ms: float
    decision_max_ms: float
    audit_verdict: str
    loadgen_cpu_pct: float
    kafka_ack_mean_ms: float | None
    # To tell a stall's cause: when the slowest decision's request came, and how many
    # PostgreSQL checkpoints ran during the sale (None: the server's view was unreadable).
    worst_at_s: float = 0.0  # seconds after the sale's first request
    checkpoints: int | None = None


# PostgreSQL 15/16 (pg_stat_bgwriter); 17 moved these counters to pg_stat_checkpointer.
CHECKPOINTS: LiteralString = "SELECT checkpoints_timed + checkpoints_req AS n FROM pg_stat_bgwriter"


async def checkpoint_count(conn: Conn) -> int | None:
    try:
        row = await (await conn.execute(CHECKPOINTS)).fetchone()
    except psycopg.Error:
        return None
    return int(row["n"]) if row else None


DECIDED_COUNT: LiteralString = "SELECT count(*) AS n FROM bookings WHERE event_id = %(event_id)s"
DECISION_LATENCY: LiteralString = (
    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50,"
    " percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99, max(ms) AS worst,"
    " extract(epoch FROM max(decided_at))::float8 AS last_decided,"
    " count(*) FILTER (WHERE status = 'CONFIRMED') AS confirmed,"
    " extract(epoch FROM (array_agg(requested_at ORDER BY ms DESC))[1] - min(requested_at))"
    "::float8 AS worst_at_s"
    " FROM (SELECT status, requested_at, decided_at,"
    "  extract(epoch FROM decided_at - requested_at)::float8 * 1000 AS ms"
    "  FROM bookings WHERE event_id = %(event_id)s) AS b"
)


class DecidedWatcher:
    """Polls the ledger's count of the event's bookings every 50 ms from the start of the
    firing, and remembers when each count was first seen, so "all decided" is timed even
    when the last decision lands while the client is still sending (409s)."""

    def __init__(self, conn: Conn, event_id: int) -> None:
        self._conn = conn
        self._event_id = event_id
        self.seen: list[tuple[float, int]] = []  # (time.time(), count) on every change

    async def run(self) -> None:
        while True:
            cur = await self._conn.execute(DECIDED_COUNT, {"event_id": self._event_id})
            row = await cur.fetchone()
            count = row["n"] if row else 0
            if not self.seen or count != self.seen[-1][1]:
                self.seen.append((time.time(), count))
            await asyncio.sleep(0.05)

    def reached(self, target: int) -> float | None:
        """When the count first reached `target` (time.time()), if it has."""
        return next((t for t, n in self.seen if n >= target), None)

    async def wait_for(self, target: int, timeout_s: float) -> float | None:
        deadline = time.monotonic() + timeout_s
        next_report = time.monotonic() + 5
        while (done := self.reached(target)) is None and time.monotonic() < deadline:
            if time.monotonic() >= next_report:
                next_report += 5
                say("flash-sale", f"{self.seen[-1][1] if self.seen else 0}/{target} decided")
            await asyncio.sleep(0.05)
        return done


async def fire_and_watch(
    world: World, client: Client, conn: Conn, rate: float
) -> tuple[Paced, float | None]:
    """The paced firing, with the ledger watched throughout; returns what the client saw and
    when the ledger held every accepted booking (None if not within the timeout)."""
    s, event_id = world.sizes, world.events["flash"]
    watcher = DecidedWatcher(conn, event_id)
    watching = asyncio.create_task(watcher.run())
    try:
        with world.monitor.measure("flash-sale", bench_is_loadgen=True):
            bodies = booking_bodies(event_id, s.flash_requests)
            paced = await paced_fire(client, bodies, rate, "flash-sale")
            accepted = paced.statuses["202"]
            say("flash-sale", f"fired: {dict(paced.statuses)}; waiting for {accepted} decisions")
            all_decided = await watcher.wait_for(accepted, s.decide_timeout_s)
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    return paced, all_decided


async def phase_flash(world: World, intake_rps: float) -> FlashResult:
    """6. API + worker; requests for the flash event offered at half the intake rate."""
    s, event_id = world.sizes, world.events["flash"]
    await start_live_worker(world)
    rate = max(intake_rps / 2, 1.0)
    say("flash-sale", f"{s.flash_requests} requests for {s.flash_seats} seats at {rate:,.0f}/s")
    client = Client(local_target(world.pipeline.url), s.paced_connections, timeout_s=30.0)
    async with await connect(world.settings.database_url) as conn:
        await conn.set_autocommit(True)
        try:
            before = await produce_totals(world.pipeline.url)
            checkpoints_before = await checkpoint_count(conn)
            paced, all_decided = await fire_and_watch(world, client, conn, rate)
            checkpoints_after = await checkpoint_count(conn)
            ack_ms = mean_ms(before, await produce_totals(world.pipeline.url))
            row = await (await conn.execute(DECISION_LATENCY, {"event_id": event_id})).fetchone()
            count = await (await conn.execute(DECIDED_COUNT, {"event_id": event_id})).fetchone()
            audit = await settled_audit(
                client, world.settings.admin_token, event_id, time.monotonic() + 10
            )
        finally:
            client.close()
    assert row is not None and count is not None
    last_202 = paced.last_202
    return FlashResult(
        requests=s.flash_requests,
        seats=s.flash_seats,
        offered_rps=rate,
        achieved_rps=sum(paced.statuses.values()) / paced.seconds,
        statuses=dict(paced.statuses),
        sold_out_fast_path=paced.statuses["409"],
        http_p50_ms=percentile(paced.latencies_s, 0.5) * 1000,
        http_p99_ms=percentile(paced.latencies_s, 0.99) * 1000,
        max_dispatch_lag_ms=paced.max_dispatch_lag_ms,
        accepted=paced.statuses["202"],
        decided=count["n"],
        confirmed=row["confirmed"] or 0,
        last_202_to_all_decided_s=max(all_decided - last_202, 0.0) if all_decided else None,
        last_202_to_last_decided_at_s=(
            row["last_decided"] - last_202 if row["last_decided"] else None
        ),
        decision_p50_ms=row["p50"] or 0.0,
        decision_p99_ms=row["p99"] or 0.0,
        decision_max_ms=row["worst"] or 0.0,
        audit_verdict=str(audit.get("verdict")),
        loadgen_cpu_pct=100 * paced.cpu_s / paced.seconds,
        kafka_ack_mean_ms=ack_ms,
        worst_at_s=row["worst_at_s"] or 0.0,
        checkpoints=(
            checkpoints_after - checkpoints_before
            if checkpoints_before is not None and checkpoints_after is not None
            else None
        ),
    )


def flash_line(r: FlashResult) -> str:
    gap = f"{r.last_202_to_all_decided_s:.2f} s" if r.last_202_to_all_decided_s else "TIMEOUT"
    return (
        f"{r.achieved_rps:,.0f}/s of {r.offered_rps:,.0f}/s offered, {r.statuses}, "
        f"last 202 -> all decided {gap}, request->decision p50 {r.decision_p50_ms:.0f} ms "
        f"p99 {r.decision_p99_ms:.0f} ms, audit {r.audit_verdict}"
    )


async def phase_sold_out(world: World) -> WrkResult:
    """7. The sold-out fast path: every POST for the sold-out event is answered 409."""
    return await measured_wrk(
        world,
        "sold-out",
        world.pipeline.url,
        world.events["flash"],
        "409",
        world.sizes.http_s,
        "api",
    )


# ---- 8. memory


@dataclass
class MemoryResult:
    process: str
    hwm_mib: float  # VmHWM: peak resident set
    rss_end_mib: float  # VmRSS at the end (or at the last sample before it exited)
    rss_third_mib: float  # VmRSS a third into the sampled life, after warm-up
    rss_max_mib: float
    growth_pct: float  # end vs a third in
    flat: bool | None  # judged for the long-running processes only
    samples: int


def memory_of(monitor: Monitor, name: str, judged: bool) -> MemoryResult | None:
    """Summarise one process' RSS series; 'flat' means it did not grow by more than 10%
    between a third into its life and its end."""
    series = monitor.series.get(name) or []
    last = monitor.last.get(name)
    if not series or last is None:
        return None
    third = series[len(series) // 3].rss_kib
    end = series[-1].rss_kib
    growth = 100 * (end - third) / third
    return MemoryResult(
        process=name,
        hwm_mib=last.hwm_kib / MIB,
        rss_end_mib=end / MIB,
        rss_third_mib=third / MIB,
        rss_max_mib=max(s.rss_kib for s in series) / MIB,
        growth_pct=growth,
        flat=growth <= 10.0 if judged else None,
        samples=len(series),
    )


# ------------------------------------------------------------------------------ report


@dataclass
class Row:
    measurement: str
    result: str
    detail: str = ""
    ratio: str = ""
    target: str = ""
    passed: bool | None = None


def verdict(passed: bool | None) -> str:
    return "" if passed is None else ("PASS" if passed else "FAIL")


def build_rows(r: dict[str, Any]) -> list[Row]:
    """The headline table: each measurement with its ratio and target."""
    ceiling: WrkResult = r["http_ceiling"]
    intake: WrkResult = r["intake"]
    raw, inproc = r["storage"]
    naive: NaiveResult = r["naive"]
    drain: DrainResult = r["finalisation"]
    flash: FlashResult = r["flash"]
    sold: WrkResult = r["sold_out"]
    # Phase 2 is judged against the ceilings measured right before and after it (1, 1a),
    # phase 7 against those right before and after it (1c, 1b). Results saved by older
    # versions of this script have fewer ceilings; the ones there are used.
    ceiling_again: WrkResult = r.get("http_ceiling_again") or ceiling
    around_intake = [ceiling, r.get("http_ceiling_after_intake")]
    around_sold = [r.get("http_ceiling_before_sold_out"), ceiling_again]
    intake_ratio = intake.rps / mean_rps(around_intake)
    intake_cpu = cpu_ratio(intake, around_intake)
    sold_cpu = cpu_ratio(sold, around_sold)
    fin_storage = drain.decisions_per_s / raw.rows_per_s
    fin_naive = drain.decisions_per_s / naive.decisions_per_s
    sold_ratio = sold.rps / mean_rps(around_sold)
    gap = flash.last_202_to_all_decided_s
    rows = [
        Row("1 HTTP ceiling (bare Litestar)", f"{ceiling.rps:,.0f} req/s", _lat(ceiling)),
        Row(
            "2 intake POST -> 202 (acks=all)",
            f"{intake.rps:,.0f} req/s",
            _lat(intake),
            f"{intake_ratio:.0%} of HTTP ceiling {names(around_intake, '1', '1a')} "
            f"({intake_cpu} per CPU-s)",
            ">= 60%",
            intake_ratio >= 0.60,
        ),
        Row(
            "3 storage ceiling (COPY, txn/batch)",
            f"{raw.rows_per_s:,.0f} rows/s",
            f"{raw.rows} rows, batches of {raw.batch_size}",
        ),
        Row(
            "3b finaliser in-process (no Kafka)",
            f"{inproc.rows_per_s:,.0f} decisions/s",
            f"Finalizer.decide on batches of {inproc.batch_size}: Redis gate + PostgreSQL",
            f"{inproc.rows_per_s / raw.rows_per_s:.0%} of storage",
        ),
        Row(
            "4 naive finaliser (txn/booking)",
            f"{naive.decisions_per_s:,.0f} decisions/s",
            f"{naive.decided} bookings",
        ),
        finalisation_row(
            drain,
            f"{fin_storage:.0%} of storage; {fin_naive:.1f}x naive",
            drain.decisions_per_s >= 20_000 and fin_naive >= 20,
        ),
        Row(
            "6 flash sale: last 202 -> all decided",
            f"{gap:.2f} s" if gap is not None else "timeout",
            f"{flash.requests} requests, {flash.seats} seats, {flash.achieved_rps:,.0f}/s of "
            f"{flash.offered_rps:,.0f}/s offered; {flash.statuses}; audit {flash.audit_verdict}",
            "",
            "<= 2 s",
            gap is not None and gap <= 2.0,
        ),
        Row(
            "6 flash sale: request -> decision",
            f"p50 {flash.decision_p50_ms:,.0f} ms, p99 {flash.decision_p99_ms:,.0f} ms",
            f"max {flash.decision_max_ms:,.0f} ms (requested {flash.worst_at_s:.1f} s in; "
            f"{'?' if flash.checkpoints is None else flash.checkpoints} PostgreSQL checkpoints "
            f"during the sale); HTTP p50 {flash.http_p50_ms:.1f} ms "
            f"p99 {flash.http_p99_ms:.1f} ms (from schedule); Kafka ack mean "
            f"{flash.kafka_ack_mean_ms or 0:.1f} ms; {flash.sold_out_fast_path} got the 409 "
            "fast path",
            "",
            "p99 < 500 ms",
            flash.decision_p99_ms < 500,
        ),
        Row(
            "7 sold-out fast path (409)",
            f"{sold.rps:,.0f} req/s",
            _lat(sold),
            f"{sold_ratio:.0%} of HTTP ceiling {names(around_sold, '1c', '1b')} "
            f"({sold_cpu} per CPU-s)",
            ">= 85%",
            sold_ratio >= 0.85,
        ),
    ]
    extra_ceilings: list[tuple[str, WrkResult | None]] = [
        ("1a HTTP ceiling again (after 2)", around_intake[1]),
        ("1c HTTP ceiling again (before 7)", around_sold[0]),
        ("1b HTTP ceiling again (after 7)", None if ceiling_again is ceiling else ceiling_again),
    ]
    at = 1
    for name, again in extra_ceilings:
        if again is not None:
            share = f"{again.rps / ceiling.rps:.0%} of the first"
            rows.insert(at, Row(name, f"{again.rps:,.0f} req/s", _lat(again), share))
            at += 1
    for mem in r["memory"]:
        rows.append(
            Row(
                f"8 memory: {mem.process}",
                f"HWM {mem.hwm_mib:.0f} MiB, RSS {mem.rss_end_mib:.0f} MiB",
                f"RSS {mem.rss_third_mib:.0f} MiB a third in, max {mem.rss_max_mib:.0f} MiB, "
                f"{mem.samples} samples",
                f"{mem.growth_pct:+.1f}%",
                "flat (<= +10%)" if mem.flat is not None else "",
                mem.flat,
            )
        )
    return rows


def finalisation_row(drain: DrainResult, ratio: str = "", passed: bool | None = None) -> Row:
    return Row(
        "5 finalisation (real worker)",
        f"{drain.decisions_per_s:,.0f} decisions/s",
        f"{drain.decided} of {drain.backlog} in {drain.wall_s:.2f} s"
        f"{'' if drain.exit_code == 0 else f' (KILLED at timeout, exit {drain.exit_code})'}"
        f" incl. {drain.startup_s:.2f} s startup; {drain.batches} batches; "
        f"{drain.steady_decisions_per_s:,.0f}/s excl. startup; between batches median "
        f"{drain.gap_median_ms:.0f} ms, max {drain.gap_max_ms:.0f} ms; worker CPU "
        f"{drain.worker_cpu_pct:.0f}%",
        ratio,
        ">= 20,000/s and >= 20x naive",
        passed,
    )


def _lat(w: WrkResult) -> str:
    ack = f", Kafka ack mean {w.kafka_ack_mean_ms:.1f} ms" if w.kafka_ack_mean_ms else ""
    per_cpu = w.per_cpu_second
    server = f", server CPU {w.server_cpu_pct:.0f}% = {per_cpu:,.0f} per CPU-s" if per_cpu else ""
    return (
        f"p50 {w.p50_ms:.1f} ms, p99 {w.p99_ms:.1f} ms, {w.connections} conns, "
        f"wrk CPU {w.loadgen_cpu_pct:.0f}%{server}{ack}"
    )


def mean_rps(ceilings: Sequence[WrkResult | None]) -> float:
    """The mean rate of the ceiling measurements that exist."""
    rates = [c.rps for c in ceilings if c is not None]
    return sum(rates) / len(rates)


def names(ceilings: Sequence[WrkResult | None], before: str, after: str) -> str:
    """Which ceiling measurements a ratio was taken against: "1 and 1a", or just one."""
    there = [name for name, c in zip((before, after), ceilings, strict=True) if c is not None]
    return " and ".join(there)


def cpu_ratio(w: WrkResult, ceilings: Sequence[WrkResult | None]) -> str:
    """The ratio of answers per server CPU-second: what the ratio would be if both servers
    had had a whole core (the machine is shared, so the CPU they got varies)."""
    best = [c.per_cpu_second for c in ceilings if c is not None and c.per_cpu_second]
    mine = w.per_cpu_second
    return f"{mine / (sum(best) / len(best)):.0%}" if mine and best else "n/a"


def markdown(meta: dict[str, Any], rows: list[Row], usage: list[PhaseUsage]) -> str:
    """The header (machine, versions, load), the results table and the CPU table."""
    m, v = meta["machine"], meta["versions"]
    pg = v["postgresql"]
    lines = [
        f"## Benchmark {meta['started_at']} ({meta['mode']}), commit {meta['commit']}",
        "",
        f"- machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, "
        f"kernel {m['kernel']}; load average at start {m['load_average']}, "
        f"at end {meta['load_average_end']}",
        f"- versions: Python {v['python']}, Kafka {v['kafka']}, PostgreSQL "
        f"{pg['server_version']} (fsync={pg['fsync']}, synchronous_commit="
        f"{pg['synchronous_commit']}), Redis {v['redis']}, litestar {v['litestar']}, uvicorn "
        f"{v['uvicorn']}, aiokafka {v['aiokafka']}, psycopg {v['psycopg']}, {v['wrk']}",
        f"- settings: batch_max={meta['settings']['batch_max']}, partitions="
        f"{meta['settings']['topic_partitions']}; same uvicorn flags for bare app and API: "
        f"{meta['server_flags_match']}",
        f"- took {meta['seconds']:.0f} s; load generators share the 2 cores (CPU below)",
        *noise_lines(usage),
        "",
        "| measurement | result | detail | ratio | target | pass |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [row.measurement, row.result, row.detail, row.ratio, row.target]
        lines.append("| " + " | ".join([*cells, verdict(row.passed)]) + " |")
    lines += [
        "",
        "CPU over each measured window, % of one core (machine busy and steal: % of all "
        "cores; steal = CPU time the hypervisor gave to other VMs). postgres/redis/kafka are "
        "the whole servers; other load = busy time of nothing listed (other users of this "
        "machine):",
        "",
        "| phase | wall s | machine busy | steal | load generator | processes | other load |",
        "|---|---|---|---|---|---|---|",
    ]
    for u in usage:
        gen = f"{u.loadgen_cpu_pct:.0f}%" if u.loadgen_cpu_pct is not None else "-"
        procs = ", ".join(f"{n} {pct:.0f}%" for n, pct in u.cpu_pct.items()) or "-"
        lines.append(
            f"| {u.name} | {u.wall_s:.1f} | {u.machine_busy_pct:.0f}% | {u.steal_pct:.0f}% "
            f"| {gen} | {procs} "
            f"| {max(u.unattributed_pct, 0):.0f}% |"
        )
    return "\n".join(lines) + "\n"


NOISY_PCT = 50.0  # other load above half a core during a measured window: flag it


def noise_lines(usage: list[PhaseUsage]) -> list[str]:
    """A warning naming the measured windows during which others used the machine."""
    noisy = [f"{u.name} {u.unattributed_pct:.0f}%" for u in usage if u.unattributed_pct > NOISY_PCT]
    if not noisy:
        return []
    return [
        "- NOISY: other load (CPU used by nothing of this run) above half a core during: "
        + ", ".join(noisy)
        + "; compare the per-CPU-second ratios, or rerun on a quieter machine"
    ]


def to_jsonable(value: Any) -> Any:
    """Dataclasses (nested, in lists/tuples/dicts) as plain JSON values."""
    if hasattr(value, "__dataclass_fields__"):
        return to_jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


# -------------------------------------------------------------------------------- main


async def run_phases(world: World) -> dict[str, Any]:
    """Every phase, in order; returns their results by name."""
    r: dict[str, Any] = {}
    # Each HTTP ratio is judged against the ceiling measured right before and right after it
    # (their mean): the machine's speed drifts between one 10-second run and the next.
    r["http_ceiling"] = await phase_http_ceiling(world)
    r["intake"] = await phase_intake(world)
    r["http_ceiling_after_intake"] = await phase_http_ceiling(world)
    assert world.pipeline.api is not None
    r["server_flags_match"] = api_flags_match(world.pipeline.api.pid)
    r["storage"] = await phase_storage_ceiling(world)
    prefill_rate = await prefill_backlog(world)
    r["naive"] = await phase_naive(world)
    r["finalisation"] = await phase_finalisation(world, prefill_rate)
    r["flash"] = await phase_flash(world, r["intake"].rps)
    say("flash-sale", flash_line(r["flash"]))
    r["http_ceiling_before_sold_out"] = await phase_http_ceiling(world)
    r["sold_out"] = await phase_sold_out(world)
    r["http_ceiling_again"] = await phase_http_ceiling(world)
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


async def run_finalisation_only(world: World) -> dict[str, Any]:
    """`--only finalisation`: phase 5 alone (under a minute), for work on the worker. Its
    event is created straight in PostgreSQL; the worker builds the gate's counter."""
    async with await connect(world.settings.database_url) as conn:
        world.events["drain"] = await create_bare_event(
            conn, "bench hot event", world.sizes.backlog, 1
        )
    await analyze(world.settings.database_url)
    prefill_rate = await prefill_backlog(world)
    return {"finalisation": await phase_finalisation(world, prefill_rate)}


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
        results = await (run_finalisation_only(world) if args.only else run_phases(world))
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
    meta["seconds"] = time.monotonic() - _T0
    meta["server_flags_match"] = results.pop("server_flags_match", "n/a")
    # Alone, phase 5 has no naive baseline or storage ceiling to be judged against.
    rows = [finalisation_row(results["finalisation"])] if args.only else build_rows(results)
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


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="~10x smaller: a smoke check")
    parser.add_argument("--out", default=str(ROOT / "bench-results"), help="results folder")
    parser.add_argument(
        "--keep", action="store_true", help="keep the databases, Redis keys and topics"
    )
    parser.add_argument(
        "--only",
        choices=["finalisation"],
        help="run one phase alone: the worker draining the backlog (phase 5), unjudged",
    )
    return parser.parse_args(argv)


async def _main_with_signals(args: argparse.Namespace) -> int:
    """SIGTERM/SIGINT cancel the run; the cleanup in `bench` still runs."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    return await bench(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.out = Path(args.out).resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    if shutil.which("wrk") is None:
        print("bench: wrk is missing: apt-get install -y wrk", file=sys.stderr)
        return 2
    resource.setrlimit(resource.RLIMIT_NOFILE, _nofile_limit())
    try:
        return uvloop.run(_main_with_signals(args))
    except asyncio.CancelledError:
        print("bench: interrupted; cleaned up", file=sys.stderr)
        return 130


def _nofile_limit() -> tuple[int, int]:
    """Enough file descriptors for the paced client's connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return (min(max(soft, 4096), hard), hard)


if __name__ == "__main__":
    sys.exit(main())
