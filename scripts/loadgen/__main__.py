"""`python -m scripts.loadgen`: the command line (see the package docstring)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from scripts.loadgen.api import DEFAULT_URL, ApiError, admin_token_from_env
from scripts.loadgen.attack import AttackConfig, Result, attack
from scripts.loadgen.client import UsageError
from scripts.loadgen.seat_modes import SEAT_MODES
from scripts.loadgen.summary import summary
from scripts.loadgen.tokens import BUYER_AUTH_MODES, buyer_auth_from_env, jwt_secret_from_env

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


def _positive_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def _hold_seconds(text: str) -> int:
    value = _positive_int(text)
    if value > 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is more than 3600 seconds")
    return value


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 1") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 1")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.loadgen",
        description="Fire concurrent bookings at one event on a local API, wait until all "
        "accepted bookings are decided, then audit. URL and admin token come from "
        "TICKETS_API_URL and TICKETS_ADMIN_TOKEN; in token mode the buyers' tokens are "
        "signed with TICKETS_JWT_SECRET.",
    )
    parser.add_argument("--requests", "-n", type=_positive_int, default=500)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--event", type=_positive_int, help="attack this existing event")
    target.add_argument(
        "--capacity", type=_positive_int, default=100, help="seats of the new demo event"
    )
    parser.add_argument("--concurrency", "-c", type=_positive_int, default=64)
    parser.add_argument(
        "--timeout", type=_positive_float, default=120.0, help="decision wait, seconds"
    )
    parser.add_argument("--url", default=os.environ.get("TICKETS_API_URL") or DEFAULT_URL)
    parser.add_argument(
        "--json", metavar="FILE", help="also write the result as JSON ('-': stdout)"
    )
    parser.add_argument(
        "--buyer-auth",
        choices=BUYER_AUTH_MODES,
        help="how buyers identify themselves, as the API expects (default: "
        "TICKETS_BUYER_AUTH, else open)",
    )
    parser.add_argument(
        "--hold-seconds",
        type=_hold_seconds,
        default=0,
        help="the demo event holds each booking this long until it is paid (1-3600)",
    )
    parser.add_argument(
        "--pay-ratio",
        type=_ratio,
        default=0.0,
        help="the fraction (0-1) of buyers holding seats who pay; the rest let the hold run out",
    )
    parser.add_argument(
        "--seats",
        choices=SEAT_MODES,
        help="specific: each buyer names 2 seats of the front row; together: each asks for 4 "
        "side by side",
    )
    parser.add_argument(
        "--queue",
        action="store_true",
        help="the demo event sells through its on-sale queue: join, wait, book with the token",
    )
    parser.add_argument(
        "--admit-rate", type=_positive_float, default=200.0, help="with --queue: admissions/s"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser.parse_args(argv)


def _write_json(result: Result, where: str) -> None:
    text = json.dumps(result.to_json(), indent=2)
    if where == "-":
        print(text)
    else:
        Path(where).write_text(text + "\n")


def _run_loop(main: Coroutine[Any, Any, Result]) -> Result:
    """asyncio.run, on uvloop when it is installed (it is, with uvicorn[standard]): the
    client's own overhead is part of what limits requests/s."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def run(argv: Sequence[str] | None = None) -> int:
    """The command line: run the attack, print the summary, return the exit status."""
    args = parse_args(argv)
    try:
        buyer_auth = args.buyer_auth or buyer_auth_from_env()
        config = AttackConfig(
            url=args.url,
            token=admin_token_from_env(),
            buyer_auth=buyer_auth,
            jwt_secret=jwt_secret_from_env() if buyer_auth == "token" else "",
            requests=args.requests,
            event_id=args.event,
            capacity=args.capacity,
            concurrency=args.concurrency,
            timeout_s=args.timeout,
            hold_seconds=args.hold_seconds,
            pay_ratio=args.pay_ratio,
            seats=args.seats,
            queue=args.queue,
            admit_per_s=args.admit_rate,
        )
        result = _run_loop(attack(config, None if args.quiet else sys.stderr))
    except UsageError as exc:
        print(f"loadgen: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApiError as exc:
        print(f"loadgen: error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json == "-":
        _write_json(result, "-")
    else:
        print(summary(result), flush=True)
        if args.json:
            _write_json(result, args.json)
    return EXIT_OK if result.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(run())
