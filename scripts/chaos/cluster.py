"""The HA stack as its scenarios see it: which Kafka node leads a partition, whether every
replica is in sync, which Redis server Sentinel names the primary. (How available the sale
stayed during a fault is scripts/chaos/availability.py's, as for every scenario.)"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio.sentinel import Sentinel

from scripts.waiting import poll_until
from shared.config import Settings


async def _partitions(settings: Settings, topics: list[str]) -> list[dict[str, object]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return [p for t in described for p in t["partitions"]]


async def leader_of(settings: Settings, topic: str, partition: int) -> int:
    """The node id leading the partition (-1 while it has none)."""
    for p in await _partitions(settings, [topic]):
        if p["partition"] == partition:
            return int(str(p["leader"]))
    raise LookupError(f"{topic} has no partition {partition}")


async def wait_leader_other_than(
    settings: Settings, topic: str, partition: int, node: int, timeout_s: float
) -> int | None:
    async def moved() -> int | None:
        try:
            leader = await leader_of(settings, topic, partition)
        except Exception:  # noqa: BLE001 - a cluster in turmoil may not answer yet
            return None
        return leader if leader not in (node, -1) else None

    return await poll_until(moved, timeout_s, interval_s=0.1)


async def wait_in_sync(settings: Settings, replicas: int, timeout_s: float) -> bool:
    """Until every partition of the scenario's topics has all `replicas` in sync."""
    topics = [settings.topic, settings.events_topic]

    async def in_sync() -> bool:
        try:
            parts = await _partitions(settings, topics)
        except Exception:  # noqa: BLE001 - asked again until the deadline
            return False
        return bool(parts) and all(len(p["isr"]) == replicas for p in parts)  # type: ignore[arg-type]

    return bool(await poll_until(in_sync, timeout_s, interval_s=0.25))


async def redis_primary_port(settings: Settings) -> int:
    """The port of the Redis server Sentinel names the primary now."""
    sentinel = Sentinel(settings.sentinels, socket_timeout=0.5)
    try:
        _, port = await sentinel.discover_master(settings.redis_sentinel_master)
    finally:
        for client in sentinel.sentinels:
            await client.aclose()
    return int(port)


async def redis_primary(settings: Settings) -> tuple[str, int]:
    """The stack's name (`redis` or `redis-replica`) and port of the server Sentinel names
    the primary now."""
    port = await redis_primary_port(settings)
    return ("redis" if port == urlsplit(settings.redis_url).port else "redis-replica"), port


async def wait_promoted(settings: Settings, old: int, timeout_s: float) -> int | None:
    """Until Sentinel names a primary other than the server on port `old`: its port."""

    async def promoted() -> int | None:
        try:
            port = await redis_primary_port(settings)
        except Exception:  # noqa: BLE001 - Sentinels mid-election
            return None
        return port if port != old else None

    return await poll_until(promoted, timeout_s, interval_s=0.1)
