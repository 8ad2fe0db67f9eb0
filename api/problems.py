"""The one place that turns errors into HTTP answers: problem details (RFC 9457,
application/problem+json), and the booking metric's outcome of the same error."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import msgspec
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from shared import errors
from shared.failures import Failure, classify

log = logging.getLogger(__name__)

RETRY_AFTER_S = "1"

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


def failure_of(exc: BaseException) -> Failure:
    """What an error means for the API: shared.failures, plus Litestar's own refusals."""
    if isinstance(exc, HTTPException):
        status = HTTPStatus(exc.status_code)
        return Failure(status, _HTTP_OUTCOMES.get(status, "error"))
    return classify(exc)


_HTTP_OUTCOMES = {
    HTTPStatus.BAD_REQUEST: "invalid",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "too_large",
    HTTPStatus.NOT_FOUND: "not_found",
    HTTPStatus.UNAUTHORIZED: "unauthenticated",
    HTTPStatus.FORBIDDEN: "forbidden",
    HTTPStatus.TOO_MANY_REQUESTS: "rate_limited",
}


def _problem(
    status: HTTPStatus, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> ProblemDetailsException:
    if status == HTTPStatus.SERVICE_UNAVAILABLE:
        headers = {"Retry-After": RETRY_AFTER_S}
    elif status == HTTPStatus.UNAUTHORIZED:
        headers = {"WWW-Authenticate": "Bearer"}
    return ProblemDetailsException(
        status_code=status,
        title=status.phrase,
        detail=detail,
        headers=headers,
        extra=extra or None,
    )


def _to_problem(exc: Exception) -> ProblemDetailsException:
    status = failure_of(exc).status
    if isinstance(exc, HTTPException):
        if isinstance(exc, ValidationException) and status == HTTPStatus.BAD_REQUEST:
            return _problem(status, str(exc.detail), errors=exc.extra or [])
        if status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
            return _problem(status, "request body is too large")
        return _problem(status, str(exc.detail))
    if isinstance(exc, errors.RateLimited):
        return _problem(status, str(exc), rate_limit_headers(exc))
    if isinstance(exc, errors.NotAdmitted):
        return _problem(status, str(exc), reason="NOT_ADMITTED")
    if isinstance(exc, errors.WrongStatus):
        return _problem(status, str(exc), booking_status=exc.status)
    if isinstance(exc, errors.TicketsError) and status != HTTPStatus.INTERNAL_SERVER_ERROR:
        return _problem(status, str(exc))
    if status == HTTPStatus.SERVICE_UNAVAILABLE:
        # Driver errors never leak into responses: say which side is down, log the rest.
        log.warning("dependency failure: %r", exc)
        side = _SIDES.get(failure_of(exc).dependency or "", "a backing service")
        return _problem(status, f"{side} is unavailable; retry shortly")
    return _problem(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")


def rate_limit_headers(exc: errors.RateLimited) -> dict[str, str]:
    """Retry-After and the RateLimit-* fields of the limit that refused."""
    return {
        "Retry-After": str(exc.retry_after_s),
        "RateLimit-Limit": str(exc.limit),
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": str(exc.reset_s),
    }


_SIDES = {"postgres": "the database", "redis": "the inventory store", "kafka": "the broker"}


def plugin() -> ProblemDetailsPlugin:
    """Every exception a handler raises is answered as a problem (see `_to_problem`)."""
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(exception_to_problem_detail_map={Exception: _to_problem})
    )
