"""Phase 8: memory, the RSS series of each process summarised, and judged flat or growing
for the long-running ones."""

from __future__ import annotations

from dataclasses import dataclass

from scripts.bench.proc import Monitor
from scripts.bench.world import MIB


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
