"""The operator console's JSON endpoints (admin only): the overview of every event and of the
service, a Kafka view that replaces Kafka UI for this system (shared/kafka_view.py, which
`python -m scripts.inspect` prints), and charts from Prometheus (api/charts.py)."""

from __future__ import annotations

import uuid
from http import HTTPStatus
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter

from api.auth import admin_only
from api.charts import NOT_CONFIGURED, Charts, read_charts
from api.context import Services
from api.overview import Overview, OverviewReader, queries
from api.problems import documented
from shared.db import fetch_one
from shared.errors import InvalidRequest, NotFound
from shared.kafka_view import (
    CLOCK_SKEW_MS,
    GroupInfo,
    Message,
    Search,
    TopicInfo,
    describe_group,
    find_booking,
    id_time_ms,
    list_topics,
    tail,
    window_around,
)

MESSAGES_MAX = 500
EVENTS_MAX = 100
# A dead letter is appended when the worker meets the poison, which can be long after the
# booking was published: the dead-letter topic is searched over its last messages instead.
DEAD_LETTER_SEARCH = 10_000
# A cancellation's decided time is after its command was appended, by up to the worker's lag.
CANCEL_LOOKBACK_MS = 60_000

Limit = Annotated[int, QueryParameter(ge=1, le=MESSAGES_MAX, description="how many messages")]
EventLimit = Annotated[int, QueryParameter(ge=1, le=EVENTS_MAX, description="newest events shown")]
WindowS = Annotated[int, QueryParameter(ge=1, le=60, description="seconds the rates are over")]
Minutes = Annotated[int, QueryParameter(ge=1, le=24 * 60, description="minutes of history")]


class Topics(msgspec.Struct):
    topics: list[TopicInfo]


class Tail(msgspec.Struct):
    topic: TopicInfo
    messages: list[Message]


class LedgerEntry(msgspec.Struct):
    event_id: int
    status: str
    quantity: int
    seats: list[str]  # labels, once decided (the command itself names seat numbers)


class BookingSearch(msgspec.Struct):
    booking_id: str
    ledger: LedgerEntry | None  # None: not decided (still in Kafka) or unknown
    requests: Search  # the booking topic, around the times the ledger and the id give
    dead_letters: list[Message]  # among the dead-letter topic's last messages
    dead_letters_searched: int  # per partition, the newest ones
    how: str


class Console:
    """What the console's handlers share in one API process."""

    def __init__(self, svc: Services, overview: OverviewReader) -> None:
        self.svc = svc
        self.overview = overview

    def topic_named(self, name: str) -> str:
        s = self.svc.settings
        known = (s.topic, s.dlq_topic, s.events_topic, s.notify_dlq_topic)
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
        responses=ERRORS,
    )
    async def topics(self, console: InjectedConsole) -> Topics:
        s = console.svc.settings
        names = [s.topic, s.dlq_topic, s.events_topic, s.notify_dlq_topic]
        return Topics(await list_topics(s, names))

    @get(
        "/kafka/group",
        summary="The worker group: members, their partitions, committed offsets, lag",
        responses=ERRORS,
    )
    async def group(self, console: InjectedConsole) -> GroupInfo:
        s = console.svc.settings
        return await describe_group(s, s.consumer_group, s.topic)

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
        info, messages = await tail(console.svc.settings, console.topic_named(topic), limit)
        return Tail(info, messages)

    @get(
        "/kafka/bookings/{booking_id:str}",
        summary="A booking's Kafka messages, found by its id",
        description="Searches the booking topic in the event's partition (from the ledger; "
        "every partition for an undecided booking) around the id's own time (UUIDv7) and its "
        "payments' and cancellation's times, reading at most `bound_per_partition` messages "
        "per window; and the dead-letter topic's last messages.",
        responses={**ERRORS, **documented(HTTPStatus.NOT_FOUND)},
    )
    async def booking(self, booking_id: FromPath[str], console: InjectedConsole) -> BookingSearch:
        s = console.svc.settings
        wanted = parse_booking_id(booking_id)
        made_ms = id_time_ms(wanted)
        assert made_ms is not None  # parse_booking_id accepts UUIDv7 only
        row = await fetch_one(console.svc.pool, queries.booking_moments, {"booking_id": wanted})
        windows = [window_around(made_ms, s)]
        ledger = None
        if row is not None:
            ledger = LedgerEntry(
                row["event_id"], row["status"], row["quantity"], list(row["seats"] or [])
            )
            for received in row["payments_received"]:
                windows.append(window_around(int(received.timestamp() * 1000), s))
            if row["cancelled_at"] is not None:
                decided_ms = int(row["cancelled_at"].timestamp() * 1000)
                windows.append((decided_ms - CANCEL_LOOKBACK_MS, decided_ms + CLOCK_SKEW_MS))
        event_id = None if ledger is None else ledger.event_id
        requests = await find_booking(s, wanted, windows, event_id, s.topic)
        _, dead = await tail(s, s.dlq_topic, DEAD_LETTER_SEARCH, containing=str(wanted).encode())
        if ledger is None and not requests.messages and not dead:
            raise NotFound(
                f"booking {wanted} is not in the ledger, and no message names it among the "
                f"{requests.scanned} booking-topic messages appended around its id's time "
                f"nor the last {DEAD_LETTER_SEARCH} dead letters"
            )
        return BookingSearch(
            str(wanted),
            ledger,
            requests,
            dead,
            DEAD_LETTER_SEARCH,
            "booking topic: the event's partition (every partition when the ledger does not "
            "know the booking), messages appended within each window, at most "
            f"{requests.bound_per_partition} per partition and window; dead-letter topic: "
            f"its last {DEAD_LETTER_SEARCH} messages per partition",
        )

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


def parse_booking_id(text: str) -> uuid.UUID:
    """A booking id as the API makes them (a UUIDv7), or InvalidRequest saying why not."""
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        raise InvalidRequest(f"{text[:60]!r} is not a booking id (a UUID)") from None
    if id_time_ms(parsed) is None:
        raise InvalidRequest(f"{parsed} is not a booking id of this service (not a UUIDv7)")
    return parsed
