"""The invariant checks every scenario ends with, once the faults have healed: through the
API, by direct SQL on the scenario's ledger, on Kafka (committed offsets, dead letters, the
booking-events topic) and, where a notifier runs, on the mails the SMTP sink received."""

from __future__ import annotations

from collections import Counter
from typing import Any

import msgspec
import psycopg
from aiokafka.errors import KafkaError

from scripts import booking_events
from scripts.chaos.observe import caught_up, query, read_records, read_topic
from scripts.chaos.report import Check
from scripts.chaos.scenario import Run
from scripts.chaos.traffic import PER_USER_LIMIT, Outcome, address_of
from scripts.loadgen.seat_modes import side_by_side
from scripts.mail_sink import MailSink, Received
from shared.contracts import decode_booking_event

# Why a booking may be refused: stock, the per-user limit, and seat choices.
REASONS = ("SOLD_OUT", "LIMIT_EXCEEDED", "SEAT_TAKEN", "NO_ADJACENT_SEATS")
# The state changes the buyer is mailed about (docs/notifications.md); HELD and REJECTED not.
MAILED = ("CONFIRMED", "EXPIRED", "CANCELLED")
# How long the notifier may take to mail what is left once the topic is complete.
MAILS_TIMEOUT_S = 60.0


async def invariants(run: Run, views: dict[str, dict[str, Any]] | None) -> list[Check]:
    """Every invariant check, given the decided bookings as the API reads them back (None
    when they did not all converge in time)."""
    run.collect = []
    try:
        await _verify(run, views)
        return run.collect
    finally:
        run.collect = None


async def _verify(run: Run, views: dict[str, dict[str, Any]] | None) -> None:
    traffic, expect = run.traffic, run.expect
    accepted = traffic.accepted
    finals = Counter(str(o.status) for o in traffic.outcomes)
    expect(
        "every request got a final answer within its retries",
        finals["gave_up"] == 0 and finals["pending"] == 0,
        f"finals {dict(finals)}",
    )
    expect(
        "final answers are 202 or 409 SOLD_OUT",
        set(finals) <= {"202", "409"},
        f"finals {dict(finals)}",
    )
    replays = [(o, r) for o in traffic.outcomes for r in o.replays]
    if replays:
        same = [o.booking_id == bid for o, (code, bid) in replays if code == 202]
        expect(
            "replays with the same Idempotency-Key return the same booking",
            len(same) == len(replays) and all(same),
            f"{len(replays)} replays, {sum(same)} answered 202 with the same booking id",
        )
    expect(
        "every accepted booking is decided (API)",
        views is not None and set(views) == set(accepted),
        f"{len(accepted)} accepted, {len(views or {})} read back decided",
    )
    views = views or {}

    # --- through the API
    wrong = [
        b
        for b, v in views.items()
        if (v["event_id"], v["user_id"], v["quantity"])
        != (accepted[b].ask.event_id, accepted[b].ask.user_id, accepted[b].ask.quantity)
    ]
    expect("bookings read back as requested (API)", not wrong, f"{len(wrong)} differ: {wrong[:3]}")
    bad_seats = [
        b
        for b, v in views.items()
        if (v["status"] == "CONFIRMED" and (len(v["seats"]) != v["quantity"] or v["reason"]))
        or (v["status"] == "REJECTED" and (v["seats"] or v["reason"] not in REASONS))
    ]
    expect(
        "confirmed bookings have their seats, rejected ones a reason and none (API)",
        not bad_seats,
        f"{len(bad_seats)} wrong: {bad_seats[:3]}",
    )
    _check_choices(run, views)
    holds = run.spec.hold_seconds > 0
    if holds:
        await _check_holds(run, views)
    demand = Counter[int]()
    for o in traffic.outcomes:
        demand[o.ask.event_id] += o.ask.quantity
    for event_id, capacity in run.events.items():
        mine = [v for v in views.values() if v["event_id"] == event_id]
        seats = [s for v in mine if v["status"] == "CONFIRMED" for s in v["seats"]]
        confirmed_qty = sum(v["quantity"] for v in mine if v["status"] == "CONFIRMED")
        per_user = Counter[str]()
        for v in mine:
            if v["status"] == "CONFIRMED":
                per_user[v["user_id"]] += v["quantity"]
        expect(
            f"event {event_id}: no seat twice (API)",
            len(seats) == len(set(seats)),
            f"{len(seats)} seats, {len(set(seats))} distinct",
        )
        # With holds, seats whose hold ran out after the last buyer came stay unsold.
        sells_out = demand[event_id] > capacity and not holds
        expect(
            f"event {event_id}: confirmed <= capacity, == capacity as demand exceeds it (API)",
            confirmed_qty == capacity if sells_out else confirmed_qty <= capacity,
            f"confirmed {confirmed_qty}, capacity {capacity}, demand {demand[event_id]}",
        )
        top = max(per_user.values(), default=0)
        expect(
            f"event {event_id}: no user above the limit (API)",
            top <= PER_USER_LIMIT,
            f"most by one user {top}, limit {PER_USER_LIMIT}",
        )
        audit = await run.api.audit(event_id)
        run.result.audits[event_id] = audit or {}
        expect(
            f"event {event_id}: audit CLEAN and consistent",
            audit is not None
            and audit["verdict"] == "CLEAN"
            and audit["sold"] == confirmed_qty == audit["seats_assigned"]
            and audit["confirmed_bookings"] == sum(1 for v in mine if v["status"] == "CONFIRMED")
            and audit["redis_available"] == capacity - audit["sold"]
            and audit["held_quantity"] == 0
            and audit["double_assigned_seats"] == 0
            and audit.get("misassigned_seats", 0) == 0
            and not audit["oversold"],
            f"audit {audit}",
        )
        view = await run.api.event(event_id)
        expect(
            f"event {event_id}: event view agrees",
            view is not None
            and view["sold"] == confirmed_qty
            and view["available"] == capacity - confirmed_qty,
            f"view {view}",
        )

    # --- by SQL, on the scenario's own database
    try:
        await _verify_sql(run, views, demand)
    except psycopg.Error as exc:
        expect("ledger readable by SQL", False, repr(exc))

    # --- Kafka: offsets and the dead-letter topic
    await run.check_offsets("at the end")
    try:
        parked = await read_topic(run.settings, run.settings.dlq_topic)
    except (KafkaError, OSError, TimeoutError) as exc:
        run.note(f"dead-letter topic unreadable: {exc!r}")
    else:
        expect("nothing dead-lettered", not parked, f"{len(parked)} dead letters")

    # --- the booking-events topic, against the ledger
    try:
        verdicts = await booking_events.check(run.settings, list(run.events))
    except (KafkaError, OSError, TimeoutError, psycopg.Error) as exc:
        expect("booking-events topic readable", False, repr(exc))
    else:
        for verdict in verdicts:
            expect(
                f"event {verdict.event_id}: the booking-events topic tells each state change "
                "once, in seq order, as the ledger did",
                verdict.ok,
                str(verdict),
            )
        if run.pipeline.sink is not None:
            await _check_mails(run, run.pipeline.sink)


