"""Phase 1 (and 1a, 1b, 1c): the HTTP ceiling, a bare Litestar handler (bare_app.py) under
the real API's uvicorn flags, measured with wrk."""

from __future__ import annotations

import sys
from pathlib import Path

from scripts.bench.progress import say
from scripts.bench.world import World
from scripts.bench.wrk import WrkResult, measured_wrk
from scripts.pipeline import UVICORN_FLAGS, free_port, spawn, terminate, wait_http

BARE_APP_DIR = Path(__file__).resolve().parent.parent


async def phase_http_ceiling(world: World) -> WrkResult:
    """1. The bare Litestar handler under the real API's uvicorn flags."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "--app-dir", str(BARE_APP_DIR), "bare_app:app"]
    args += ["--host", "127.0.0.1", "--port", str(port), *UVICORN_FLAGS]
    world.bare = spawn(args, world.log_dir / "00-bare-app.log")
    world.monitor.watch("bare-app", world.bare.pid)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_http(url, world.bare)
        say("http-ceiling", f"bare Litestar app up at {url}")
        return await measured_wrk(
            world, "http-ceiling", url, 1, "202", world.sizes.http_s, "bare-app"
        )
    finally:
        terminate(world.bare)
        world.monitor.unwatch("bare-app")


def api_flags_match(pid: int) -> bool:
    """True when the real API runs with UVICORN_FLAGS (what the bare app got)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    return all(flag in argv for flag in UVICORN_FLAGS) and (
        argv[argv.index("--loop") + 1] == "uvloop" and argv[argv.index("--http") + 1] == "httptools"
    )
