"""The chaos runner's command line (see the package's docstring)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import scripts.chaos
from scripts.chaos import soak
from scripts.chaos.report import ScenarioResult, table
from scripts.chaos.runner import DEFAULT_CAPACITY, DEFAULT_DEMAND_FACTOR, run_scenario
from scripts.chaos.scenarios import HA_SCENARIOS, SCENARIOS
from scripts.loadgen.client import UsageError
from scripts.loadgen.tokens import BUYER_AUTH_MODES, buyer_auth_from_env
from shared.config import Settings


async def main_async(args: argparse.Namespace) -> int:
    names = args.scenarios or [n for n in SCENARIOS if n not in HA_SCENARIOS]  # HA: the tests
    if names == ["soak"]:
        return await _soak(args)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    base = Settings.from_env()
    ha = [n for n in names if SCENARIOS[n].ha]
    if ha and (why := _not_ha(base)):
        print(f"{', '.join(ha)}: {why}", file=sys.stderr)
        return 2
    root = Path(args.log_dir or tempfile.mkdtemp(prefix="chaos-"))
    results: list[ScenarioResult] = []
    for name in names:
        result = await run_scenario(
            name,
            base,
            capacity=args.capacity,
            demand_factor=args.demand_factor,
            log_dir=root / name,
            seed=args.seed,
            keep=args.keep,
            buyer_auth=args.buyer_auth,
            # The stack to break is the one the environment names (TICKETS_STACK_DIR, ports).
            stack_env={} if SCENARIOS[name].ha else None,
        )
        results.append(result)
        print(result.report(), file=sys.stderr, flush=True)
    print(table(results))
    if args.json:
        _write_json(Path(args.json), results)
    return 0 if all(r.ok for r in results) else 1


async def _soak(args: argparse.Namespace) -> int:
    base = Settings.from_env()
    if why := _not_ha(base):
        print(f"soak: {why}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"soak: {args.minutes:g} minutes, seed {seed} (replay with --seed {seed})", flush=True)
    result = await run_scenario(
        soak.spec(args.minutes),
        base,
        demand_factor=args.demand_factor,
        log_dir=Path(args.log_dir or tempfile.mkdtemp(prefix="chaos-")) / "soak",
        seed=seed,
        keep=args.keep,
        buyer_auth=args.buyer_auth,
        stack_env={},  # the stack the environment names (TICKETS_STACK_DIR, ports)
    )
    print(result.report(), file=sys.stderr, flush=True)
    print(table([result]))
    if args.json:
        _write_json(Path(args.json), [result])
    return 0 if result.ok else 1


def _not_ha(settings: Settings) -> str | None:
    """Why the stack the environment names is not the HA one; None if it is."""
    brokers, sentinels = len(settings.bootstrap_servers), len(settings.sentinels)
    if brokers >= 3 and sentinels:
        return None
    return (
        f"needs the HA stack (three Kafka nodes, Redis under Sentinel); the environment names "
        f"{brokers} broker(s) and {sentinels} Sentinel(s). Start one with `scripts/stack up "
        "--services-only --kafka-brokers 3 --redis-sentinel` (its own TICKETS_STACK_DIR and "
        'ports exported), then eval "$(scripts/stack env)"'
    )


def _write_json(path: Path, results: list[ScenarioResult]) -> None:
    payload = [{**asdict(r), "verdict": r.verdict, "ok": r.ok} for r in results]
    path.write_text(json.dumps(payload, indent=2, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.chaos", description=(scripts.chaos.__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"{', '.join(SCENARIOS)}; or soak alone: the long mixed-fault run",
    )
    parser.add_argument(
        "--minutes", type=float, default=2.0, help="soak: how long the sale runs (default 2)"
    )
    parser.add_argument("--capacity", type=int, default=DEFAULT_CAPACITY, help="seats per event")
    parser.add_argument(
        "--demand-factor",
        type=float,
        default=DEFAULT_DEMAND_FACTOR,
        help="tickets asked per seat (at least 3 for the undersell check to bite)",
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--log-dir", help="where process logs go (default: a temp dir)")
    parser.add_argument("--seed", type=int, help="random seed (default: random, printed)")
    parser.add_argument("--keep", action="store_true", help="keep a failed scenario's database")
    parser.add_argument(
        "--buyer-auth",
        choices=BUYER_AUTH_MODES,
        default=None,
        help="the API's buyer mode; token: each buyer sends a token of their own (default: "
        "TICKETS_BUYER_AUTH, else open)",
    )
    args = parser.parse_args()
    try:
        args.buyer_auth = args.buyer_auth or buyer_auth_from_env()
    except UsageError as exc:
        parser.error(str(exc))
    if os.environ.get("TICKETS_DATABASE_URL") is None:
        print('chaos: TICKETS_* not set; run eval "$(scripts/stack env)" first', file=sys.stderr)
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
