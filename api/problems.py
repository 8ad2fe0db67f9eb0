"""The one place that maps errors to HTTP problem details (RFC 9457, problem+json)."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import msgspec
import psycopg
import redis.exceptions
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from shared import errors

log = logging.getLogger(__name__)

RETRY_AFTER_S = "1"

_STATUS: dict[type[errors.TicketsError], HTTPStatus] = {
    errors.NotFound: HTTPStatus.NOT_FOUND,
    errors.InvalidRequest: HTTPStatus.BAD_REQUEST,
    errors.LimitExceeded: HTTPStatus.UNPROCESSABLE_ENTITY,
    errors.IdempotencyConflict: HTTPStatus.UNPROCESSABLE_ENTITY,
    errors.IdempotencyInProgress: HTTPStatus.CONFLICT,
    errors.Unavailable: HTTPStatus.SERVICE_UNAVAILABLE,
}


PROBLEM_JSON = "application/problem+json"


class Problem(msgspec.Struct):
    """How every error is answered, for the OpenAPI document (400s also carry `errors`)."""

    status: int
    title: str
    detail: str


def documented(*statuses: HTTPStatus) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the errors a route answers with."""
    return {
        status.value: ResponseSpec(
            Problem, description=status.phrase, media_type=PROBLEM_JSON, generate_examples=False
        )
        for status in statuses
    }


def _problem(status: HTTPStatus, detail: str, **extra: Any) -> ProblemDetailsException:
    headers = {"Retry-After": RETRY_AFTER_S} if status == HTTPStatus.SERVICE_UNAVAILABLE else None
    return ProblemDetailsException(
        status_code=status,
        title=status.phrase,
        detail=detail,
        headers=headers,
        extra=extra or None,
    )


def _from_domain(exc: errors.TicketsError) -> ProblemDetailsException:
    for kind in type(exc).__mro__:
        if kind in _STATUS:
            return _problem(_STATUS[kind], str(exc))
    log.error("unmapped domain error: %r", exc)
    return _problem(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")


def _from_http(exc: HTTPException) -> ProblemDetailsException:
    status = HTTPStatus(exc.status_code)
    if isinstance(exc, ValidationException) and status == HTTPStatus.BAD_REQUEST:
        return _problem(status, str(exc.detail), errors=exc.extra or [])
    if status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
        return _problem(status, "request body is too large")
    return _problem(status, str(exc.detail))


def _from_dependency(exc: Exception) -> ProblemDetailsException:
    # Driver errors never leak into responses: say which side is down, log the rest.
    log.warning("dependency failure: %r", exc)
    side = "database" if isinstance(exc, psycopg.Error) else "inventory store"
    return _problem(HTTPStatus.SERVICE_UNAVAILABLE, f"the {side} is unavailable; retry shortly")


def plugin() -> ProblemDetailsPlugin:
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            exception_to_problem_detail_map={
                errors.TicketsError: _from_domain,
                HTTPException: _from_http,
                psycopg.OperationalError: _from_dependency,
                redis.exceptions.ConnectionError: _from_dependency,
                redis.exceptions.TimeoutError: _from_dependency,
            }
        )
    )
