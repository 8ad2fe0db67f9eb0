"""The operator console's JSON endpoints (admin only): the overview of every event and of the
service, a Kafka view that replaces Kafka UI for this system (shared/kafka_view.py, which
`python -m scripts.inspect` prints), and charts from Prometheus (api/charts.py)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter

from api.auth import admin_only
from api.booking_trace import BookingSearch, BookingTrace, parse_booking_id
from api.charts import NOT_CONFIGURED, Charts, read_charts
from api.context import Services
from api.overview import Overview, OverviewReader
from api.problems import documented
from shared.errors import NotFound
from shared.kafka_view import (
    GroupInfo,
    KafkaLook,
    Message,
    TopicInfo,
    describe_group,
    list_topics,
    project_topics,
    tail,
)

MESSAGES_MAX = 500
EVENTS_MAX = 100

Limit = Annotated[int, QueryParameter(ge=1, le=MESSAGES_MAX, description="how many messages")]
EventLimit = Annotated[int, QueryParameter(ge=1, le=EVENTS_MAX, description="newest events shown")]
WindowS = Annotated[int, QueryParameter(ge=1, le=60, description="seconds the rates are over")]
Minutes = Annotated[int, QueryParameter(ge=1, le=24 * 60, description="minutes of history")]


class Topics(msgspec.Struct):
    topics: list[TopicInfo]


class Tail(msgspec.Struct):
    topic: TopicInfo
    messages: list[Message]


class Console:
    """What the console's handlers share in one API process."""

    def __init__(
        self, svc: Services, overview: OverviewReader, look: KafkaLook, trace: BookingTrace
    ) -> None:
        self.svc = svc
        self.overview = overview
        self.look = look  # one admin client and reader per process (shared/kafka_view.py)
        self.trace = trace

    def topic_named(self, name: str) -> str:
        known = project_topics(self.svc.settings)
        if name not in known:
            raise NotFound(f"unknown topic {name[:100]!r}; the console reads {', '.join(known)}")
        return name


def console(state: State) -> Console:
    """Dependency: the console's shared parts, from the lifespan."""
    it: Console = state.console
    return it


InjectedConsole = NamedDependency[Console]

ERRORS = documented(
    HTTPStatus.BAD_REQUEST,
    HTTPStatus.UNAUTHORIZED,
    HTTPStatus.FORBIDDEN,
    HTTPStatus.SERVICE_UNAVAILABLE,
)


class ConsoleController(Controller):
    path = "/api/console"
    tags = ["console"]
    guards = [admin_only]
    dependencies = {"console": Provide(console, sync_to_thread=False)}

    @get(
        "/overview",
        summary="Every event's sold/held/free and audit verdict, and the service's figures",
        description="`sources` says where each figure comes from. `service.unavailable` names "
        "what could not be read now (redis: no verdicts, kafka: no lag); PostgreSQL down is 503.",
        responses=ERRORS,
    )
    async def overview(
        self, console: InjectedConsole, limit: EventLimit = 20, window_s: WindowS = 10
    ) -> Overview:
        return await console.overview.read(limit, window_s)

    @get(
        "/kafka/topics",
        summary="The project's topics: partitions, offsets, leader, replicas, in-sync replicas",
        description="A topic that does not exist (yet) is left out.",
        responses=ERRORS,
    )
    async def topics(self, console: InjectedConsole) -> Topics:
        names = project_topics(console.svc.settings)
        return Topics(await list_topics(console.look, names, skip_missing=True))

    @get(
        "/kafka/group",
        summary="The worker group: members, their partitions, committed offsets, lag",
        responses=ERRORS,
    )
    async def group(self, console: InjectedConsole) -> GroupInfo:
        s = console.svc.settings
        return await describe_group(console.look, s.consumer_group, s.topic)

    @get(
        "/kafka/topics/{topic:str}/messages",
        summary="The last messages of a topic, decoded",
        description="Booking requests, payments and cancellations decoded with the worker's "
        "contract, booking events with theirs; dead letters carry their `reason` header; a "
        "message that does not decode is `undecodable` with `error` and `raw_preview`.",
        responses={**ERRORS, **documented(HTTPStatus.NOT_FOUND)},
    )
    async def messages(
        self, topic: FromPath[str], console: InjectedConsole, limit: Limit = 20
    ) -> Tail:
        info, messages = await tail(console.look, console.topic_named(topic), limit)
        return Tail(info, messages)

    @get(
        "/kafka/bookings/{booking_id:str}",
        summary="A booking's Kafka messages, found by its id",
        description="Searches the booking topic in the event's partition (from the ledger; "
        "every partition for an undecided booking) around the id's own time (UUIDv7) and its "
        "payments' and cancellation's times (overlapping windows merged), reading at most "
        "`bound_per_partition` messages per window and `bound_total` in all (`bounds_hit` "
        "says which it reached); and the dead-letter topic's last messages. One search at a "
        "time per API process: 503 while another runs.",
        responses={**ERRORS, **documented(HTTPStatus.NOT_FOUND)},
    )
    async def booking(self, booking_id: FromPath[str], console: InjectedConsole) -> BookingSearch:
        return await console.trace.find(parse_booking_id(booking_id))

    @get(
        "/charts",
        summary="The dashboard's named queries over the last minutes, from Prometheus",
        description="Without TICKETS_PROMETHEUS_URL: 200 with `configured: false` and why. "
        "Prometheus not answering: 503.",
        responses=ERRORS,
    )
    async def charts(self, console: InjectedConsole, minutes: Minutes = 15) -> Charts:
        url = console.svc.settings.prometheus_url
        if not url:
            return NOT_CONFIGURED
        return await read_charts(url, minutes)
