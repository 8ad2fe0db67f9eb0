"""A request answered 503 never takes a seat, whatever Redis loses (docs/deadlines.md).

The API waits for Kafka's acknowledgement only until the request's deadline; with a deadline
of a few milliseconds, many requests reach the topic in time while their acknowledgement
comes too late, so the buyer hears 503 although the record is there. Redis then loses its
data before a worker reads the topic, as a wipe during a Kafka outage would do: none of those
requests may be decided."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import msgspec
import psycopg
import pytest
import redis.asyncio as aioredis

from scripts.chaos.observe import read_records
from scripts.pipeline import running_pipeline
from shared.config import Settings
from shared.contracts import BookingRequested, decode_command
from shared.deadlines import appended_after_expiry
from tests.sale import SaleClient

pytestmark = pytest.mark.e2e

REQUESTS = 400


async def test_a_request_answered_503_takes_no_seat_after_redis_lost_its_data(
    topics: Settings, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    settings = msgspec.structs.replace(
        topics,
        produce_timeout_s=0.015,  # the acknowledgement often misses this
        rate_limit_address_per_s=10_000.0,
        rate_limit_address_burst=10_000,
    )
    async with (
        running_pipeline(settings, tmp_path / "logs") as pipeline,
        httpx.AsyncClient(base_url=pipeline.url, timeout=30) as http,
    ):
        for worker in pipeline.workers:
            pipeline.terminate(worker)  # nothing is decided before Redis loses its data
        sale = SaleClient(http, settings.admin_token)
        event_id = await sale.create_event(capacity=REQUESTS, per_user_limit=1)
        answers = await asyncio.gather(*(sale.book(event_id, f"u{i}") for i in range(REQUESTS)))
        codes = Counter(a.status_code for a in answers)
        accepted = {a.json()["booking_id"] for a in answers if a.status_code == 202}
        in_time = {
            str(request.booking_id)
            for record in await read_records(settings, settings.topic)
            if isinstance(request := decode_command(record.value), BookingRequested)
            and not appended_after_expiry(record, request)
        }
        refused_in_time = in_time - accepted
        # Else this run cannot show anything: the broker answered every one in time or late.
        assert refused_in_time, f"no request answered 503 reached the topic in time: {codes}"

        # Redis loses everything of this sale: the gate, the caches, any marks kept there.
        keys = [key async for key in redis_client.scan_iter(f"{settings.redis_prefix}:*")]
        assert keys
        await redis_client.delete(*keys)

        burst = pipeline.start_worker("--stop-when-idle")
        assert await asyncio.to_thread(burst.wait, 60) == 0

        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            rows = await (await conn.execute("SELECT booking_id::text FROM bookings")).fetchall()
            decided = {row[0] for row in rows}
        assert decided & refused_in_time == set(), (
            f"{len(decided & refused_in_time)} of {len(refused_in_time)} requests answered 503 "
            f"were decided; answers {codes}"
        )
        assert decided == accepted  # and every 202 was decided
        audit = await sale.audit(event_id)
        assert audit["verdict"] == "CLEAN" and audit["sold"] == len(accepted)
