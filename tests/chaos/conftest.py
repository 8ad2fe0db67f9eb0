"""The chaos suite's buyer mode, and the runner's table at the end of the session's output.

TICKETS_CHAOS_BUYER_AUTH=token runs every scenario with an API that wants signed tokens and
buyers that carry them (default: open, so the default run costs what it did).

The HA scenarios run on a second stack of their own (`ha_stack`): three Kafka nodes and
Redis under Sentinel, state in .stack-chaos-ha/, on 14 ports from TICKETS_CHAOS_HA_PORT_BASE
(default 29200), started once per session and stopped at its end."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from scripts.chaos.faults import STACK
from scripts.chaos.report import table
from scripts.loadgen.tokens import BUYER_AUTH_MODES, BuyerAuth
from scripts.pipeline import ROOT
from shared.config import Settings

MODE_VARIABLE = "TICKETS_CHAOS_BUYER_AUTH"
HA_PORTS = (
    "PG", "REDIS", "REDIS_REPLICA", "SENTINEL_1", "SENTINEL_2", "SENTINEL_3", "KAFKA",
    "KAFKA_CONTROLLER", "KAFKA_2", "KAFKA_2_CONTROLLER", "KAFKA_3", "KAFKA_3_CONTROLLER",
    "API", "MAIL",
)  # fmt: skip


@dataclass(frozen=True)
class HaStack:
    settings: Settings  # from its `scripts/stack env`
    env: dict[str, str]  # what `scripts/stack` needs to act on it: state dir and ports


@pytest.fixture(scope="session")
def ha_stack() -> Iterator[HaStack]:
    """A second stack beside the default one: three Kafka nodes, Redis under Sentinel."""
    base = int(os.environ.get("TICKETS_CHAOS_HA_PORT_BASE") or 29200)
    env = {"TICKETS_STACK_DIR": ".stack-chaos-ha"}
    env |= {f"TICKETS_{name}_PORT": str(base + n) for n, name in enumerate(HA_PORTS)}
    # Only what `scripts/stack` reads of the caller's: not the default stack's URLs.
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETS_")} | env

    def stack(*args: str) -> str:
        done = subprocess.run(
            [str(STACK), *args], cwd=ROOT, env=run_env, capture_output=True, text=True,
            timeout=600, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"scripts/stack {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    try:
        stack("up", "--services-only", "--kafka-brokers", "3", "--redis-sentinel")
        exported = dict(
            shlex.split(line)[1].split("=", 1) for line in stack("env").splitlines() if line
        )
        exported.pop("TICKETS_API_URL", None)
        yield HaStack(Settings.from_env(exported), env)
    finally:
        stack("down")


@pytest.fixture(scope="session")
def chaos_buyer_auth() -> BuyerAuth:
    wanted = os.environ.get(MODE_VARIABLE) or "open"
    for mode in BUYER_AUTH_MODES:
        if wanted == mode:
            return mode
    raise pytest.UsageError(f"{MODE_VARIABLE} must be token or open, got {wanted!r}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.chaos.test_chaos import RESULTS

    if not RESULTS:
        return
    terminalreporter.section("chaos scenarios")
    for line in table(RESULTS).splitlines():
        terminalreporter.write_line(line)
    needed = [r.name for r in RESULTS if r.reconciler is not None]
    terminalreporter.write_line(f"reconciler needed by: {', '.join(needed) or 'none'}")
