"""Drawing the live view: the panel redrawn in place on a terminal, or one line per refresh."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from scripts.live.summary import QUANTILES, Count, Summary

GREEN, YELLOW, RED, BOLD, RESET = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[1m", "\x1b[0m"


VERDICT_COLOURS = {"CLEAN": GREEN, "IN_FLIGHT": YELLOW, "DRIFT": RED, "OVERSOLD": RED}


OUTCOME_LABELS = {"accepted": "accepted (202)", "sold_out": "sold out (409)"}


def _rate(count: Count | None) -> str:
    if count is None or count.rate is None:
        return "-"
    return f"{count.rate:.1f}"


def _total(count: Count | None) -> str:
    return "-" if count is None else f"{count.total:.0f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.2f}s"


def _row(label: str, count: Count | None) -> str:
    return f"  {label:<34}{_rate(count):>12}{_total(count):>12}"


def render_panel(
    summary: Summary, interval: float | None = None, colour: bool = False
) -> list[str]:
    """The full view, one string per line; `interval` is None for a one-off snapshot."""
    snap = summary.snapshot
    audit, event = snap.audit, snap.event
    name = f' "{event["name"]}"' if event else ""
    refresh = f" - every {interval:g}s, Ctrl-C stops" if interval is not None else ""
    api = "up" if snap.api is not None else f"DOWN: {snap.api_error}"
    lines = [
        f"tickets live - event {snap.event_id}{name} - {snap.wall:%H:%M:%S} UTC{refresh}",
        f"API {api} - workers {summary.workers_up}/{len(snap.workers)} up",
    ]
    for url, error in zip(snap.worker_urls, snap.worker_errors, strict=True):
        if error is not None:
            lines.append(f"  worker {url}: {error}")
    lines += ["", f"{'INTAKE (API, all events)':<36}{'per second':>12}{'total':>12}"]
    lines.append(_row("booking requests", summary.requests))
    for outcome, count in summary.outcomes.items():
        lines.append(_row("  " + OUTCOME_LABELS.get(outcome, outcome), count))
    lines.append("DECISIONS (workers, all events)")
    lines.append(_row("decided", summary.decided))
    for (status, reason), count in summary.decisions.items():
        label = status.lower() if reason in ("", "none") else f"{status.lower()} {reason}"
        lines.append(_row("  " + label, count))
    lines.append(_row("dead letters", summary.dead_letters))
    percentiles = "  ".join(f"p{q * 100:g} {_duration(summary.latency.get(q))}" for q in QUANTILES)
    window = f"  ({summary.latency_window})" if summary.latency_window else ""
    lines.append(f"  decision latency  {percentiles}{window}")
    lines.append("BACKLOG")
    lag = "unknown (no answer from a worker)" if summary.lag is None else f"{summary.lag} messages"
    lines.append(f"  consumer lag  {lag}")
    lines.append("LIVE UPDATES")
    lines.append(_row("booking events relayed", summary.relayed))
    unsent = "unknown" if summary.outbox_unsent is None else str(summary.outbox_unsent)
    lines.append(f"  outbox not yet relayed  {unsent}")
    streams = ", ".join(f"{name} {n}" for name, n in sorted(summary.streams.items())) or "none"
    lines.append(f"  open streams (API)  {streams}")
    if snap.notifier_error is not None:
        lines.append(f"  notifier  not answering ({snap.notifier_error})")
    elif summary.notify_lag is not None:
        lines.append(f"  notifier lag  {summary.notify_lag} booking events")
    lines.append(f"EVENT {snap.event_id} (audit)")
    if audit is not None:
        lines.append(
            f"  capacity {audit['capacity']}  sold {audit['sold']}  "
            f"available {audit['redis_available']}  in flight {audit['in_flight']}  "
            f"drift {audit['drift']}"
        )
        lines.append(
            f"  bookings confirmed {audit['confirmed_bookings']}  "
            f"rejected {audit['rejected_bookings']}"
        )
    elif event is not None:
        lines.append(
            f"  capacity {event['capacity']}  sold {event['sold']}  available {event['available']}"
        )
    verdict = summary.verdict
    if verdict is None:
        lines.append(f"  verdict  ? ({snap.audit_error})")
    else:
        shown = f"{VERDICT_COLOURS.get(verdict, '')}{BOLD}{verdict}{RESET}" if colour else verdict
        lines.append(f"  verdict  {shown}{_busy_note(summary)}")
    return lines


def _busy_note(summary: Summary) -> str:
    """The audit reads the ledger and the gate one after the other, so while the worker is
    deciding it can catch them a batch apart: DRIFT is only conclusive once the sale is idle."""
    if summary.verdict != "DRIFT":
        return ""
    busy = (summary.lag or 0) > 0 or bool(summary.decided and summary.decided.rate)
    return "  (worker busy: conclusive only if it stays once idle)" if busy else ""


def render_line(summary: Summary) -> str:
    """One line per refresh, for logs and pipes."""
    snap = summary.snapshot
    confirmed = sum(c.total for (s, _), c in summary.decisions.items() if s == "CONFIRMED")
    rejected = sum(c.total for (s, _), c in summary.decisions.items() if s == "REJECTED")
    p95 = _duration(summary.latency.get(0.95))
    parts = [
        f"{snap.wall:%Y-%m-%dT%H:%M:%S}Z",
        f"event={snap.event_id}",
        f"requests/s={_rate(summary.requests)}",
        f"accepted/s={_rate(summary.outcomes.get('accepted'))}",
        f"decided/s={_rate(summary.decided)}",
        f"accepted={_total(summary.outcomes.get('accepted'))}",
        f"sold_out={_total(summary.outcomes.get('sold_out'))}",
        f"confirmed={confirmed:.0f}" if summary.decided else "confirmed=-",
        f"rejected={rejected:.0f}" if summary.decided else "rejected=-",
        f"lag={'-' if summary.lag is None else summary.lag}",
        f"p95={p95}",
    ]
    audit = snap.audit
    if audit is not None:
        parts.append(f"sold={audit['sold']}/{audit['capacity']}")
    parts.append(f"verdict={summary.verdict or '?'}")
    if _busy_note(summary):
        parts.append("(worker busy)")
    if snap.api_error:
        parts.append(f"api={snap.api_error!r}")
    return " ".join(parts)


class Screen:
    """Redraws the view in place with ANSI escapes: home, overwrite, clear the rest."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        # Hide the cursor and stop wrapping (long lines are clipped, not folded), clear once.
        out.write("\x1b[?25l\x1b[?7l\x1b[2J")

    def draw(self, lines: Sequence[str]) -> None:
        body = "".join(f"{line}\x1b[K\n" for line in lines)
        self._out.write(f"\x1b[H{body}\x1b[J")
        self._out.flush()

    def close(self) -> None:
        self._out.write("\x1b[?7h\x1b[?25h")
        self._out.flush()