async def _verify_sql(run: Run, views: dict[str, dict[str, Any]], demand: Counter[int]) -> None:
    expect, s = run.expect, run.settings
    accepted = set(run.traffic.accepted)
    rows = await query(
        s,
        "SELECT booking_id::text AS id, event_id, user_id, quantity, status FROM bookings "
        "WHERE event_id = ANY(%(ids)s)",
        {"ids": list(run.events)},
    )
    ids = [r["id"] for r in rows]
    decided = set(ids)
    expect(
        "202 booking ids == decided booking ids (SQL)",
        decided == accepted,
        f"{len(accepted)} accepted, {len(decided)} decided; accepted but not decided "
        f"{sorted(accepted - decided)[:3]} ({len(accepted - decided)}); decided but never "
        f"accepted {sorted(decided - accepted)[:3]} ({len(decided - accepted)})",
    )
    expect("no booking id twice (SQL)", len(ids) == len(decided), f"{len(ids)} rows")
    differ = [r["id"] for r in rows if r["id"] in views and views[r["id"]]["status"] != r["status"]]
    expect("API and SQL agree on every status", not differ, f"{len(differ)} differ: {differ[:3]}")
    per_event = await query(
        s,
        """
        SELECT e.id, e.capacity, e.sold, e.per_user_limit,
               (SELECT coalesce(sum(quantity), 0) FROM bookings b
                 WHERE b.event_id = e.id AND b.status = 'CONFIRMED')::int AS confirmed,
               (SELECT count(*) FROM seats t WHERE t.event_id = e.id AND t.booking_id IS NOT NULL)
                 ::int AS seats_taken,
               (SELECT count(*) FROM (SELECT label FROM seats t WHERE t.event_id = e.id
                  AND t.booking_id IS NOT NULL GROUP BY label HAVING count(*) > 1) d)::int
                 AS seats_twice,
               (SELECT coalesce(max(q), 0) FROM (SELECT sum(quantity) AS q FROM bookings b
                  WHERE b.event_id = e.id AND b.status = 'CONFIRMED' GROUP BY user_id) u)::int
                 AS top_user,
               (SELECT count(*) FROM bookings b
                  LEFT JOIN (SELECT t.booking_id, count(*) AS n FROM seats t
                             WHERE t.event_id = e.id AND t.booking_id IS NOT NULL
                             GROUP BY t.booking_id) m ON m.booking_id = b.booking_id
                  WHERE b.event_id = e.id AND (
                    (b.status = 'CONFIRMED' AND b.quantity <> coalesce(m.n, 0))
                    OR (b.status = 'REJECTED' AND m.n IS NOT NULL))
               )::int AS wrong_seats,
               (SELECT count(*) FROM seats t WHERE t.event_id = e.id AND t.booking_id IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.booking_id = t.booking_id
                                  AND b.event_id = e.id AND b.status = 'CONFIRMED'))::int
                 AS stray_seats
        FROM events e WHERE e.id = ANY(%(ids)s) ORDER BY e.id
        """,
        {"ids": list(run.events)},
    )
    for e in per_event:
        eid = e["id"]
        expect(
            f"event {eid}: sold == sum(confirmed) <= capacity (SQL)",
            e["sold"] == e["confirmed"] <= e["capacity"],
            f"sold {e['sold']}, confirmed {e['confirmed']}, capacity {e['capacity']}",
        )
        expect(
            f"event {eid}: no undersell (SQL)",
            e["confirmed"] == e["capacity"]
            or demand[eid] <= e["capacity"]
            or run.spec.hold_seconds > 0,
            f"confirmed {e['confirmed']} of {e['capacity']} with demand {demand[eid]}",
        )
        expect(
            f"event {eid}: seats taken == sold, none twice, each booking its own (SQL)",
            e["seats_taken"] == e["sold"]
            and e["seats_twice"] == e["wrong_seats"] == e["stray_seats"] == 0,
            f"seats taken {e['seats_taken']}, labels twice {e['seats_twice']}, "
            f"bookings with wrong seats {e['wrong_seats']}, seats held by no confirmed booking "
            f"of the event {e['stray_seats']}",
        )
        expect(
            f"event {eid}: no user above the limit (SQL)",
            e["top_user"] <= e["per_user_limit"],
            f"most by one user {e['top_user']}, limit {e['per_user_limit']}",
        )


