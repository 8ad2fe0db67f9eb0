"""What a result is worth comparing with: the commit, the machine, the versions of every
package and service, and the service processes whose CPU the run accounts."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import psycopg

from scripts.bench.proc import parent_pid, read_proc
from scripts.bench.world import MIB
from scripts.pipeline import ROOT
from shared.config import Settings
from shared.redis_clients import open_redis


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def git_commit() -> str:
    """HEAD, with "+dirty" when tracked files differ from it."""
    try:
        head = _git("rev-parse", "--short=12", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


def machine() -> dict[str, Any]:
    """nproc, CPU model, memory, kernel and load averages now."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model.group(1).strip() if model else "unknown",
        "memory_gib": round(int(mem.group(1)) / MIB / MIB, 1) if mem else None,
        "kernel": platform.release(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def find_kafka(bootstrap: str) -> tuple[int | None, str]:
    """(pid, version) of the local `kafka.Kafka` process that listens on our bootstrap port;
    the version from the jar names on its classpath (the broker does not report it)."""
    port = bootstrap.split(",")[0].rsplit(":", 1)[-1]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = [
                a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0")
            ]
        except OSError:
            continue
        if "kafka.Kafka" not in argv:
            continue
        args = [a for a in argv if a]
        try:
            props = Path(args[-1]) if args[-1].endswith(".properties") else None
            if props is not None and f":{port}" not in props.read_text():
                continue
        except OSError:
            continue
        return int(proc.name), _kafka_jar_version(args) or "unknown"
    return None, "unknown"


def _kafka_jar_version(args: list[str]) -> str | None:
    for flag in ("-cp", "-classpath"):
        if flag not in args:
            continue
        for entry in args[args.index(flag) + 1].split(":"):
            names = (
                [p.name for p in Path(entry[:-1]).glob("kafka_*.jar")]
                if entry.endswith("*")
                else [Path(entry).name]
            )
            for name in names:
                found = re.fullmatch(r"kafka_[\d.]+-([\d.]+)\.jar", name)
                if found:
                    return found.group(1)
    return None


def package_versions() -> dict[str, str]:
    names = ["litestar", "uvicorn", "uvloop", "httptools", "aiokafka", "psycopg", "redis"]
    names += ["msgspec"]
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    out["wrk"] = (wrk.stdout or wrk.stderr).split("\n", 1)[0].split(" Copyright")[0].strip()
    return out


async def services(settings: Settings) -> tuple[dict[str, Any], dict[str, int]]:
    """Versions of PostgreSQL (with its durability settings), Redis and Kafka, and the pids
    of their servers on this machine (for CPU accounting; missing ones are skipped)."""
    pids: dict[str, int] = {}
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        names = ["server_version", "fsync", "synchronous_commit", "wal_sync_method"]
        names += ["full_page_writes", "shared_buffers"]
        pg = {n: (await (await conn.execute(f"SHOW {n}")).fetchone() or ["?"])[0] for n in names}
        backend = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone() or [0])[0]
    postmaster = parent_pid(backend)  # the postmaster forks every backend
    if postmaster:
        pids["postgres"] = postmaster
    client = open_redis(settings)
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    if read_proc(int(info.get("process_id", 0))):
        pids["redis"] = int(info["process_id"])
    kafka_pid, kafka = find_kafka(settings.kafka_bootstrap)
    if kafka_pid:
        pids["kafka"] = kafka_pid
    versions = {"postgresql": pg, "redis": info.get("redis_version", "unknown"), "kafka": kafka}
    return versions, pids
