"""Every Redis client of the service is built here: straight to `redis_url`, or, with
TICKETS_REDIS_SENTINELS, through Sentinel to whichever server is the primary now."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from shared.config import Settings

# How long a Sentinel may take to answer "who is the primary?" before the next is asked.
SENTINEL_TIMEOUT_S = 0.5


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool with the blocking pool's behaviour at its limit: a burst of requests
    waits for a free connection instead of failing with "Too many connections". Closed
    (the client's aclose), it closes its connections to the Sentinels too."""

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        if inuse_connections:  # not a switch to a new primary: the client is closing
            for sentinel in self.sentinel_manager.sentinels:
                await sentinel.aclose()


def open_redis(
    settings: Settings,
    *,
    decode_responses: bool = True,
    socket_timeout: float | None = 2.0,
    health_check_interval: int = 10,
) -> Redis:
    """A client for the primary. Text replies and short timeouts by default, so a dead Redis
    fails a request quickly instead of hanging it; past `redis_max_connections` a request
    waits (up to 2 s) for a free connection rather than failing. Under Sentinel, a
    connection made after a failover goes to the promoted server by itself."""
    options: dict[str, Any] = {
        "decode_responses": decode_responses,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": 2,
        "health_check_interval": health_check_interval,
        "max_connections": settings.redis_max_connections,
        "timeout": 2,
    }
    if not settings.sentinels:
        return Redis.from_pool(BlockingConnectionPool.from_url(settings.redis_url, **options))
    url = urlsplit(settings.redis_url)
    database = url.path.strip("/")
    sentinel = Sentinel(
        settings.sentinels,
        sentinel_kwargs={
            "socket_timeout": SENTINEL_TIMEOUT_S,
            "socket_connect_timeout": SENTINEL_TIMEOUT_S,
        },
    )
    client: Redis = sentinel.master_for(
        settings.redis_sentinel_master,
        connection_pool_class=BlockingSentinelPool,
        db=int(database) if database.isdigit() else 0,
        username=url.username,
        password=url.password,
        **options,
    )
    return client
