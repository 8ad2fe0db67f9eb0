"""The history of a scenario, written once at its end to `history.jsonl` in its log folder,
so that a failed run can be analysed afterwards: every request attempt, every fault window,
and the final state of every booking in the ledger. Line format: docs/chaos.md."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import psycopg

from scripts.chaos.observe import query
from scripts.chaos.scenario import Run

FILE = "history.jsonl"


async def write_history(run: Run, folder: Path) -> Path:
    """Write the history and return its path. The ledger's part is left out, with a line
    saying why, when it cannot be read."""
    rows: list[dict[str, Any]] = []
    error = None
    try:
        rows = await query(
            run.settings,
            "SELECT booking_id::text, event_id, user_id, quantity, status, reason,"
            " extract(epoch FROM requested_at)::float8 AS requested_at,"
            " extract(epoch FROM decided_at)::float8 AS decided_at,"
            " array(SELECT s.label FROM seats s WHERE s.booking_id = b.booking_id"
            "       ORDER BY s.label) AS seats"
            " FROM bookings b WHERE event_id = ANY(%(ids)s)",
            {"ids": list(run.events)},
        )
    except psycopg.Error as exc:
        error = f"ledger unreadable: {exc!r}"
    path = folder / FILE
    # Off the event loop: a soak's history is a few hundred thousand lines.
    await asyncio.to_thread(_write, run, path, rows, error)
    return path


def _write(run: Run, path: Path, rows: list[dict[str, Any]], error: str | None) -> None:
    """Line by line: nothing is held in memory but the line being written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:

        def line(record: dict[str, Any]) -> None:
            out.write(json.dumps(record, separators=(",", ":")) + "\n")

        line(
            {
                "kind": "sale",
                "scenario": run.spec.name,
                "seed": run.result.seed,
                "t0_wall": run.t0_wall,
                "events": {str(e): c for e, c in run.events.items()},
            }
        )
        for w in run.result.fault_windows:
            line({"kind": "fault", "start": w.start, "end": w.end, "text": w.text})
        for o in run.traffic.outcomes:
            ask = o.ask
            for a in o.attempts:
                line(
                    {
                        "kind": "attempt",
                        "request": ask.index,
                        "buyer": ask.user_id,
                        "key": ask.key,
                        "event_id": ask.event_id,
                        "quantity": ask.quantity,
                        "booking_id": o.booking_id,
                        "start": round(a.start - run.t0, 4),
                        "end": round(a.end - run.t0, 4),
                        "status": a.status,
                        "reason": a.reason,
                    }
                )
        if error is not None:
            line({"kind": "error", "text": error})
        for row in rows:
            for at in ("requested_at", "decided_at"):
                row[at] = round(row[at] - run.t0_wall, 4)
            line({"kind": "booking", **row})
