"""Run the API and workers as real processes with a given configuration: for end-to-end
tests, the chaos runner and the benchmark. Each process logs to its own file."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec

from shared.config import Settings

ROOT = Path(__file__).resolve().parent.parent


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


@dataclass
class Pipeline:
    """An API process and any number of worker processes sharing one configuration."""

    settings: Settings
    log_dir: Path
    port: int = field(default_factory=free_port)
    api: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    worker_metrics_urls: list[str] = field(default_factory=list)
    _started: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, args: list[str], settings: Settings) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._started += 1
        with open(self.log_dir / f"{self._started:02d}-{name}.log", "wb") as log:
            return subprocess.Popen(
                args, cwd=ROOT, env=settings_env(settings), stdout=log, stderr=subprocess.STDOUT
            )

    def start_api(self, settings: Settings | None = None) -> None:
        self.api = self._spawn(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--loop",
                "uvloop",
                "--http",
                "httptools",
            ],
            settings or self.settings,
        )

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
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.url) as client:
            while time.monotonic() < deadline:
                if self.api is not None and self.api.poll() is not None:
                    raise RuntimeError(f"API exited with {self.api.returncode}; see {self.log_dir}")
                try:
                    if (await client.get(path)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"API not ready on {path} after {timeout_s}s; see {self.log_dir}")

    @staticmethod
    def terminate(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> int:
        """SIGTERM, then SIGKILL if it does not stop in time. Returns the exit code."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def stop(self) -> None:
        for worker in self.workers:
            self.terminate(worker)
        if self.api is not None:
            self.terminate(self.api)
