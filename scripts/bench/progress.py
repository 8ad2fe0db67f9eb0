"""Progress lines on stderr, stamped with seconds since the benchmark started."""

from __future__ import annotations

import sys
import time

STARTED = time.monotonic()


def say(phase: str, message: str) -> None:
    """One progress line on stderr, stamped with seconds since the start."""
    print(
        f"[bench {time.monotonic() - STARTED:6.1f}s] {phase}: {message}",
        file=sys.stderr,
        flush=True,
    )
