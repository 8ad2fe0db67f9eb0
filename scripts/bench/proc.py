"""CPU and memory accounting from /proc: per process, per server tree and for the machine,
over each measured window (what the benchmark's CPU table shows)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scripts.bench.progress import STARTED

CLK_TCK = os.sysconf("SC_CLK_TCK")


BENCH = "bench"  # this process, in the CPU table: the naive client, COPY client, paced client


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


def parent_pid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


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
        now = time.monotonic() - STARTED
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
