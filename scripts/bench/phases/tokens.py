"""Phases 2t and 7t: the intake and the sold-out fast path with buyers' tokens checked and
the rate limits on. A second API process in token mode; each request carries its buyer's
bearer token, buyers in turn, enough of them that no per-buyer limit refuses: the rows
measure what the checks cost."""

from __future__ import annotations

from pathlib import Path

from scripts.bench.progress import say
from scripts.bench.world import World
from scripts.bench.wrk import WrkResult, measured_wrk
from scripts.loadgen.tokens import TokenMinter

# A run of ~15 s at ~10,000/s: under 30 requests per buyer, inside its burst of 20 plus 10/s.
BUYERS = 5_000


def mint_buyers(secret: str, count: int, path: Path) -> Path:
    """`count` distinct buyers, one "<user id> <token>" line each, for post.lua."""
    minter = TokenMinter(secret)
    users = [f"bench-buyer-{i}" for i in range(count)]
    path.write_text("".join(f"{user} {minter.mint(user)}\n" for user in users))
    return path


async def start_token_api(world: World) -> Path:
    """The token-mode API and the file of its buyers."""
    world.token_pipeline.start_api()
    assert world.token_pipeline.api is not None
    world.monitor.watch("api-tokens", world.token_pipeline.api.pid)
    await world.token_pipeline.wait_ready(timeout_s=60, path="/ready")
    buyers = mint_buyers(world.tokens.jwt_secret, BUYERS, world.log_dir / "buyers.txt")
    say("intake-tokens", f"token-mode API up at {world.token_pipeline.url}; {BUYERS} buyers")
    return buyers


async def phase_intake_tokens(world: World, buyers: Path) -> WrkResult:
    """2t. Row 2 with a bearer token per request and both rate limits counted."""
    return await measured_wrk(
        world,
        "intake-tokens",
        world.token_pipeline.url,
        world.events["intake"],
        "202",
        world.sizes.http_s,
        "api-tokens",
        buyers,
    )


async def phase_sold_out_tokens(world: World, buyers: Path) -> WrkResult:
    """7t. Row 7 with a bearer token per request (the sold-out answer comes before any
    rate limit, so this is the token check's cost alone)."""
    return await measured_wrk(
        world,
        "sold-out-tokens",
        world.token_pipeline.url,
        world.events["flash"],
        "409",
        world.sizes.http_s,
        "api-tokens",
        buyers,
    )
