"""shared/failures.py: what each exception means, decided in one place. The API answers with
`status` and counts `outcome`, so the two must tell the same story: 503 is "unavailable" and
retryable, 500 is "error" and is not, and nothing else is either."""

from __future__ import annotations

import uuid
from http import HTTPStatus

import psycopg
import psycopg_pool
import pytest
import redis.asyncio as aioredis
import redis.exceptions
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from shared import errors
from shared.config import Settings
from shared.failures import classify
from shared.inventory import Ask, Inventory

pytestmark = pytest.mark.unit

# exception: (status, outcome, what is down)
MEANINGS: dict[BaseException, tuple[int, str, str | None]] = {
    errors.NotFound(): (404, "not_found", None),
    errors.InvalidRequest(): (400, "invalid", None),
    errors.LimitExceeded(): (422, "over_limit", None),
    errors.IdempotencyConflict(): (422, "conflict", None),
    errors.IdempotencyInProgress(): (409, "conflict", None),
    errors.BrokerUnavailable(): (503, "unavailable", "kafka"),
    errors.Unavailable(): (503, "unavailable", "other"),
    psycopg.OperationalError("connection lost"): (503, "unavailable", "postgres"),
    psycopg_pool.PoolTimeout("no connection free"): (503, "unavailable", "postgres"),
    # lock_timeout: a stuck session holds the event row; the worker retries the batch.
    psycopg.errors.LockNotAvailable(): (503, "unavailable", "postgres"),
    redis.exceptions.ConnectionError(): (503, "unavailable", "redis"),
    redis.exceptions.TimeoutError(): (503, "unavailable", "redis"),
    redis.exceptions.ReadOnlyError(): (503, "unavailable", "redis"),
    # After a failover: the promoted replica has no scripts yet, or moved again mid-rebuild.
    redis.exceptions.NoScriptError(): (503, "unavailable", "redis"),
    errors.GateStale(): (503, "unavailable", "redis"),
    KafkaConnectionError(): (503, "unavailable", "kafka"),
    KafkaTimeoutError(): (503, "unavailable", "kafka"),
    ConnectionRefusedError(): (503, "unavailable", "other"),
    TimeoutError(): (503, "unavailable", "other"),
    # Error replies and failed queries are not cured by waiting.
    redis.exceptions.ResponseError("ERR Error running script"): (500, "error", None),
    psycopg.errors.UniqueViolation(): (500, "error", None),
    psycopg.errors.CheckViolation(): (500, "error", None),
    errors.CounterMissing(): (500, "error", None),
    ValueError(): (500, "error", None),
}


@pytest.mark.parametrize(
    ("exc", "meaning"), MEANINGS.items(), ids=[type(e).__name__ for e in MEANINGS]
)
def test_each_kind_has_its_status_outcome_and_dependency(
    exc: BaseException, meaning: tuple[int, str, str | None]
) -> None:
    failure = classify(exc)
    assert (failure.status, failure.outcome, failure.dependency) == meaning


@pytest.mark.parametrize("exc", MEANINGS, ids=[type(e).__name__ for e in MEANINGS])
def test_status_and_outcome_agree(exc: BaseException) -> None:
    failure = classify(exc)
    unavailable = failure.status == HTTPStatus.SERVICE_UNAVAILABLE
    assert unavailable == (failure.outcome == "unavailable") == failure.retryable
    bug = failure.status == HTTPStatus.INTERNAL_SERVER_ERROR
    assert bug == (failure.outcome == "error")


async def test_an_error_inside_the_gates_lua_script_is_a_bug_not_an_outage(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    """A real error raised inside reserve.lua (its users hash is not a hash): retrying
    cannot fix it, so it is not retried, and it is answered 500 and counted "error"."""
    inventory = Inventory(redis_client, settings.redis_prefix)
    await inventory.open(1, 3)
    await redis_client.set(inventory.keys(1).users, "not a hash")
    with pytest.raises(redis.exceptions.ResponseError) as raised:
        await inventory.reserve(1, 10, [Ask(uuid.uuid4(), "u", 1)])
    assert "WRONGTYPE" in str(raised.value)
    failure = classify(raised.value)
    assert (failure.status, failure.outcome, failure.retryable) == (500, "error", False)
