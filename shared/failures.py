"""What each exception means, decided in one place: the HTTP status the API answers with, the
outcome the booking metric counts, and whether the worker backs off and retries (a dependency
that heals by itself) or stops (a bug, or a Redis script error that retrying cannot fix).

The API's answer and its metric both come from `classify` (through api/problems.py, which
adds Litestar's own HTTP refusals), so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

import psycopg
import redis.exceptions
from aiokafka.errors import KafkaError

from shared import errors


@dataclass(frozen=True, slots=True)
class Failure:
    status: HTTPStatus
    outcome: str  # tickets_booking_requests_total{outcome}
    dependency: str | None = None  # what is down (a metric label); None: not a dependency

    @property
    def retryable(self) -> bool:
        """A dependency failed: retrying after a pause can succeed."""
        return self.dependency is not None


BUG = Failure(HTTPStatus.INTERNAL_SERVER_ERROR, "error")

# Looked up along the exception's MRO: the most specific class listed wins.
_BY_TYPE: dict[type[BaseException], Failure] = {
    errors.NotFound: Failure(HTTPStatus.NOT_FOUND, "not_found"),
    errors.InvalidRequest: Failure(HTTPStatus.BAD_REQUEST, "invalid"),
    errors.Unauthenticated: Failure(HTTPStatus.UNAUTHORIZED, "unauthenticated"),
    errors.Forbidden: Failure(HTTPStatus.FORBIDDEN, "forbidden"),
    errors.NotAdmitted: Failure(HTTPStatus.FORBIDDEN, "not_admitted"),
    errors.EmailTaken: Failure(HTTPStatus.CONFLICT, "conflict"),
    errors.WrongStatus: Failure(HTTPStatus.CONFLICT, "conflict"),
    errors.RateLimited: Failure(HTTPStatus.TOO_MANY_REQUESTS, "rate_limited"),
    errors.LimitExceeded: Failure(HTTPStatus.UNPROCESSABLE_ENTITY, "over_limit"),
    errors.Unsatisfiable: Failure(HTTPStatus.UNPROCESSABLE_ENTITY, "invalid"),
    errors.IdempotencyConflict: Failure(HTTPStatus.UNPROCESSABLE_ENTITY, "conflict"),
    errors.IdempotencyInProgress: Failure(HTTPStatus.CONFLICT, "conflict"),
    errors.BrokerUnavailable: Failure(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "kafka"),
    errors.Unavailable: Failure(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "other"),
    errors.MailUnavailable: Failure(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "smtp"),
    # Redis failed over again while the gate was being rebuilt: the next try rebuilds anew.
    errors.GateStale: Failure(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "redis"),
    # Connection lost, server restarting, pool exhausted (PoolTimeout is one of these).
    psycopg.OperationalError: Failure(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "postgres"),
    redis.exceptions.ConnectionError: Failure(
        HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "redis"
    ),
    redis.exceptions.TimeoutError: Failure(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "redis"),
    # A replica promoted, or a primary turned replica, refuses writes until clients reconnect.
    redis.exceptions.ReadOnlyError: Failure(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "redis"),
    # A promoted replica has no scripts cached yet; redis-py loads them on the next call.
    redis.exceptions.NoScriptError: Failure(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "redis"),
    KafkaError: Failure(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "kafka"),
    # Sockets failing below a driver, and timeouts of our own (TimeoutError is an OSError).
    OSError: Failure(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "other"),
}


def classify(exc: BaseException) -> Failure:
    """The meaning of `exc`; BUG for anything not listed (other driver errors included:
    a failed query or a Lua error is not cured by waiting)."""
    for kind in type(exc).__mro__:
        failure = _BY_TYPE.get(kind)
        if failure is not None:
            return failure
    return BUG
