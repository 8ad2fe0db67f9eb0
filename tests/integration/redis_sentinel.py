"""A Redis primary, its replica and three Sentinels (quorum 2) as real processes of a test's
own, on free ports, with the means to lose writes in a failover: cut the replica off, write,
kill -9 the primary and let the Sentinels promote the replica."""

from __future__ import annotations

import subprocess
from pathlib import Path

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel

from scripts.pipeline import free_port
from scripts.waiting import poll_until
from shared.config import Settings

MASTER = "tickets-test"


class SentinelRedis:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.primary_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def _spawn(self, binary: str, port: int, *args: str) -> None:
        with open(self.root / f"{port}.log", "ab") as log:  # the child keeps its own copy
            self.procs[port] = subprocess.Popen(
                [binary, *args, "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def start(self) -> None:
        self._spawn("redis-server", self.primary_port, "--repl-diskless-sync-delay", "0")
        self._spawn(
            "redis-server",
            self.replica_port,
            "--replicaof",
            "127.0.0.1",
            str(self.primary_port),
        )
        for port in self.sentinel_ports:
            conf = self.root / f"sentinel-{port}.conf"
            conf.write_text(
                f"sentinel monitor {MASTER} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 5000\n"
            )
            self._spawn("redis-sentinel", port, str(conf))
        assert await poll_until(self._replicating, 20), "the replica did not sync"
        assert await poll_until(self._watching, 30), "the Sentinels do not watch both servers"

    def settings(self, base: Settings) -> Settings:
        return msgspec.structs.replace(
            base,
            redis_url=f"redis://127.0.0.1:{self.primary_port}/0",
            redis_sentinels=",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports),
            redis_sentinel_master=MASTER,
        )

    async def _info(self, port: int) -> dict[str, str]:
        client = aioredis.Redis(port=port, decode_responses=True, socket_timeout=1)
        try:
            return await client.info("replication")  # type: ignore[no-any-return]
        finally:
            await client.aclose()

    async def _watching(self) -> bool:
        """Every Sentinel knows the other two and the replica (it learns of them within
        seconds): only then can they agree on a failover."""
        for port in self.sentinel_ports:
            sentinel = aioredis.Redis(port=port, decode_responses=True)
            try:
                master = await sentinel.sentinel_master(MASTER)
            finally:
                await sentinel.aclose()
            if int(master["num-other-sentinels"]) < 2 or int(master["num-slaves"]) < 1:
                return False
        return True

    async def _replicating(self) -> bool:
        info = await self._info(self.replica_port)
        return info.get("master_link_status") == "up"

    async def replicated(self) -> bool:
        """True once the replica acknowledged everything the primary wrote (WAIT)."""
        primary = aioredis.Redis(port=self.primary_port)
        try:
            return int(await primary.wait(1, 10_000)) == 1
        finally:
            await primary.aclose()

    async def cut_replica(self) -> None:
        """Until the replica has lost its link and cannot get it back: it authenticates with a
        password the primary does not have. (A frozen replica would not do: the kernel keeps
        what the primary sends for it, and it reads that when it wakes.)"""
        replica = aioredis.Redis(port=self.replica_port)
        primary = aioredis.Redis(port=self.primary_port, decode_responses=True)
        try:
            await replica.config_set("masterauth", "not-the-password")
            await primary.client_kill_filter(_type="replica")

            async def cut() -> bool:
                return (await primary.info("replication"))["connected_slaves"] == 0

            assert await poll_until(cut, 10, interval_s=0.05), "the replica is still connected"
        finally:
            await replica.aclose()
            await primary.aclose()

    def kill_primary(self) -> None:
        proc = self.procs[self.primary_port]
        proc.kill()
        proc.wait(10)

    async def promoted(self) -> bool:
        """Until the Sentinels name the replica as the primary the way a client asks them
        (redis-py's discover_master: some Sentinel reports it up and master), and it takes
        writes. One Sentinel naming it is not enough: it may still flag the new primary."""
        sentinel = Sentinel([("127.0.0.1", p) for p in self.sentinel_ports], socket_timeout=1)

        async def replica_is_primary() -> bool:
            try:
                _, port = await sentinel.discover_master(MASTER)
            except MasterNotFoundError:
                return False
            role = (await self._info(self.replica_port)).get("role")
            return int(port) == self.replica_port and role == "master"

        try:
            return bool(await poll_until(replica_is_primary, 30, interval_s=0.1))
        finally:
            for client in sentinel.sentinels:
                await client.aclose()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
