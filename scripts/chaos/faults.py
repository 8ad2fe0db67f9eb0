"""What the runner breaks things with: the stack's services (`scripts/stack` of this
repository) and the scenario's API, worker and notifier processes (their handles and logs),
the notifier mailing to an SMTP sink in the runner's process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from scripts.chaos.logs import append_log, read_log
from scripts.mail_sink import MailSink
from scripts.pipeline import ROOT, Pipeline, free_port
from scripts.waiting import poll_until

STACK = ROOT / "scripts" / "stack"
# How long one `scripts/stack` command may take before the runner gives up on it.
STACK_TIMEOUT_S = 240.0

_ASSIGNED = re.compile(r"partitions (assigned|revoked): \[([\d, ]*)\]")


class StackError(RuntimeError):
    pass


class Stack:
    """`scripts/stack` of this repository, run with the current environment (its ports), or
    with `env` over it: another stack's state dir and ports (the HA stack)."""

    def __init__(self, log: Path, env: Mapping[str, str] | None = None) -> None:
        self.log = log
        self.env = None if env is None else {**os.environ, **env}

    async def __call__(self, *args: str, timeout_s: float = STACK_TIMEOUT_S) -> str:
        proc = await asyncio.create_subprocess_exec(
            str(STACK),
            *args,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise StackError(f"scripts/stack {' '.join(args)}: no answer in {timeout_s}s") from None
        text = out.decode(errors="replace")
        append_log(self.log, f"$ scripts/stack {' '.join(args)}  (exit {proc.returncode})\n{text}")
        if proc.returncode != 0:
            raise StackError(f"scripts/stack {' '.join(args)} exited {proc.returncode}: {text}")
        return text

    async def heal(self) -> None:
        """Every service up (idempotent): later scenarios and tests need a healthy stack."""
        await self("up", "--services-only")


@dataclass
class ChaosPipeline(Pipeline):
    """Pipeline that reads its processes' logs and waits without blocking the loop, and
    runs notifiers (`python -m consumer.notify`) that mail to `sink` when it has one."""

    sink: MailSink | None = None
    notifiers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_notifier(self) -> subprocess.Popen[bytes]:
        """A notifier in the scenario's group, mailing to the sink, with a metrics port of
        its own (none of two notifiers, or of the stack's, clash)."""
        assert self.sink is not None, "a notifier needs the pipeline's SMTP sink"
        settings = msgspec.structs.replace(
            self.settings, smtp_url=self.sink.url, notify_metrics_port=free_port()
        )
        proc = self._spawn("notifier", [sys.executable, "-m", "consumer.notify"], settings)
        self.notifiers.append(proc)
        return proc

    def live_notifiers(self) -> list[subprocess.Popen[bytes]]:
        return [n for n in self.notifiers if n.poll() is None]

    def log_of(self, proc: subprocess.Popen[bytes]) -> str:
        return read_log(self.logs[proc.pid])

    def assignment(self, proc: subprocess.Popen[bytes]) -> list[int] | None:
        """The partitions a worker consumes now per its log; None while it has none."""
        current: list[int] | None = None
        for kind, parts in _ASSIGNED.findall(self.log_of(proc)):
            if kind == "revoked":
                current = None
            else:
                current = [int(p) for p in parts.split(",") if p.strip()] or None
        return current

    def live_workers(self) -> list[subprocess.Popen[bytes]]:
        return [w for w in self.workers if w.poll() is None]

    @staticmethod
    async def wait_exit(proc: subprocess.Popen[bytes], timeout_s: float) -> int | None:
        """The process's exit code, or None if it still runs after `timeout_s`."""

        async def exit_code() -> int | None:
            return proc.poll()

        return await poll_until(exit_code, timeout_s, interval_s=0.05)

    async def wait_assigned(self, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
        """Until the worker consumes partitions; False if it exits or times out first."""

        async def assigned_or_exited() -> str | None:
            if proc.poll() is not None:
                return "exited"
            return "assigned" if self.assignment(proc) else None

        return await poll_until(assigned_or_exited, timeout_s, interval_s=0.05) == "assigned"

    async def stop_all(self) -> None:
        """Every process (SIGTERM, then SIGKILL after 20 s), then the sink they mailed to."""
        procs = [*self.workers, *self.notifiers, *([self.api] if self.api is not None else [])]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            if await self.wait_exit(proc, 20.0) is None:
                proc.kill()
                await self.wait_exit(proc, 10.0)
        if self.sink is not None:
            self.sink.stop()
