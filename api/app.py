"""The ASGI app: `uvicorn api.app:app`. `create_app()` builds one for tests and tools."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Sequence
from http import HTTPStatus

from litestar import Litestar, Router
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.types import Scope

from api import problems
from api.accounts import AccountController, MeController
from api.auth import Authenticator, Revocations
from api.booking_trace import BookingTrace
from api.bookings import BookingController, BookingIntake
from api.coalesce import Coalescer, RecentReads
from api.console import Console, ConsoleController
from api.context import Services
from api.events import EventController
from api.health import health, ready
from api.holds import HoldController
from api.idempotency import IdempotencyStore
from api.live import Hub
from api.overview import OverviewReader
from api.problems import failure_of
from api.publisher import Publisher
from api.queue import QueueController
from api.rate_limit import ClientAddresses, Limits, RateLimiter
from api.request_rate import RequestRate
from api.seat_snapshots import SeatMapSnapshots
from api.seats import SeatMapController
from api.streams import StreamController
from api.web import pages
from api.web.csrf import CSRFGate, csrf_config
from api.web.session import SessionController
from api.webhooks import StripeWebhook
from shared import abandoned, heap, logs
from shared.config import Settings, load_or_exit
from shared.contracts import BookingRequested
from shared.db import open_pool
from shared.decisions import DecisionCache
from shared.inventory import Inventory
from shared.kafka_view import KafkaLook
from shared.keys import RedisKeys
from shared.queue import Queues
from shared.redis_clients import open_redis
from shared.rules import RulesCache

log = logging.getLogger(__name__)

LISTENER_GRACE_S = 2.0  # at shutdown, for the live-updates listener to end


async def _log_unexpected(exc: BaseException, scope: Scope) -> None:
    """Errors answered 500 are bugs: log them with their traceback."""
    if failure_of(exc).status == HTTPStatus.INTERNAL_SERVER_ERROR:
        log.error("unhandled error on %s", scope.get("path"), exc_info=exc)


def _report_death(task: asyncio.Task[None]) -> None:
    """A side task that ended by itself (not cancelled at shutdown) is a bug: log it."""
    if not task.cancelled():
        log.error("%s stopped", task.get_coro(), exc_info=task.exception())


def create_app(settings: Settings | None = None) -> Litestar:
    if settings is None:
        settings = load_or_exit(api=True)
    else:
        settings.check_api()
    logs.configure(settings)
    log.info(
        "buyers: %s",
        "signed tokens (TICKETS_BUYER_AUTH=token)"
        if settings.buyer_auth == "token"
        else "named by the request (TICKETS_BUYER_AUTH=open)",
    )
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
        keys = RedisKeys(settings.redis_prefix)
        revocations = Revocations(redis_client, keys)
        hub = Hub(settings, keys)

        async def remember(requests: Sequence[BookingRequested]) -> list[None]:
            await decisions.remember_requests(requests)
            return [None] * len(requests)

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
            availability=RecentReads(inventory.available, settings.availability_max_age_ms / 1000),
            seat_maps=RecentReads(
                SeatMapSnapshots(redis_client, keys).read, settings.seat_map_max_age_ms / 1000
            ),
            pending=Coalescer(remember),
            abandon=Coalescer(functools.partial(abandoned.abandon, pool)),
            rules=RulesCache(pool),
            auth=Authenticator(settings, revocations),
            limiter=RateLimiter(redis_client, keys),
            limits=Limits.of(settings),
            addresses=ClientAddresses(settings.proxies),
            hub=hub,
            queues=Queues(redis_client, keys),
        )
        rate = RequestRate()
        look = KafkaLook(settings)
        app.state.console = Console(
            app.state.services,
            OverviewReader(settings, pool, inventory, rate, look),
            look,
            BookingTrace(settings, pool, look),
        )
        heap.settle(settings.gc_young_threshold)
        mirror = asyncio.create_task(revocations.run())
        sampler = asyncio.create_task(rate.run())
        # Its rate goes stale (null) if it dies; the log says why.
        sampler.add_done_callback(_report_death)
        listener = asyncio.create_task(hub.run())
        try:
            yield
        finally:
            mirror.cancel()
            sampler.cancel()
            await hub.close()
            # A listener that a close cannot reach (no connection yet) is cancelled.
            if not (await asyncio.wait({listener}, timeout=LISTENER_GRACE_S))[0]:
                listener.cancel()
            await hub.aclose()
            await look.close()
            await publisher.stop()
            await redis_client.aclose()
            await pool.close()

    prometheus = PrometheusConfig(app_name="tickets_api", group_path=True)
    # Every route but the booking POST gets Litestar's HTTP metrics (see BookingIntake).
    measured = Router(
        path="/",
        route_handlers=[
            EventController,
            SeatMapController,
            BookingController,
            HoldController,
            StreamController,
            QueueController,
            ConsoleController,
            MeController,
            *([AccountController, SessionController] if settings.signs_tokens else []),
            *([StripeWebhook] if settings.stripe_webhook_secret else []),
            health,
            ready,
            PrometheusController,
        ],
        middleware=[prometheus.middleware],
    )
    return Litestar(
        route_handlers=[measured, BookingIntake, pages.router()],
        lifespan=[lifespan],
        # CSRF is checked only where the browser's session cookie could act (see CSRFGate).
        middleware=[DefineMiddleware(CSRFGate, config=csrf_config(settings), pages=pages.PAGES)],
        template_config=pages.template_config(),
        plugins=[problems.plugin()],
        openapi_config=OpenAPIConfig(title="Flash-sale tickets", version="0.1.0", path="/schema"),
        request_max_body_size=settings.max_body_bytes,
        after_exception=[_log_unexpected],
    )


app = create_app()
