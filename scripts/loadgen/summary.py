"""The attack's human-readable report: counts, rates, holds and seats, then the audit and
its verdict."""

from __future__ import annotations

import json

from scripts.loadgen.attack import Result


def _hold_rows(result: Result) -> list[tuple[str, str]]:
    if result.holds is None:
        return []
    h = result.holds
    return [
        (
            "holds",
            f"{h['held']} HELD ({result.hold_seconds} s): {h['paid']} paid ({h['late']} too "
            f"late), {h['confirmed']} CONFIRMED, {h['expired']} EXPIRED ({h['refunded']} paid "
            "too late for the worker: refund due)",
        )
    ]


def _seat_rows(result: Result) -> list[tuple[str, str]]:
    if result.seats is None:
        return []
    refused = ", ".join(f"{k}: {v}" for k, v in result.seats["refused"].items()) or "none"
    what = "the seats named" if result.seat_mode == "specific" else "seats side by side"
    return [("seats", f"{result.seats['got_what_asked']} got {what}; refused {refused}")]


def _queue_rows(result: Result) -> list[tuple[str, str]]:
    if result.queue is None:
        return []
    q = result.queue
    ends = q["ends"]
    others = {k: v for k, v in ends.items() if k not in ("ADMITTED", "SOLD_OUT")}
    return [
        (
            "queue",
            f"{q['joined']} joined in {q['join_seconds']:.2f} s; {ends.get('ADMITTED', 0)} "
            f"admitted, {ends.get('SOLD_OUT', 0)} told SOLD_OUT"
            + (f", {others}" if others else "")
            + f"; {q['polls']} polls over {q['wait_seconds']:.2f} s",
        )
    ]


BUYERS = {
    "open": "open mode: each named by user_id in the body",
    "token": "token mode: each sends a token of their own, signed with TICKETS_JWT_SECRET",
}


def summary(result: Result) -> str:
    """The human-readable report: counts, rates, then the audit and its verdict."""
    rejected = sum(result.rejected.values())
    reasons = ", ".join(f"{k}: {v}" for k, v in result.rejected.items())
    errors = ", ".join(f"{k}: {v}" for k, v in result.errors.items()) or "none"
    drain = "n/a" if result.drain_seconds is None else f"{result.drain_seconds:.2f} s"
    drain += f" (by decided_at; all checked {result.decide_wait_seconds:.2f} s after firing)"
    rows = [
        ("buyers", BUYERS[result.buyer_auth]),
        *_queue_rows(result),
        ("sent", f"{result.sent}"),
        ("accepted (202)", f"{result.accepted}"),
        ("sold out (409)", f"{result.sold_out}"),
        ("other errors", errors),
        ("confirmed", f"{result.confirmed}"),
        *_hold_rows(result),
        ("rejected", f"{rejected}" + (f" ({reasons})" if reasons else "")),
        ("still pending", f"{result.pending}"),
        *([("unreadable (API errors)", f"{result.unreadable}")] if result.unreadable else []),
        *([("unknown (404)", f"{result.missing}")] if result.missing else []),
        (
            "requests/s",
            f"{result.requests_per_second:,.0f} ({result.sent} in {result.fire_seconds:.2f} s, "
            f"{result.concurrency} connections)",
        ),
        ("last 202 -> all decided", drain),
        *_seat_rows(result),
    ]
    kind = "new demo event" if result.fresh_event else "event"
    lines = [
        f"attack on {kind} {result.event_id} {result.event_name!r} "
        f"(capacity {result.capacity}) at {result.url}",
        *(f"  {name:<24} {value}" for name, value in rows),
        f"audit of event {result.event_id}:",
        json.dumps(result.audit, indent=2),
        f"verdict: {result.verdict}",
    ]
    if result.errors:
        lines.append(
            f"warning: {sum(result.errors.values())} requests failed ({errors}): they were "
            "neither accepted nor refused as sold out; see the API log"
        )
    if result.ok:
        lines.append("result: PASS")
    else:
        lines += [f"result: FAIL: {reason}" for reason in result.failures]
    return "\n".join(lines)
