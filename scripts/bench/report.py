"""The benchmark's report: the results table (ratios against targets), the CPU table, and
the results as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scripts.bench.phases.finalisation import DrainResult
from scripts.bench.phases.flash_sale import FlashResult
from scripts.bench.phases.holds import ExpiryResult, PaymentsResult
from scripts.bench.phases.live import StreamsResult
from scripts.bench.phases.naive import NaiveResult
from scripts.bench.phases.queue import QueueResult
from scripts.bench.phases.seats import ChoiceResult, SeatMapRead
from scripts.bench.phases.web import PageLoads, WebResult
from scripts.bench.proc import PhaseUsage
from scripts.bench.wrk import WrkResult


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
    token_rows = _token_rows(r, intake_ratio)
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
    rows[2:2] = token_rows[:1]  # 2t after 2
    rows += token_rows[1:]  # 7t after 7
    rows += lifecycle_rows(r)
    rows += seat_rows(r)
    rows += live_rows(r)
    rows += queue_rows(r)
    rows += web_rows(r)
    extra_ceilings: list[tuple[str, WrkResult | None]] = [
        ("1a HTTP ceiling again (after 2)", around_intake[1]),
        ("1d HTTP ceiling again (after 2t)", r.get("http_ceiling_after_intake_tokens")),
        ("1c HTTP ceiling again (before 7)", around_sold[0]),
        ("1b HTTP ceiling again (after 7)", None if ceiling_again is ceiling else ceiling_again),
        ("1e HTTP ceiling again (after 7t)", r.get("http_ceiling_after_sold_out_tokens")),
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


def _token_rows(r: dict[str, Any], intake_ratio: float) -> list[Row]:
    """2t and 7t, each against the ceilings measured right before and after it (results
    saved before these rows existed have none)."""
    intake: WrkResult | None = r.get("intake_tokens")
    sold: WrkResult | None = r.get("sold_out_tokens")
    if intake is None or sold is None:
        return []
    around_intake = [r.get("http_ceiling_after_intake"), r.get("http_ceiling_after_intake_tokens")]
    around_sold = [r.get("http_ceiling_again"), r.get("http_ceiling_after_sold_out_tokens")]
    ratio = intake.rps / mean_rps(around_intake)
    of_row_2 = ratio / intake_ratio
    sold_ratio = sold.rps / mean_rps(around_sold)
    return [
        Row(
            "2t intake with tokens + rate limits",
            f"{intake.rps:,.0f} req/s",
            _lat(intake),
            f"{ratio:.0%} of HTTP ceiling {names(around_intake, '1a', '1d')} "
            f"({cpu_ratio(intake, around_intake)} per CPU-s) = {of_row_2:.0%} of row 2's",
            ">= 85% of row 2's ratio",
            of_row_2 >= 0.85,
        ),
        Row(
            "7t sold-out fast path with tokens",
            f"{sold.rps:,.0f} req/s",
            _lat(sold),
            f"{sold_ratio:.0%} of HTTP ceiling {names(around_sold, '1b', '1e')} "
            f"({cpu_ratio(sold, around_sold)} per CPU-s)",
            ">= 80%",
            sold_ratio >= 0.80,
        ),
    ]


def lifecycle_rows(r: dict[str, Any]) -> list[Row]:
    """9 and 10: payments against phase 5's decisions, and a mass expiry against its bound
    (results saved before these rows existed have neither)."""
    drain: DrainResult = r["finalisation"]
    paid: PaymentsResult | None = r.get("payments")
    expiry: ExpiryResult | None = r.get("expiry")
    if paid is None or expiry is None:
        return []
    share = paid.payments_per_s / drain.decisions_per_s
    back = expiry.all_back_s
    return [
        Row(
            "9 payments confirmed (real worker)",
            f"{paid.payments_per_s:,.0f} payments/s",
            f"{paid.paid} of {paid.holds} holds paid in {paid.wall_s:.2f} s"
            f"{'' if paid.exit_code == 0 else f' (exit {paid.exit_code})'} incl. startup; "
            f"{paid.batches} batches; {paid.steady_payments_per_s:,.0f}/s excl. startup; "
            f"worker CPU {paid.worker_cpu_pct:.0f}%",
            f"{share:.0%} of row 5's decisions/s",
            ">= 50% of row 5",
            share >= 0.5 and paid.paid == paid.holds,
        ),
        Row(
            f"10 expiry: {expiry.holds:,} holds at one deadline",
            "timeout" if back is None else f"{back:.2f} s",
            f"deadline -> all EXPIRED in the ledger {_or_timeout(expiry.ledger_s)}, -> stock "
            f"back at the gate {_or_timeout(expiry.gate_s)}; {expiry.expired} expired, "
            f"counter {expiry.counter_end}",
            "",
            "<= 2 s, every hold",
            back is not None
            and back <= 2.0
            and expiry.expired == expiry.holds == expiry.counter_end,
        ),
    ]


def seat_rows(r: dict[str, Any]) -> list[Row]:
    """11a to 11d: choosing seats against phase 5's decisions, and the seat map read against
    the HTTP ceiling (results saved before these rows existed have none)."""
    drain: DrainResult = r["finalisation"]
    specific: ChoiceResult | None = r.get("specific_seats")
    together: ChoiceResult | None = r.get("together")
    read: SeatMapRead | None = r.get("seat_map_read")
    rows = []
    for name, found, what in (
        ("11a specific seats: 2 of the same 100 seats per request", specific, "seats"),
        ("11b best available: groups of 4 together", together, "seats"),
    ):
        if found is None:
            continue
        share = found.decisions_per_s / drain.decisions_per_s
        rows.append(
            Row(
                name,
                f"{found.decisions_per_s:,.0f} decisions/s",
                f"{found.decided} of {found.requests} decided in {found.wall_s:.2f} s"
                f"{'' if found.exit_code == 0 else f' (exit {found.exit_code})'} incl. startup"
                f"; {found.confirmed} confirmed, {found.seats_sold:,} {what} sold; worker CPU "
                f"{found.worker_cpu_pct:.0f}%; event and seats created in {found.created_s:.2f} s",
                f"{share:.0%} of row 5's decisions/s",
                ">= 50% of row 5",
                share >= 0.5 and found.decided == found.requests,
            )
        )
    if read is not None:
        ceilings = [read.ceiling_before, read.ceiling_after]
        ratio = read.with_etag.rps / mean_rps(ceilings)
        rows.append(
            Row(
                f"11c seat map read with ETag (304), {read.seats:,}-seat map",
                f"{read.with_etag.rps:,.0f} req/s",
                _lat(read.with_etag),
                f"{ratio:.0%} of the ceiling right before and after "
                f"({cpu_ratio(read.with_etag, ceilings)} per CPU-second)",
                ">= 60%",
                ratio >= 0.6,
            )
        )
        rows.append(
            Row(
                "11d seat map read, whole map (200)",
                f"{read.whole.rps:,.0f} req/s",
                f"{read.body_bytes:,} bytes each; {_lat(read.whole)}",
            )
        )
    return rows


def live_rows(r: dict[str, Any]) -> list[Row]:
    """12a-12c, each when its phase ran: open streams and intake, decision -> stream delay
    in the flash sale, finalisation with the outbox off."""
    rows = []
    streams: StreamsResult | None = r.get("streams")
    if streams is not None:
        ratio = streams.intake_ratio
        rows.append(
            Row(
                f"12a {streams.streams:,} open SSE streams, one API process",
                f"{streams.kib_per_stream:.1f} KiB per stream",
                f"{streams.opened} opened in {streams.open_s:.1f} s, {streams.still_open} still "
                f"open after; API RSS {streams.rss_before_kib / 1024:.0f} -> "
                f"{streams.rss_after_kib / 1024:.0f} MiB; intake "
                f"{streams.intake_with.rps:,.0f} req/s with them, "
                f"{streams.intake_without.rps:,.0f} without",
                f"{ratio:.0%} of intake without",
                ">= 80% of intake without",
                ratio >= 0.8 and streams.opened == streams.still_open == streams.streams,
            )
        )
    flash: FlashResult | None = r.get("flash")
    if flash is not None:
        failed = ", ".join(f"{n} {why}" for why, n in flash.streams_failed.items()) or "none"
        rows.append(
            Row(
                "12b decision -> SSE delivery (flash sale)",
                f"p99 {flash.stream_p99_ms:.0f} ms",
                f"p50 {flash.stream_p50_ms:.0f} ms over {flash.streams_timed} buyers who paid "
                f"for a hold during the sale, watching its stream (failed: {failed})",
                "",
                "p99 < 250 ms",
                flash.streams_timed > 0 and flash.stream_p99_ms < 250 and not flash.streams_failed,
            )
        )
    on: DrainResult | None = r.get("finalisation")
    off: DrainResult | None = r.get("outbox_off")
    if on is not None and off is not None:
        share = on.decisions_per_s / off.decisions_per_s
        rows.append(
            Row(
                "12c finalisation with the outbox off (row 5's twin)",
                f"{off.decisions_per_s:,.0f} decisions/s",
                f"{off.decided} of {off.backlog} in {off.wall_s:.2f} s; excl. startup "
                f"{off.steady_decisions_per_s:,.0f}/s off, {on.steady_decisions_per_s:,.0f}/s "
                f"on ({on.steady_decisions_per_s / off.steady_decisions_per_s:.0%})",
                f"row 5 (outbox on) = {share:.0%} of it",
                ">= 85%",
                share >= 0.85 and off.decided == off.backlog,
            )
        )
    return rows


def _or_timeout(seconds: float | None) -> str:
    return "timeout" if seconds is None else f"{seconds:.2f} s"


def finalisation_row(drain: DrainResult, ratio: str = "", passed: bool | None = None) -> Row:
    return Row(
        "5 finalisation (real worker, hold_seconds 0)",
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


def queue_rows(r: dict[str, Any]) -> list[Row]:
    """13a-13c: the on-sale queue's joins and position polls against the HTTP ceilings right
    before and after them, and Redis's memory per entry (when the phase ran)."""
    q: QueueResult | None = r.get("queue")
    if q is None:
        return []
    ceilings = [q.ceiling_before, q.ceiling_after]
    keys = ", ".join(f"{name} {size / 2**20:.0f}" for name, size in q.key_bytes.items())
    return [
        Row(
            "13a queue joins (201), a new buyer each",
            f"{q.joins.rps:,.0f} req/s",
            _lat(q.joins),
            f"{q.joins.rps / mean_rps(ceilings):.0%} of the ceiling right before and after "
            f"({cpu_ratio(q.joins, ceilings)} per CPU-second)",
        ),
        Row(
            f"13b Redis memory, {q.entries:,} queue entries",
            f"{q.bytes_per_entry:,.0f} B/entry ({q.drawn_bytes / 2**20:,.0f} MiB)",
            f"{q.pre_bytes / 2**20:,.0f} MiB before the draw; MEMORY USAGE (MiB): {keys}; "
            f"joined through the join script in {q.load_s:.1f} s (pipelined), drawn in "
            f"{q.draw_s:.1f} s",
        ),
        Row(
            "13c position polls (200), one waiting entry",
            f"{q.polls.rps:,.0f} req/s",
            _lat(q.polls),
            f"{q.polls.rps / mean_rps(ceilings):.0%} of the ceiling right before and after "
            f"({cpu_ratio(q.polls, ceilings)} per CPU-second)",
        ),
    ]