def _check_choices(run: Run, views: dict[str, dict[str, Any]]) -> None:
    """Buyers who named seats got exactly those (or were refused); groups sit side by side."""
    accepted = run.traffic.accepted
    named = [b for b, o in accepted.items() if o.ask.seats is not None and b in views]
    together = [b for b, o in accepted.items() if o.ask.together and b in views]
    seated = ("CONFIRMED", "EXPIRED")  # an expired hold still lists the seats it had
    wrong_named = [
        b
        for b in named
        if views[b]["status"] in seated
        and sorted(views[b]["seats"]) != sorted(accepted[b].ask.seats or ())
    ]
    apart = [
        b for b in together if views[b]["status"] in seated and not side_by_side(views[b]["seats"])
    ]
    got = Counter(views[b]["status"] for b in named + together)
    run.expect(
        "named seats given exactly, groups side by side (API)",
        not wrong_named and not apart,
        f"{len(named)} named, {len(together)} together, finals {dict(got)}; wrong seats "
        f"{wrong_named[:3]}, groups apart {apart[:3]}",
    )


async def _check_holds(run: Run, views: dict[str, dict[str, Any]]) -> None:
    """Every payment accepted ends CONFIRMED or owed back, never lost; a paid hold is never
    expired; every other hold ran out (an admitted booking of an event with holds was HELD);
    nothing is left HELD."""
    outcomes: list[Outcome] = list(run.traffic.accepted.values())
    paid = [o.booking_id for o in outcomes if o.payment == 202 and o.booking_id in views]
    unpaid = [
        b
        for o in outcomes
        if (b := o.booking_id) in views and o.payment != 202 and views[b]["status"] != "REJECTED"
    ]
    refunds: set[str] = set()
    for event_id in run.events:
        audit = await run.api.audit(event_id)
        refunds |= {str(r["booking_id"]) for r in (audit or {}).get("refunds_due", [])}
    lost = [b for b in paid if views[b]["status"] != "CONFIRMED" and b not in refunds]
    run.expect(
        "every accepted payment ends CONFIRMED or refund_due (API)",
        not lost,
        f"{len(paid)} payments accepted, {len(refunds)} refunds due; lost {lost[:3]}",
    )
    not_expired = [b for b in unpaid if views[b]["status"] != "EXPIRED"]
    run.expect(
        "every hold not paid for ran out: EXPIRED (API)",
        not not_expired and bool(unpaid) and bool(paid),
        f"{len(paid)} holds paid, {len(unpaid)} not; not expired {not_expired[:3]}",
    )
    rows = await query(
        run.settings,
        "SELECT count(*) FILTER (WHERE b.status = 'EXPIRED' AND p.outcome = 'applied')::int"
        " AS expired_paid, count(*)::int AS payments,"
        " count(DISTINCT p.payment_ref)::int AS refs"
        " FROM payments p JOIN bookings b ON b.booking_id = p.booking_id"
        " WHERE p.event_id = ANY(%(ids)s)",
        {"ids": list(run.events)},
    )
    row = rows[0]
    run.expect(
        "a paid hold is never expired; each payment recorded once (SQL)",
        row["expired_paid"] == 0 and row["payments"] == row["refs"] == len(paid),
        f"{row['payments']} payments recorded ({row['refs']} distinct), {len(paid)} accepted, "
        f"{row['expired_paid']} applied to expired bookings",
    )


