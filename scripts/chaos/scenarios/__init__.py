"""The scenarios, one module each (its Spec and its fault injection), by name in the order
the runner runs them when none is named."""

from __future__ import annotations

from scripts.chaos.scenario import Spec
from scripts.chaos.scenarios import (
    broker_leader_kill9,
    broker_rolling_restart,
    duplicates,
    expiry_kill9,
    fault_points,
    kafka_kill9,
    notify_kill9,
    payment_kill9,
    postgres_restart,
    rebalance,
    reconciler,
    redis_failover,
    redis_wipe,
    redis_wipe_holds,
    worker_kill9,
    worker_sigterm,
)

SCENARIOS: dict[str, Spec] = {
    module.SPEC.name: module.SPEC
    for module in (
        worker_kill9,
        fault_points,
        rebalance,
        kafka_kill9,
        redis_wipe,
        postgres_restart,
        duplicates,
        worker_sigterm,
        expiry_kill9,
        payment_kill9,
        redis_wipe_holds,
        notify_kill9,
        reconciler,
        broker_leader_kill9,
        broker_rolling_restart,
        redis_failover,
    )
}
# Scenarios that need the highly available stack; the others run on the default one.
HA_SCENARIOS = [name for name, spec in SCENARIOS.items() if spec.ha]
