"""Phase 7: the sold-out fast path, every POST for the sold-out event answered 409 from the
Redis gate, measured with wrk."""

from __future__ import annotations

from scripts.bench.world import World
from scripts.bench.wrk import WrkResult, measured_wrk


async def phase_sold_out(world: World) -> WrkResult:
    """7. The sold-out fast path: every POST for the sold-out event is answered 409."""
    return await measured_wrk(
        world,
        "sold-out",
        world.pipeline.url,
        world.events["flash"],
        "409",
        world.sizes.http_s,
        "api",
    )
