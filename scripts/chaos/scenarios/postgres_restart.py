"""postgres_restart: stop PostgreSQL for 3 s mid-sale, later kill -9 it; the worker retries
with backoff and loses nothing."""

from __future__ import annotations

from scripts.chaos.nemesis import service_outage
from scripts.chaos.scenario import Run, Spec


async def inject(run: Run) -> None:
    """A clean stop at a quarter sold, a kill -9 past half."""
    await run.wait_sold(0.25, timeout_s=20)
    await service_outage(run, "postgres", "stop", 3.0, "postgres stopped", "postgres started")
    await run.wait_sold(0.55, timeout_s=20)
    await service_outage(
        run, "postgres", "kill9", 1.0, "kill -9 postgres", "postgres started (crash recovery)"
    )
    logs = "".join(run.pipeline.log_of(w) for w in run.pipeline.workers)
    # The worker's pool reconnects with backoff while the batch waits for a connection; past
    # the pool's timeout the batch itself is retried with backoff.
    reconnects, retries = logs.count("error connecting"), logs.count("retrying in")
    run.expect(
        "the worker waited out the outages, reconnecting with backoff",
        reconnects + retries > 0,
        f"{reconnects} reconnection attempts and {retries} batch retries logged",
    )


SPEC = Spec(
    "postgres_restart",
    "PostgreSQL stopped, then killed, mid-sale",
    inject,
    duration_s=20,
)
