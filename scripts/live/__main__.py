"""`python -m scripts.live`: the command line (see the package docstring)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import TextIO

from scripts.live.render import Screen, render_line, render_panel
from scripts.live.sources import Snapshot, Sources
from scripts.live.summary import Summary, summarize
from scripts.loadgen.api import DEFAULT_URL, admin_token_from_env
from shared.config import load_or_exit

EXIT_OK, EXIT_USAGE, EXIT_UNREACHABLE = 0, 2, 3


def _frames(sources: Sources, interval: float, duration: float | None) -> Iterator[Summary]:
    """A summary every `interval` seconds, for `duration` seconds (forever when None)."""
    started = time.monotonic()
    previous: Snapshot | None = None
    ticks = 0
    while True:
        current = sources.snapshot()
        yield summarize(previous, current)
        previous = current
        ticks += 1
        next_at = started + ticks * interval
        if duration is not None and next_at > started + duration:
            return
        time.sleep(max(0.0, next_at - time.monotonic()))


def watch(
    sources: Sources, out: TextIO, interval: float, duration: float | None, tty: bool
) -> None:
    """Refresh until Ctrl-C (or `duration`): in place on a terminal, else a line each time."""
    colour = tty and not os.environ.get("NO_COLOR")
    screen = Screen(out) if tty else None
    try:
        for summary in _frames(sources, interval, duration):
            if screen is not None:
                screen.draw(render_panel(summary, interval, colour))
            else:
                out.write(render_line(summary) + "\n")
                out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        if screen is not None:
            screen.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.live",
        description="Live terminal view of a flash sale: intake, outcomes, lag, audit verdict.",
    )
    parser.add_argument("--event", type=int, required=True, help="event id to audit")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    parser.add_argument(
        "--api",
        default=os.environ.get("TICKETS_API_URL", DEFAULT_URL),
        help=f"API base URL (default TICKETS_API_URL or {DEFAULT_URL})",
    )
    parser.add_argument(
        "--worker-metrics",
        action="append",
        metavar="URL",
        help="a worker's /metrics URL; repeat for several workers "
        "(default http://127.0.0.1:$TICKETS_WORKER_METRICS_PORT/metrics)",
    )
    parser.add_argument(
        "--notifier-metrics",
        metavar="URL",
        help="the notifier's /metrics URL, for its lag (default: none watched)",
    )
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument("--once", action="store_true", help="print one snapshot and exit")
    stop.add_argument("--duration", type=float, help="stop after this many seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.interval <= 0 or (args.duration is not None and args.duration <= 0):
        parser.error("--interval and --duration must be positive")
    for url in [args.api, *(args.worker_metrics or ()), *filter(None, [args.notifier_metrics])]:
        if not url.startswith(("http://", "https://")):
            parser.error(f"not an http(s) URL: {url}")
    settings = load_or_exit()
    workers = args.worker_metrics
    if workers is None:
        port = settings.worker_metrics_port
        workers = [f"http://127.0.0.1:{port}/metrics"] if port else []
    sources = Sources(
        args.api.rstrip("/"),
        workers,
        args.event,
        settings.admin_token or admin_token_from_env(),
        args.notifier_metrics,
    )
    if args.once:
        snapshot = sources.snapshot()
        print("\n".join(render_panel(summarize(None, snapshot))))
        return EXIT_UNREACHABLE if snapshot.api is None else EXIT_OK
    watch(sources, sys.stdout, args.interval, args.duration, sys.stdout.isatty())
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
