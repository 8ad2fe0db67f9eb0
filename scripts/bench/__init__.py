"""`python -m scripts.bench [--quick] [--only finalisation|holds] [--out DIR] [--keep]`: the
benchmark.

Measures, in one run on one machine, the system next to its physical ceilings (how and why:
docs/performance.md), and prints a markdown table of ratios against the
targets; the same numbers, the machine and the versions go to a JSON file.

Phases, in order (each prints progress lines on stderr):
 1. HTTP ceiling: a bare Litestar POST handler (bare_app.py), wrk.
 2. intake: POST /api/bookings -> 202 after Kafka's ack, real API process, wrk; then the
    HTTP ceiling again (1a): intake is judged against the mean of 1 and 1a.
 2t. the same on a second API process in token mode, a bearer token per request and both
    rate limits counted; then the ceiling again (1d): judged against 1a and 1d, and as a
    share of row 2's ratio.
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
 7t. the sold-out fast path with tokens on the token-mode API, then the ceiling (1e).
 8. memory: VmHWM/VmRSS of the API and workers, RSS sampled through the run.
 9. payments: one payment per hold of an event, produced beforehand; the real worker
    confirms them in burst mode, timed like phase 5 and judged against its rate.
10. expiry: every hold of an event given one deadline; the time from it until all are
    EXPIRED in the ledger and their stock is back at the gate, the worker otherwise idle.
    (9 and 10 run right after 5, on a topic and group of their own.)

Isolation: its own databases (bench_<id>, and bench_<id>_base for the baselines), Redis prefix,
topics and consumer groups, all removed at the end unless --keep. Services come from TICKETS_*
(`eval "$(scripts/stack env)"`). Everything talks to 127.0.0.1 only, and every phase is
bounded in count and time. Absolute numbers on a shared 2-core machine are noisy: compare the
ratios within one run.

Layout: `run.py` runs the phases in order, one module each in `phases/`; `world.py` is what a
run owns (databases, prefix, topics, processes) and how much each phase does; `proc.py` the
/proc CPU and memory accounting; `wrk.py` the wrk driver (with `post.lua`); `paced.py` the
flash sale's open-loop client; `meta.py` the commit, machine and versions; `report.py` the
tables; `queries.sql` the benchmark's own SQL. Processes are started and stopped with
scripts/pipeline.py, as the tests and the chaos runner do.
"""
