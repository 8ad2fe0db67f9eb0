"""`python -m scripts.bench`: the command line (see the package docstring)."""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import uvloop

import scripts.bench
from scripts.bench.run import bench
from scripts.pipeline import ROOT


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench",
        description=scripts.bench.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="~10x smaller: a smoke check")
    parser.add_argument("--out", default=str(ROOT / "bench-results"), help="results folder")
    parser.add_argument(
        "--keep", action="store_true", help="keep the databases, Redis keys and topics"
    )
    parser.add_argument(
        "--only",
        choices=["finalisation", "holds", "seats", "queue", "web"],
        help="the worker's phases alone: finalisation (phase 5, and 12c: its twin with the "
        "booking-events outbox off); holds (phase 5, "
        "then payments and expiry, 9 and 10, judged against it); seats (phase 5, then "
        "choosing seats and reading the seat map, 11a to 11d); queue (13a-13c, the API "
        "alone); web (14a-14d: the sale page and the console in headless Chromium, the API alone)",
    )
    return parser.parse_args(argv)


async def _main_with_signals(args: argparse.Namespace) -> int:
    """SIGTERM/SIGINT cancel the run; the cleanup in `bench` still runs."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    return await bench(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.out = Path(args.out).resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    if shutil.which("wrk") is None:
        print("bench: wrk is missing: apt-get install -y wrk", file=sys.stderr)
        return 2
    resource.setrlimit(resource.RLIMIT_NOFILE, _nofile_limit())
    try:
        return uvloop.run(_main_with_signals(args))
    except asyncio.CancelledError:
        print("bench: interrupted; cleaned up", file=sys.stderr)
        return 130


def _nofile_limit() -> tuple[int, int]:
    """Enough file descriptors for the paced client's connections and phase 12a's streams
    (the API process inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return (min(max(soft, 16384), hard), hard)


if __name__ == "__main__":
    sys.exit(main())