PAGE_BYTES_TARGET = 200 * 1024
READY_MS_TARGET = 300.0


def web_rows(r: dict[str, Any]) -> list[Row]:
    """14a-14d: the sale page's and the console's weight and time to interactive in headless
    Chromium, cold cache each load (when the phase ran). Judged on the heaviest load and the
    median one."""
    w: WebResult | None = r.get("web")
    if w is None:
        return []
    return [
        *_page_rows("14a", "14b", "sale page", "first seat map drawn, 1,000 seats", w.sale),
        *_page_rows("14c", "14d", "console", "first overview drawn, signed in", w.console),
    ]


def _page_rows(weight: str, ready: str, page: str, when: str, p: PageLoads) -> list[Row]:
    return [
        Row(
            f"{weight} {page} weight, first load with an empty cache",
            f"{p.max_bytes / 1024:,.1f} KB transferred",
            f"{p.median('requests'):.0f} requests; the heaviest of {len(p.loads)} loads",
            "",
            "< 200 KB",
            p.max_bytes < PAGE_BYTES_TARGET,
        ),
        Row(
            f"{ready} {page} time to interactive ({when})",
            f"p50 {p.median('ready_ms'):.0f} ms, max {p.worst('ready_ms'):.0f} ms",
            f"domInteractive p50 {p.median('dom_interactive_ms'):.0f} ms",
            "",
            "p50 < 300 ms",
            p.median("ready_ms") < READY_MS_TARGET,
        ),
    ]
