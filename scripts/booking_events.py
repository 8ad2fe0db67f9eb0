"""`python -m scripts.booking_events EVENT_ID...`: does the booking-events topic tell what
the ledger did? Once the relay has sent the outbox, each event's messages must carry every
seq from 1 to the event's last, first seen in rising order (a resend after a crash repeats
a seq, identical, never skips one), and each booking's statuses in seq order must be the
state changes the ledger records for it. Exit status 0 when all agree."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field

import msgspec

from scripts.chaos.observe import query, read_records
from scripts.waiting import poll_until
from shared.config import Settings, load_or_exit
from shared.contracts import BookingEvent, decode_booking_event


@dataclass
class Verdict:
    event_id: int
    messages: int = 0  # on the topic, duplicates included
    changes: int = 0  # in the ledger
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        head = (
            f"event {self.event_id}: {self.changes} state changes in the ledger, "
            f"{self.messages} messages ({self.duplicates} resent)"
        )
        return head + (": OK" if self.ok else "\n  " + "\n  ".join(self.problems[:10]))


def transitions(status: str, held: bool, paid: bool, cancelled: bool) -> list[str]:
    """The state changes a booking went through, from what the ledger keeps of it."""
    if status == "REJECTED":
        return ["REJECTED"]
    out = ["HELD"] if held else []
    if paid or not held:
        out.append("CONFIRMED")
    if status == "EXPIRED":
        out.append("EXPIRED")
    if cancelled:
        out.append("CANCELLED")
    return out


async def relayed(settings: Settings, event_ids: list[int], timeout_s: float = 60.0) -> bool:
    """Wait until the outbox holds nothing unsent for these events."""

    async def drained() -> bool | None:
        rows = await query(
            settings,
            "SELECT count(*) AS n FROM events e LEFT JOIN booking_events_relayed r"
            " ON r.event_id = e.id WHERE e.id = ANY(%(ids)s) AND e.event_seq > COALESCE(r.seq, 0)",
            {"ids": event_ids},
        )
        return True if rows[0]["n"] == 0 else None

    return bool(await poll_until(drained, timeout_s, 0.2))


async def check(settings: Settings, event_ids: list[int], timeout_s: float = 60.0) -> list[Verdict]:
    verdicts = {event_id: Verdict(event_id) for event_id in event_ids}
    if not await relayed(settings, event_ids, timeout_s):
        for verdict in verdicts.values():
            verdict.problems.append(f"outbox not relayed within {timeout_s:g}s")
    expected = await _ledger(settings, event_ids)
    last_seq = {
        row["id"]: row["event_seq"]
        for row in await query(
            settings,
            "SELECT id, event_seq FROM events WHERE id = ANY(%(ids)s)",
            {"ids": event_ids},
        )
    }
    first: dict[int, dict[int, BookingEvent]] = {event_id: {} for event_id in event_ids}
    for record in await read_records(settings, settings.events_topic, timeout_s):
        try:
            message = decode_booking_event(record.value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            for verdict in verdicts.values():
                verdict.problems.append(f"undecodable message at offset {record.offset}: {exc}")
            continue
        if message.event_id not in verdicts:
            continue
        verdict = verdicts[message.event_id]
        verdict.messages += 1
        seen = first[message.event_id]
        if record.key != str(message.event_id).encode():
            verdict.problems.append(f"seq {message.seq}: key {record.key!r}")
        if message.seq in seen:
            verdict.duplicates += 1
            if seen[message.seq] != message:
                verdict.problems.append(f"seq {message.seq} resent with other content")
        else:
            if message.seq != len(seen) + 1:
                verdict.problems.append(f"seq {message.seq} came after seq {len(seen)}")
            seen[message.seq] = message
    for event_id, verdict in verdicts.items():
        seen = first[event_id]
        verdict.changes = sum(map(len, expected[event_id].values()))
        if sorted(seen) != list(range(1, last_seq.get(event_id, 0) + 1)):
            verdict.problems.append(
                f"seqs on the topic: {len(seen)}, the event's last seq: {last_seq.get(event_id)}"
            )
        told: dict[str, list[str]] = {}
        for seq in sorted(seen):
            told.setdefault(str(seen[seq].booking_id), []).append(seen[seq].status.value)
        wrong = [b for b in expected[event_id].keys() | told.keys()
                 if expected[event_id].get(b) != told.get(b)]  # fmt: skip
        if wrong:
            b = wrong[0]
            verdict.problems.append(
                f"{len(wrong)} bookings differ from the ledger, e.g. {b}: ledger "
                f"{expected[event_id].get(b)}, topic {told.get(b)}"
            )
    return list(verdicts.values())


async def _ledger(settings: Settings, event_ids: list[int]) -> dict[int, dict[str, list[str]]]:
    rows = await query(
        settings,
        "SELECT event_id, booking_id::text AS id, status, hold_expires_at IS NOT NULL AS held,"
        " paid_at IS NOT NULL AS paid, cancelled_at IS NOT NULL AS cancelled"
        " FROM bookings WHERE event_id = ANY(%(ids)s)",
        {"ids": event_ids},
    )
    out: dict[int, dict[str, list[str]]] = {event_id: {} for event_id in event_ids}
    for r in rows:
        out[r["event_id"]][r["id"]] = transitions(r["status"], r["held"], r["paid"], r["cancelled"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.booking_events", description=__doc__)
    parser.add_argument("event_ids", nargs="+", type=int, metavar="EVENT_ID")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the relay")
    args = parser.parse_args()
    verdicts = asyncio.run(check(load_or_exit(), args.event_ids, args.timeout))
    for verdict in verdicts:
        print(verdict)
    return 0 if all(v.ok for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
