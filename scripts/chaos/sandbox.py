"""Isolation: one scenario's own database, Redis key prefix, Kafka topics and consumer group,
so scenarios never see each other's data, and where its events' requests land."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import uuid
from dataclasses import dataclass

import msgspec
import psycopg
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from psycopg import sql

from scripts.loadgen.tokens import BuyerAuth
from shared.config import Settings
from shared.contracts import event_key
from shared.db import migrate, with_database
from shared.keys import RedisKeys
from shared.redis_clients import open_redis
from shared.topics import ensure_topics


@dataclass
class Sandbox:
    """One scenario's own database, Redis prefix, topics and consumer group."""

    settings: Settings
    admin_url: str
    db_name: str

    @classmethod
    async def create(
        cls, base: Settings, partitions: int, buyer_auth: BuyerAuth = "open"
    ) -> Sandbox:
        ns = f"chaos{uuid.uuid4().hex[:10]}"
        admin_url = with_database(base.database_url, "postgres")
        async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
            await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(ns)))
        url = with_database(base.database_url, ns)
        await asyncio.to_thread(migrate, url)
        settings = msgspec.structs.replace(
            base.namespaced(ns),
            database_url=url,
            topic_partitions=partitions,
            admin_token=f"admin-{ns}",
            # A buyer waiting for a dead broker hears 503 after 2 s instead of 5.
            produce_timeout_s=2.0,
            # A backlog spans several batches, so a kill lands mid-batch more often.
            batch_max=50,
            fault_point="",
            log_json=False,
            log_level="INFO",
            **_buyers(buyer_auth),
        )
        await ensure_topics(settings)
        return cls(settings, admin_url, ns)

    async def destroy(self) -> None:
        with contextlib.suppress(psycopg.Error, OSError):
            async with await psycopg.AsyncConnection.connect(
                self.admin_url, autocommit=True
            ) as conn:
                await conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(self.db_name)
                    )
                )
        everything = RedisKeys(self.settings.redis_prefix).everything
        async with open_redis(self.settings) as client:
            try:
                keys = [k async for k in client.scan_iter(match=everything, count=1000)]
                if keys:
                    await client.delete(*keys)
            except Exception as exc:  # noqa: BLE001 - cleanup is best effort
                print(
                    f"chaos: could not delete Redis keys of {self.db_name}: {exc!r}",
                    file=sys.stderr,
                )
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap_servers)
        try:
            await admin.start()
            s = self.settings
            await admin.delete_topics([s.topic, s.dlq_topic, s.events_topic, s.notify_dlq_topic])
        except (KafkaError, OSError) as exc:
            print(f"chaos: could not delete topics of {self.db_name}: {exc!r}", file=sys.stderr)
        finally:
            await admin.close()


def _buyers(mode: BuyerAuth) -> dict[str, str]:
    """The API's buyer settings. Token mode signs with a secret of the scenario's own, so
    the runner can mint its buyers' tokens whatever the environment's identity provider."""
    if mode == "open":
        return {"buyer_auth": "open"}
    return {
        "buyer_auth": "token",
        "jwt_secret": secrets.token_hex(32),
        "jwt_public_key": "",
        "jwt_algorithm": "HS256",
    }


def partition_of(event_id: int, partitions: int) -> int:
    """The partition the API's producer picks for an event (murmur2 of the key, as Java)."""
    return int(murmur2(event_key(event_id)) & 0x7FFFFFFF) % partitions
