"""Chaos runner: run a sale against the real services, break things while traffic flows, let
the faults heal, then prove the invariants in the README from the outside.

    eval "$(scripts/stack env)"
    python -m scripts.chaos [SCENARIO ...] [--capacity N] [--demand-factor F] [--json FILE]
        [--buyer-auth token|open]

Each scenario gets its own database (migrated from sql/), Redis key prefix, Kafka topics and
consumer group, and its own API and worker processes (scripts/pipeline.py); a scenario that
asks for one also gets a notifier (`python -m consumer.notify`) mailing to an SMTP sink in
the runner (scripts/mail_sink.py), every buyer with an account. Services are broken through
`scripts/stack kill9|start|stop|restart NAME` of this repository (so the ports come from the
environment, as for the stack itself); workers and notifiers through their process handles.
Buyers are simulated with httpx: paced, bounded concurrency, every request carries an
Idempotency-Key and is retried with it on 503, 429 and transport errors (bounded), so no
request is lost from the buyer's view. With `--buyer-auth token` (default TICKETS_BUYER_AUTH,
else open) the scenario's API wants signed tokens (with a secret of its own) and every buyer
carries one, minted by the runner as login would issue it; the per-buyer rate limit stays on.
After the faults heal, the runner waits (condition-polled, bounded) until every accepted
booking is decided and the audit is CLEAN, then checks, through the API and by direct SQL:
the 202 booking ids are exactly the decided ones, no oversell, no undersell, no seat twice,
no booking twice, no user above the limit, the audit CLEAN, Kafka offsets committed only for
what PostgreSQL committed, the booking-events topic as the ledger tells it, and with a
notifier, one mail per change that mails (none twice, none missing, each to its buyer) once
its group has caught up with the topic. A scenario passes only when every invariant holds
without the reconciler: the worker must recover by itself. If a check fails, the reconciler
(`python -m consumer.reconcile`) is still run once and the checks repeated, for the report
only: it shows what the reconciler printed and whether it would have repaired the failure
("FAIL (reconciler would repair it)"). The one exception is the scenario named `reconciler`,
which breaks the gate on purpose after the sale and passes only when the invariants failed
without the reconciler and all held after it. Every stack service is brought back up after
every scenario.

Availability, per scenario (columns of the table, fields of --json): `avail`, the share of
request attempts started inside a fault window answered 202 or 409 (not 503, 429 or a
transport error); `gap`, the longest stretch between two decisions in the ledger
(decided_at) and where on the sale's clock it began; `converge`, how long after the heal
everything was decided and the audit CLEAN. A scenario declares its windows: `async with
run.outage(text, end): ...` around an outage (both ends recorded as faults), `run.fault(text)`
for an instantaneous one, whose window is availability.INSTANT_WINDOW_S from then.

Scenarios (default: all, in this order): worker_kill9, fault_points, rebalance, kafka_kill9,
redis_wipe, postgres_restart, duplicates, worker_sigterm, and with holds expiry_kill9,
payment_kill9, redis_wipe_holds, notify_kill9 (with a notifier), and reconciler. Exit
status 1 if any check failed. broker_leader_kill9, broker_rolling_restart and
redis_failover run only by name, against an HA stack the environment names (exit 2 with
the reason otherwise).
`run_scenario` is also called in-process by tests/chaos.

    python -m scripts.chaos soak [--minutes N] [--seed S]

runs the soak (soak.py) on the HA stack the environment names: one sale of 10,000 seats at
3x demand for N minutes (default 2) under a seeded random mix of every fault kind in
fault_kinds.KINDS (the HA ones included), two lanes side by side
(worker processes; stack services and the topic); kinds whose needs are unmet are skipped
and reported. Then the same checks as every scenario, plus the availability figures.

Layout of this package:
- `__main__.py`: the command line above.
- `runner.py`: one scenario end to end (`run_scenario`): isolate, sell, break, heal, converge,
  check (and the reconciler, for the report or in the reconciler scenario).
- `scenarios/`: one module per scenario (its `SPEC` and the fault injection), and the registry
  `SCENARIOS` in their default order.
- `scenario.py`: what a scenario declares (`Spec`) and what its injection works with (`Run`).
- `availability.py`: fault windows and the availability figures (every scenario's, the HA
  ones included). `cluster.py`: the HA stack's leaders, ISR and Sentinel primary.
  `fault_kinds.py`: the soak's fault kinds. `nemesis.py`: the ways of
  breaking things the scenarios share (service outages, kill -9 and a successor, copies).
- `checks.py`: the invariant checks, through the API, by SQL, on Kafka and on the mails.
- `traffic.py`: the simulated buyers (and their accounts). `faults.py`: the stack's
  services, the worker and notifier processes, the notifier's SMTP sink. `sandbox.py`: a
  scenario's own database, prefix, topics and group. `observe.py`: reading the API, the
  ledger and the Kafka topics. `report.py`: the results and their table. `logs.py`: progress
  lines and log files.
"""
