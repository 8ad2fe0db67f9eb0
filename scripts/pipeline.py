"""Process control for everything that runs the system from outside (end-to-end tests, the
chaos runner, the benchmark): the API and workers as real processes with a given
configuration, each logging to its own file, and the calls to start, wait for, reap and stop
any child."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec

from scripts.waiting import poll_until
from shared.config import Settings

ROOT = Path(__file__).resolve().parent.parent
# The real API's server flags; the benchmark's bare app gets the very same ones.
# Open Server-Sent Events streams never end by themselves: cut them 5 s into a shutdown.
UVICORN_FLAGS = [
    "--no-access-log",
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--timeout-graceful-shutdown",
    "5",
]


def settings_env(settings: Settings) -> dict[str, str]:
    """The TICKETS_* variables that reproduce `settings` in a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETS_")}
    for name in settings.__struct_fields__:
        value = getattr(settings, name)
        env[f"TICKETS_{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(
    args: list[str], log_path: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a child in the repository; its output goes to `log_path` (or a pipe)."""
    if log_path is None:
        return subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def terminate(proc: subprocess.Popen[bytes] | None, timeout_s: float = 20.0) -> int | None:
    """SIGTERM, then SIGKILL if it does not stop in time; no-op when it has already ended
    (or was never started). Returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@dataclass
class ChildExit:
    """How a child we waited for ended, with its own CPU time (from wait4; its ru_maxrss is
    not used: it counts the forked copy of this process before exec)."""

    code: int
    wall_s: float
    cpu_s: float


async def wait_child(
    proc: subprocess.Popen[bytes], timeout_s: float, started: float | None = None
) -> ChildExit:
    """Reap `proc` with wait4 (polled, so the event loop keeps running) to get its own CPU
    time; SIGKILL it if it runs past `timeout_s` or if we are cancelled."""
    started = time.monotonic() if started is None else started
    try:
        reaped = await poll_until(
            lambda: _reaped(proc.pid),
            timeout_s - (time.monotonic() - started),
            interval_s=0.02,
        )
    except asyncio.CancelledError:
        proc.kill()
        proc.wait()
        raise
    if reaped is None:
        proc.kill()
        reaped = await asyncio.to_thread(_reap_now, proc.pid)
    status, usage = reaped
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildExit(
        code=proc.returncode,
        wall_s=time.monotonic() - started,
        cpu_s=usage.ru_utime + usage.ru_stime,
    )


async def _reaped(pid: int) -> tuple[int, resource.struct_rusage] | None:
    """wait4: (wait status, the child's own rusage), or None if it is still running."""
    got, status, usage = os.wait4(pid, os.WNOHANG)  # noqa: ASYNC222 (WNOHANG: never blocks)
    return (status, usage) if got else None


def _reap_now(pid: int) -> tuple[int, resource.struct_rusage]:
    """wait4, blocking: for a child just killed."""
    _, status, usage = os.wait4(pid, 0)
    return status, usage


async def wait_http(
    url: str, proc: subprocess.Popen[bytes] | None, path: str = "/health", timeout_s: float = 30.0
) -> None:
    """Until GET `path` answers 200; fails at once if the server process has exited."""

    async def ready() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}")
        with contextlib.suppress(httpx.TransportError):
            return (await client.get(path)).status_code == 200
        return False

    async with httpx.AsyncClient(base_url=url) as client:
        if not await poll_until(ready, timeout_s):
            raise TimeoutError(f"{url}{path} not ready after {timeout_s}s")


@dataclass
class Pipeline:
    """An API process and any number of worker processes sharing one configuration."""

    settings: Settings
    log_dir: Path
    port: int = field(default_factory=free_port)
    api: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    worker_metrics_urls: list[str] = field(default_factory=list)
    logs: dict[int, Path] = field(default_factory=dict)  # pid -> its log file
    _started: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(
        self, name: str, args: list[str], settings: Settings, **env: str
    ) -> subprocess.Popen[bytes]:
        self._started += 1
        log_path = self.log_dir / f"{self._started:02d}-{name}.log"
        proc = spawn(args, log_path, env={**settings_env(settings), **env})
        self.logs[proc.pid] = log_path
        return proc

    def start_api(self, settings: Settings | None = None) -> None:
        """uvicorn with UVICORN_FLAGS; with TICKETS_API_WORKERS above 1, `python -m api`
        (several processes on one port)."""
        settings = settings or self.settings
        if settings.api_workers > 1:
            args = [sys.executable, "-m", "api", "--host", "127.0.0.1", "--port", str(self.port)]
            metrics = str(self.log_dir / f"metrics-{self._started + 1:02d}")
            self.api = self._spawn("api", args, settings, PROMETHEUS_MULTIPROC_DIR=metrics)
            return
        args = [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1"]
        args += ["--port", str(self.port), *UVICORN_FLAGS]
        self.api = self._spawn("api", args, settings)

    def start_worker(
        self, *extra: str, settings: Settings | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a worker with a metrics port of its own (see `worker_metrics_urls`)."""
        port = free_port()
        own = msgspec.structs.replace(settings or self.settings, worker_metrics_port=port)
        worker = self._spawn("worker", [sys.executable, "-m", "consumer", *extra], own)
        self.workers.append(worker)
        self.worker_metrics_urls.append(f"http://127.0.0.1:{port}/metrics")
        return worker

    async def wait_ready(self, timeout_s: float = 30.0, path: str = "/health") -> None:
        try:
            await wait_http(self.url, self.api, path, timeout_s)
        except (RuntimeError, TimeoutError) as exc:
            raise type(exc)(f"{exc}; see {self.log_dir}") from None

    @staticmethod
    def terminate(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> int:
        """SIGTERM, then SIGKILL if it does not stop in time. Returns the exit code."""
        code = terminate(proc, timeout_s)
        assert code is not None
        return code

    def stop(self) -> None:
        for worker in self.workers:
            terminate(worker)
        terminate(self.api)


@contextlib.asynccontextmanager
async def running_pipeline(
    settings: Settings, log_dir: Path, ready_path: str = "/ready"
) -> AsyncIterator[Pipeline]:
    """An API and one worker over `settings`, ready (`ready_path` answers) until the block
    ends; both stopped whatever happens."""
    running = Pipeline(settings, log_dir=log_dir)
    running.start_api()
    running.start_worker()
    try:
        await running.wait_ready(path=ready_path)
        yield running
    finally:
        running.stop()
