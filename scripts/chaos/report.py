"""What a scenario found: its checks and numbers (ScenarioResult), its report, and the table
of several scenarios that the command line and the test session print."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scripts.chaos.availability import FaultWindow

# The one scenario whose verdict may rest on the reconciler: it breaks the gate on purpose.
RECONCILER_SCENARIO = "reconciler"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class ScenarioResult:
    name: str
    title: str
    buyer_auth: str = "open"  # how the simulated buyers identified themselves
    seed: int | None = None  # replays the scenario's random choices (--seed)
    requests: int = 0
    demand: int = 0  # tickets asked for
    accepted: int = 0
    confirmed: int = 0
    rejected: int = 0
    sold: int = 0
    capacity: int = 0
    sold_out_409: int = 0
    faults: list[str] = field(default_factory=list)
    # The soak: faults injected by kind, and the kinds skipped with why (their needs unmet).
    fault_kinds: dict[str, int] = field(default_factory=dict)
    skipped_kinds: dict[str, str] = field(default_factory=dict)
    fault_windows: list[FaultWindow] = field(default_factory=list)
    # Of the request attempts started inside a fault window, how many; and the share answered
    # 202 or 409 (None: no attempt inside one).
    attempts_in_faults: int = 0
    availability: float | None = None
    # The longest stretch without a decision in the ledger, and where it began (sale clock).
    longest_gap_s: float | None = None
    longest_gap_at_s: float | None = None
    converge_s: float | None = None
    # What the verdict rests on: the scenario's own checks and the invariants as they held
    # without the reconciler (in the reconciler scenario: once it had run).
    checks: list[Check] = field(default_factory=list)
    reconciler: str | None = None  # its output, when it ran
    # The invariants once the reconciler had run: whether it would have repaired a failure.
    reconciled_checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    audits: dict[int, dict[str, Any]] = field(default_factory=dict)
    duration_s: float = 0.0
    log_dir: str = ""
    history: str = ""  # the JSONL history of every request, fault and booking (history.py)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and bool(self.checks)
            and all(c.ok for c in self.checks)
            and (self.reconciler is None or self.name == RECONCILER_SCENARIO)
        )

    @property
    def reconciler_helped(self) -> bool:
        """The reconciler ran and every invariant held after it."""
        checks = self.reconciled_checks
        return self.reconciler is not None and bool(checks) and all(c.ok for c in checks)

    @property
    def verdict(self) -> str:
        # A scenario that needed the reconciler fails: the worker should have recovered by
        # itself. Whether the reconciler would have hidden it is said, not counted.
        if self.ok:
            return "PASS"
        if self.reconciler is None or self.name == RECONCILER_SCENARIO:
            return "FAIL"
        return f"FAIL (reconciler {'would repair it' if self.reconciler_helped else 'no help'})"

    @property
    def gap(self) -> str:
        if self.longest_gap_s is None or self.longest_gap_at_s is None:
            return "-"
        return f"{self.longest_gap_s:.1f}s@{self.longest_gap_at_s:.0f}s"

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"{self.name}: no check named {name!r}")

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def report(self) -> str:
        lines = [
            f"{self.name}: {self.verdict} ({self.title}); buyers in {self.buyer_auth} mode; "
            f"logs in {self.log_dir}"
        ]
        if self.error:
            lines.append(f"  error: {self.error}")
        lines += [f"  fault  {f}" for f in self.faults]
        if self.fault_kinds or self.skipped_kinds:
            lines.append(f"  fault kinds {self.fault_kinds}; skipped {self.skipped_kinds}")
        for c in self.checks:
            lines.append(f"  {'ok  ' if c.ok else 'FAIL'}   {c.name}: {c.detail}")
        if self.reconciler is not None:
            lines.append(f"  reconciler ran: {self.reconciler.strip()[:500]}")
            still = [c for c in self.reconciled_checks if not c.ok]
            lines.append(
                f"  after the reconciler, {len(self.reconciled_checks) - len(still)} of "
                f"{len(self.reconciled_checks)} invariant checks held"
                + ("" if self.name == RECONCILER_SCENARIO else "; the verdict ignores it")
            )
            lines += [f"  FAIL   after the reconciler: {c.name}: {c.detail}" for c in still]
        lines += [f"  note   {n}" for n in self.notes]
        lines.append(f"  codes  {dict(sorted(self.codes.items()))}")
        if self.history:
            lines.append(f"  history {self.history}")
        lines.append(
            f"  availability during faults {_percent(self.availability)} of "
            f"{self.attempts_in_faults} attempts; longest without a decision {self.gap}; "
            f"converged in {_seconds(self.converge_s)}"
        )
        return "\n".join(lines)


def table(results: list[ScenarioResult]) -> str:
    """One row a scenario. avail: the share of attempts made during faults answered 202 or
    409; gap: the longest stretch without a decision, @ where it began on the sale clock."""
    head = (
        f"{'scenario':<17}{'buyers':>7}{'requests':>9}{'accepted':>9}{'confirmed':>10}{'rejected':>9}"
        f"{'409':>6}{'sold/cap':>12}{'faults':>7}{'avail':>8}{'gap':>11}{'converge':>10}  verdict"
    )
    rows = [head, "-" * len(head)]
    for r in results:
        rows.append(
            f"{r.name:<17}{r.buyer_auth:>7}{r.requests:>9}{r.accepted:>9}{r.confirmed:>10}{r.rejected:>9}"
            f"{r.sold_out_409:>6}{f'{r.sold}/{r.capacity}':>12}{len(r.faults):>7}"
            f"{_percent(r.availability):>8}{r.gap:>11}{_seconds(r.converge_s):>10}  {r.verdict}"
        )
    return "\n".join(rows)


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"