async def _check_mails(run: Run, sink: MailSink) -> None:
    """Once the notifier's group has committed to the end of the (complete) booking-events
    topic: one mail per change that mails, keyed by its Message-ID, to the booking's buyer;
    none twice, none missing, none for HELD or REJECTED."""
    s, expect = run.settings, run.expect
    try:
        behind = await caught_up(s, s.notify_group, s.events_topic, MAILS_TIMEOUT_S)
        records = await read_records(s, s.events_topic)
        parked = await read_records(s, s.notify_dlq_topic)
    except (KafkaError, OSError, TimeoutError) as exc:
        expect("mails: the notifier's topics readable", False, repr(exc))
        return
    expect(
        "the notifier's group caught up with the booking-events topic",
        not behind,
        behind or f"committed to the end within {MAILS_TIMEOUT_S:g}s",
    )
    expect("nothing dead-lettered by the notifier", not parked, f"{len(parked)} dead letters")
    accepted = run.traffic.accepted
    wanted: dict[str, str] = {}  # Message-ID -> the buyer's address
    unmailed: set[str] = set()  # Message-IDs of HELD and REJECTED
    kinds = Counter[str]()
    for record in records:
        try:
            change = decode_booking_event(record.value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue  # the booking-events check reports it
        message_id = f"<booking-event.{change.event_id}.{change.seq}@tickets>"
        if change.status.value not in MAILED:
            unmailed.add(message_id)
        elif message_id not in wanted:  # a resent message is the same change
            outcome = accepted.get(str(change.booking_id))
            wanted[message_id] = address_of(outcome.ask.user_id if outcome else change.user_id)
            kinds[change.status.value] += 1
    received = sink.received
    count = Counter(m.message_id for m in received)
    wrong = {
        "twice": {m for m, n in count.items() if n > 1},
        "missing": wanted.keys() - count.keys(),
        "for HELD or REJECTED": count.keys() & unmailed,
        "for no change on the topic": count.keys() - wanted.keys() - unmailed,
        "to another address": {
            m.message_id
            for m in received
            if m.message_id in wanted and m.recipients != (wanted[m.message_id],)
        },
    }
    cut = _cut_short(received, wrong["twice"])
    kills = sum(1 for fault in run.result.faults if "notifier" in fault)
    # A mail sent twice is a failure unless it is the window docs/notifications.md admits
    # (killed between the end of DATA and the claim's COMMIT), at most once per kill.
    unexplained = {**wrong, "twice": wrong["twice"] - cut}
    found = sorted(set().union(*unexplained.values()))
    by_status = ", ".join(f"{n} {status}" for status, n in sorted(kinds.items()))
    counts = ", ".join(f"{len(ids)} {what}" for what, ids in wrong.items())
    expect(
        "mails: every CONFIRMED, EXPIRED or CANCELLED change mailed to the booking's buyer, "
        "none for HELD or REJECTED, none twice but in the notifier's crash window",
        bool(wanted) and not found and len(cut) <= kills,
        f"{len(wanted)} changes that mail ({by_status}), {len(received)} mails, {counts}"
        + (f"; e.g. {found[:3]}" if found else "")
        + (
            f"; of those twice, {len(cut)} first sent as the last mail of its connection "
            f"({kills} notifier kills), as when a notifier is killed between the end of DATA "
            "and its claim's COMMIT"
            if wrong["twice"]
            else ""
        ),
    )
    run.note(
        f"mails exactly once: {'yes' if not wrong['twice'] else 'no'} "
        f"({len(wrong['twice'])} of {len(wanted)} sent twice, all in the crash window)"
        if not found
        else "mails exactly once: no"
    )


def _cut_short(received: list[Received], twice: set[str]) -> set[str]:
    """Of the Message-IDs mailed twice, those whose first copy was the last mail of its SMTP
    connection: the notifier that sent it died right after (a notifier that mails it twice
    for another reason goes on mailing on the same connection)."""
    last: dict[str, str] = {}  # connection -> its last Message-ID
    first: dict[str, str] = {}  # Message-ID -> the connection of its first copy
    for mail in received:
        last[mail.connection] = mail.message_id
        first.setdefault(mail.message_id, mail.connection)
    return {m for m in twice if last.get(first[m]) == m}
