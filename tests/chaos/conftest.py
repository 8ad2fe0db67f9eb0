"""The chaos runner's table, at the end of the test session's output."""

from __future__ import annotations

import pytest

from scripts.chaos.report import table


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.chaos.test_chaos import RESULTS

    if not RESULTS:
        return
    terminalreporter.section("chaos scenarios")
    for line in table(RESULTS).splitlines():
        terminalreporter.write_line(line)
    needed = [r.name for r in RESULTS if r.reconciler is not None]
    terminalreporter.write_line(f"reconciler needed by: {', '.join(needed) or 'none'}")
