"""The chaos suite's buyer mode, and the runner's table at the end of the session's output.

TICKETS_CHAOS_BUYER_AUTH=token runs every scenario with an API that wants signed tokens and
buyers that carry them (default: open, so the default run costs what it did)."""

from __future__ import annotations

import os

import pytest

from scripts.chaos.report import table
from scripts.loadgen.tokens import BUYER_AUTH_MODES, BuyerAuth

MODE_VARIABLE = "TICKETS_CHAOS_BUYER_AUTH"


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
