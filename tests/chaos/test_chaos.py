"""Chaos scenarios (scripts/chaos/) against the real services of the native stack: each runs
a sale with demand at least 3x capacity, breaks something while traffic flows, lets it heal and
proves the invariants through the API and by SQL. They kill and restart PostgreSQL, Redis and
Kafka of the stack the tests run on, and bring every service back up before returning.
Buyers in open mode, or with TICKETS_CHAOS_BUYER_AUTH=token each with a signed token."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from scripts.chaos import soak
from scripts.chaos.report import RECONCILER_SCENARIO, Check, ScenarioResult
from scripts.chaos.runner import run_scenario
from scripts.loadgen.tokens import BuyerAuth
from shared.config import Settings
from tests.chaos.conftest import HaStack

pytestmark = pytest.mark.chaos

Runner = Callable[[str], Awaitable[ScenarioResult]]

# Every scenario run in this session, for the table at the end (see conftest.py).
RESULTS: list[ScenarioResult] = []

# Checks every scenario must pass, by a fragment of their names (one per event where it says
# "event N:"), with what each proves.
INVARIANTS = (
    "every request got a final answer",  # no request lost from the buyer's view
    "final answers are 202 or 409 SOLD_OUT",
    "every accepted booking is decided (API)",  # no lost request
    "202 booking ids == decided booking ids (SQL)",  # ... and none decided that was refused
    "no booking id twice (SQL)",  # no double effect
    "API and SQL agree on every status",
    "bookings read back as requested (API)",
    "confirmed bookings have their seats, rejected ones a reason and none (API)",
    "no seat twice (API)",
    "named seats given exactly, groups side by side (API)",  # a share of buyers choose seats
    "seats taken == sold, none twice, each booking its own (SQL)",
    "confirmed <= capacity, == capacity as demand exceeds it (API)",  # no oversell/undersell
    "sold == sum(confirmed) <= capacity (SQL)",  # no oversell
    "no undersell (SQL)",
    "no user above the limit (API)",
    "no user above the limit (SQL)",
    "audit CLEAN and consistent",  # counter convergence
    "event view agrees",
    "offsets committed only for decided bookings (at the end)",
    "nothing dead-lettered",
)


def runner(
    settings: Settings, auth: BuyerAuth, log_dir: Path, stack_env: dict[str, str] | None = None
) -> Runner:
    """Runs a scenario on the stack of `settings` (`stack_env`: another stack's), keeps it
    for the session's table and prints its report."""

    async def run(name: str) -> ScenarioResult:
        result = await run_scenario(
            name, settings, log_dir=log_dir / name, buyer_auth=auth, stack_env=stack_env
        )
        RESULTS.append(result)
        print(result.report())
        return result

    return run


@pytest.fixture
def chaos(base_settings: Settings, chaos_buyer_auth: BuyerAuth, tmp_path: Path) -> Runner:
    return runner(base_settings, chaos_buyer_auth, tmp_path)


@pytest.fixture
def chaos_ha(ha_stack: HaStack, chaos_buyer_auth: BuyerAuth, tmp_path: Path) -> Runner:
    """The HA scenarios: run on the HA stack, and break that stack's services."""
    return runner(ha_stack.settings, chaos_buyer_auth, tmp_path, ha_stack.env)


def checks(result: ScenarioResult, fragment: str) -> list[tuple[str, bool, str]]:
    found = [(c.name, c.ok, c.detail) for c in result.checks if fragment in c.name]
    assert found, f"{result.name}: no check named like {fragment!r}\n{result.report()}"
    return found


# With holds, also: where every hold ended.
HOLD_INVARIANTS = (
    "every accepted payment ends CONFIRMED or refund_due (API)",  # no lost payment
    "every hold not paid for ran out: EXPIRED (API)",
    "a paid hold is never expired; each payment recorded once (SQL)",
)


def assert_passed(result: ScenarioResult, *specific: str, holds: bool = False) -> None:
    """The scenario ran, every invariant and every scenario-specific check held, without the
    reconciler (but in the scenario that proves it)."""
    assert result.error is None, result.report()
    assert result.reconciler is None or result.name == RECONCILER_SCENARIO, result.report()
    assert result.ok, result.report()
    for fragment in (*INVARIANTS, *(HOLD_INVARIANTS if holds else ()), *specific):
        failed = [c for c in checks(result, fragment) if not c[1]]
        assert not failed, f"{result.name}: {failed}\n{result.report()}"
    assert not result.failed(), result.report()
    # The same facts as numbers, from the audit of every event of the scenario.
    assert result.requests > 0 and result.accepted > 0, result.report()
    assert result.demand >= 3 * result.capacity > 0, result.report()
    expired = sum(int(a.get("expired_bookings", 0)) for a in result.audits.values())
    if holds:  # seats whose hold ran out after the last buyer stay unsold
        assert 0 < result.sold <= result.capacity and expired > 0, result.report()
    else:
        assert result.sold == result.capacity, result.report()  # no oversell, no undersell
    assert result.confirmed + result.rejected + expired == result.accepted, result.report()
    assert all(a.get("verdict") == "CLEAN" for a in result.audits.values()), result.audits
    assert result.converge_s is not None, result.report()
    assert result.longest_gap_s is not None, result.report()  # the availability figures
    assert_history(result)


def assert_history(result: ScenarioResult) -> None:
    """The history file has every attempt, every fault window and every booking decided."""
    with Path(result.history).open() as lines:
        kinds = Counter(json.loads(line)["kind"] for line in lines)
    assert kinds["sale"] == 1, kinds
    assert kinds["attempt"] == sum(result.codes.values()), (kinds, result.codes)
    assert kinds["fault"] == len(result.fault_windows), kinds
    assert kinds["booking"] == result.accepted, (kinds, result.accepted)


@pytest.mark.timeout(240)
async def test_worker_kill9_at_random_moments(chaos: Runner) -> None:
    result = await chaos("worker_kill9")
    assert_passed(result, "at least 10 kill -9 in one sale, some mid-batch")
    kills = [f for f in result.faults if "kill -9 worker" in f]
    assert len(kills) >= 10, result.faults
    assert any("mid-batch" in f for f in kills), result.faults


async def test_worker_killed_between_reserve_and_commits(chaos: Runner) -> None:
    result = await chaos("fault_points")
    assert_passed(
        result,
        "worker died by SIGKILL at after_reserve",
        "worker died by SIGKILL at after_db_commit",
        "killed after the reservation: stock held in Redis, nothing new in PostgreSQL",
        "killed after the PostgreSQL commit: decided bookings above the committed offset",
        "offsets committed only for decided bookings (after the kill at after_reserve)",
        "offsets committed only for decided bookings (after the kill at after_db_commit)",
    )


async def test_workers_join_and_leave_mid_sale(chaos: Runner) -> None:
    result = await chaos("rebalance")
    assert_passed(
        result,
        "the added worker got partitions",
        "the leaving worker stopped cleanly",
        "the others took over",
    )
    assert len(result.audits) == 3  # three events, on three partitions


async def test_kafka_broker_kill9_under_traffic(chaos: Runner) -> None:
    result = await chaos("kafka_kill9")
    assert_passed(result, "/ready says Kafka is down", "no 202 while the broker was dead")
    assert result.codes.get("503", 0) > 0, result.codes  # buyers were told to retry


async def test_redis_restarted_empty(chaos: Runner) -> None:
    result = await chaos("redis_wipe")
    assert_passed(
        result, "Redis came back without its data", "the worker rebuilt the counter from PostgreSQL"
    )


async def test_postgres_restarted_mid_sale(chaos: Runner) -> None:
    result = await chaos("postgres_restart")
    assert_passed(result, "the worker waited out the outages")
    assert sum("postgres" in f for f in result.faults) == 4, result.faults


async def test_duplicate_delivery_and_retried_keys(chaos: Runner) -> None:
    result = await chaos("duplicates")
    assert_passed(
        result,
        "duplicates reached the topic",
        "replays with the same Idempotency-Key return the same booking",
    )
    assert result.codes.get("transport", 0) > 0, result.codes  # answers were lost, retried


@pytest.mark.timeout(240)
async def test_worker_sigterm_mid_batch(chaos: Runner) -> None:
    result = await chaos("worker_sigterm")
    assert_passed(
        result,
        "SIGTERM #1 mid-batch",
        "SIGTERM #2 mid-batch",
        "SIGTERM #3 mid-batch",
        "SIGTERM during a PostgreSQL outage",
        "offsets committed only for decided bookings (abandoned batch)",
    )


async def test_worker_killed_mid_expiry(chaos: Runner) -> None:
    result = await chaos("expiry_kill9")
    assert_passed(
        result,
        "worker died by SIGKILL mid-expiry",
        "killed mid-expiry: the gate gave stock back that the ledger still holds",
        holds=True,
    )


async def test_worker_killed_writing_and_committing_payments(chaos: Runner) -> None:
    result = await chaos("payment_kill9")
    assert_passed(
        result,
        "worker died by SIGKILL at after_payment_write",
        "worker died by SIGKILL at after_payment_commit",
        "offsets committed only for decided bookings (after the kill at after_payment_commit)",
        holds=True,
    )


async def test_redis_restarted_empty_with_1000_holds_live(chaos: Runner) -> None:
    result = await chaos("redis_wipe_holds")
    assert_passed(
        result,
        "1000 holds live before the wipe",
        "the rebuilt counter counts the live holds (CLEAN with holds live)",
        holds=True,
    )


async def test_worker_and_notifier_kill9_while_mails_flow(chaos: Runner) -> None:
    result = await chaos("notify_kill9")
    assert_passed(
        result,
        "5 kill -9 of the worker and 5 of the notifier, each while mails flowed",
        "the notifier's group caught up with the booking-events topic",
        "nothing dead-lettered by the notifier",
        "mails: every CONFIRMED, EXPIRED or CANCELLED change mailed to the booking's buyer",
        holds=True,
    )
    for kind in ("worker", "notifier"):
        assert sum(f"kill -9 {kind} " in f for f in result.faults) == 5, result.faults


@pytest.mark.timeout(600)
async def test_two_minute_soak_under_a_random_mix_of_faults(
    ha_stack: HaStack, chaos_buyer_auth: BuyerAuth, tmp_path: Path
) -> None:
    """On the HA stack: every fault kind the suite knows, the HA ones included."""
    result = await run_scenario(
        soak.spec(2.0),
        ha_stack.settings,
        log_dir=tmp_path / "soak",
        buyer_auth=chaos_buyer_auth,
        stack_env=ha_stack.env,
    )
    RESULTS.append(result)
    print(result.report())
    assert_passed(result)
    assert result.capacity == 10_000, result.report()
    assert sum(result.fault_kinds.values()) >= 40, result.fault_kinds
    assert len(result.fault_kinds) >= 5, result.fault_kinds
    assert "notifier_kill9" in result.skipped_kinds, result.skipped_kinds  # none runs
    ha_kinds = {"broker_leader_kill9", "broker_restart", "redis_failover"}
    assert ha_kinds & set(result.fault_kinds), result.fault_kinds
    assert result.availability is not None and result.attempts_in_faults > 0, result.report()


async def test_the_reconciler_mends_a_gate_broken_on_purpose(chaos: Runner) -> None:
    result = await chaos("reconciler")
    assert_passed(
        result,
        "the sale went idle with the audit CLEAN",
        "the audit sees the broken gate",
        "without the reconciler, the broken gate failed the invariants",
        "the reconciler ran cleanly and fixed something",
    )
    assert result.reconciler is not None, result.report()
    for fix in ("holds_settled", "holds_released", "counters_corrected"):
        assert re.search(rf"{fix}: *1\b", result.reconciler), result.reconciler


def test_a_scenario_that_needed_the_reconciler_fails() -> None:
    """Unit level: invariants that held only once the reconciler ran fail the scenario."""
    broken = ScenarioResult(
        "worker_kill9",
        "a scenario",
        checks=[Check(name, name != "no undersell (SQL)") for name in INVARIANTS],
        reconciler="exit 0: counters_corrected: 1",
        reconciled_checks=[Check(name, True) for name in INVARIANTS],
        requests=1,
        accepted=1,
        confirmed=1,
        demand=3,
        capacity=1,
        sold=1,
        converge_s=1.0,
    )
    assert not broken.ok and broken.reconciler_helped
    assert broken.verdict == "FAIL (reconciler would repair it)"
    assert "after the reconciler, " in broken.report()
    with pytest.raises(AssertionError):
        assert_passed(broken)
    # Even with every check passing, a result where the reconciler ran is not a pass.
    broken.checks = broken.reconciled_checks
    with pytest.raises(AssertionError):
        assert_passed(broken)


# The HA stack's scenarios: the sale goes on through the fault, on its own, with every
# invariant intact and no reconciler.
AVAILABLE = (
    "at least 90% of requests during the fault answered 202 or 409",
    "the sale kept deciding (longest stretch without a decision < 10s)",
)


@pytest.mark.timeout(300)
async def test_kafka_leader_of_the_hot_partition_kill9(chaos_ha: Runner) -> None:
    result = await chaos_ha("broker_leader_kill9")
    assert_passed(result, "another node took the hot partition's lead", *AVAILABLE)
    assert result.reconciler is None, result.report()


@pytest.mark.timeout(300)
async def test_kafka_rolling_restart(chaos_ha: Runner) -> None:
    result = await chaos_ha("broker_rolling_restart")
    assert_passed(result, "every replica back in sync after each restart", *AVAILABLE)
    assert result.reconciler is None, result.report()


@pytest.mark.timeout(300)
async def test_redis_primary_kill9_sentinel_failover(chaos_ha: Runner) -> None:
    result = await chaos_ha("redis_failover")
    assert_passed(
        result,
        "Sentinel promoted the replica",
        "the clients write to the promoted server",
        "the worker rebuilt the gate on the new primary",
    )
    assert result.reconciler is None, result.report()
