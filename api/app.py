"""The ASGI app: `uvicorn api.app:app`. `create_app()` builds one for tests and tools."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from http import HTTPStatus

from litestar import Litestar, Router
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.types import Scope

from api import problems
from api.bookings import BookingController, BookingIntake
from api.coalesce import AvailabilityView, WriteCoalescer
from api.context import Services
from api.events import EventController
from api.health import health, ready
from api.idempotency import IdempotencyStore
from api.problems import failure_of
from api.publisher import Publisher
from shared import heap, logs
from shared.config import Settings, load_or_exit
from shared.db import open_pool
from shared.decisions import DecisionCache
from shared.inventory import Inventory, open_redis
from shared.rules import RulesCache

log = logging.getLogger(__name__)


async def _log_unexpected(exc: BaseException, scope: Scope) -> None:
    """Errors answered 500 are bugs: log them with their traceback."""
    if failure_of(exc).status == HTTPStatus.INTERNAL_SERVER_ERROR:
        log.error("unhandled error on %s", scope.get("path"), exc_info=exc)


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_or_exit()
    logs.configure(settings)
    if not settings.admin_token:
        log.warning("TICKETS_ADMIN_TOKEN is empty: admin endpoints refuse every request")

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = open_pool(settings)
        redis_client = open_redis(settings)
        publisher = Publisher(settings)
        await pool.open(wait=False)
        await publisher.start()
        inventory = Inventory(redis_client, settings.redis_prefix)
        decisions = DecisionCache(redis_client, settings.redis_prefix, settings.status_cache_ttl_s)
        app.state.services = Services(
            settings=settings,
            pool=pool,
            redis=redis_client,
            publisher=publisher,
            inventory=inventory,
            decisions=decisions,
            idempotency=IdempotencyStore(
                redis_client, settings.redis_prefix, settings.idempotency_ttl_s
            ),
            availability=AvailabilityView(inventory, settings.availability_max_age_ms / 1000),
            pending=WriteCoalescer(decisions.remember_requests),
            rules=RulesCache(pool),
        )
        heap.settle(settings.gc_young_threshold)
        try:
            yield
        finally:
            await publisher.stop()
            await redis_client.aclose()
            await pool.close()

    prometheus = PrometheusConfig(app_name="tickets_api", group_path=True)
    # Every route but the booking POST gets Litestar's HTTP metrics (see BookingIntake).
    measured = Router(
        path="/",
        route_handlers=[EventController, BookingController, health, ready, PrometheusController],
        middleware=[prometheus.middleware],
    )
    return Litestar(
        route_handlers=[measured, BookingIntake],
        lifespan=[lifespan],
        plugins=[problems.plugin()],
        openapi_config=OpenAPIConfig(title="Flash-sale tickets", version="0.1.0", path="/schema"),
        request_max_body_size=settings.max_body_bytes,
        after_exception=[_log_unexpected],
    )


app = create_app()
