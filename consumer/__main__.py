"""`python -m consumer [--stop-when-idle]`: run the finalizer worker until SIGTERM."""

from __future__ import annotations

import gc

# Off until shared.heap.settle() turns it back on: what the start builds (modules, clients)
# lives on, so collecting while importing and connecting only costs start-up time.
gc.disable()

import argparse

import uvloop

from consumer.worker import Worker, stop_on_signals
from shared import logs
from shared.config import Settings, load_or_exit


async def _run(settings: Settings, stop_when_idle: bool) -> None:
    worker = Worker(settings, stop_when_idle=stop_when_idle)
    with stop_on_signals(worker.stop):
        await worker.run()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m consumer", description=__doc__)
    parser.add_argument(
        "--stop-when-idle",
        action="store_true",
        help="exit once every assigned partition is consumed (burst mode, for tests and drains)",
    )
    args = parser.parse_args()
    settings = load_or_exit()
    logs.configure(settings)
    uvloop.run(_run(settings, args.stop_when_idle))


if __name__ == "__main__":
    main()
