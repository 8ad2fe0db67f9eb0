"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import msgspec
from litestar import Response, get
from litestar.datastructures import State

from shared.db import fetch_one, queries


class Readiness(msgspec.Struct):
    status: str
    kafka: str
    redis: str
    postgres: str


@get("/health", summary="Liveness: the process answers", tags=["health"])
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/ready", summary="Readiness: Kafka, Redis and PostgreSQL each answer", tags=["health"])
async def ready(state: State) -> Response[Readiness]:
    svc = state.services

    async def check(probe: Awaitable[object]) -> str:
        try:
            ok = await asyncio.wait_for(probe, 2)
        except Exception:  # noqa: BLE001 - any failure of a probe means "not ready"
            return "down"
        return "up" if ok is not False else "down"

    kafka, redis_, postgres = await asyncio.gather(
        check(svc.publisher.ready()),
        check(svc.redis.ping()),
        check(fetch_one(svc.pool, queries.ping, {})),
    )
    good = kafka == redis_ == postgres == "up"
    body = Readiness("ready" if good else "not ready", kafka, redis_, postgres)
    return Response(body, status_code=200 if good else 503)
