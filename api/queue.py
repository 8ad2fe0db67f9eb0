"""The on-sale queue over HTTP: buyers join an event's queue and watch their entry (polling
or Server-Sent Events) until it is admitted and carries an admission token; admins open,
pause and resume it, change its rate and read its numbers. shared/queue.py keeps the queue,
consumer/admission.py moves it; docs/queue.md tells the design."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
import redis.exceptions
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import FromPath, JSONBody
from litestar.response import ServerSentEvent, ServerSentEventMessage

from api import proof_of_work
from api.auth import admin_only, buyer_of, credentials, may_read, reader
from api.context import InjectedServices, Services
from api.events import EventIdParam, services
from api.proof_of_work import Challenge
from api.streams import counted, heartbeat
from shared import admission, deadlines
from shared.contracts import UserId
from shared.errors import InvalidRequest, NotFound, QueueLost, QueueNotConfigured
from shared.queue import Entry, QueueStatus, Stats, queue_id
from shared.rules import EventRules


class QueueJoin(msgspec.Struct, forbid_unknown_fields=True):
    # Required in `open` mode; in `token` mode the token names the buyer.
    user_id: UserId | None = None
    # The solved proof of work, when the event asks for one: ALTCHA's base64 payload.
    altcha: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)] | None = None


class QueueEntryView(msgspec.Struct):
    queue_id: str
    status: str  # WAITING, ADMITTED, EXPIRED, SOLD_OUT
    position: int | None  # 1: next; None before the opening's draw
    eta_s: float | None  # position / measured admission rate; None when not known
    rate_known: bool  # whether the admission rate has been measured yet
    admission_token: str | None  # while ADMITTED: book with it (`admission_token`)


class QueueStatsView(msgspec.Struct):
    event_id: int
    state: str  # pre, drawing, open, sold_out
    opens_at: dt.datetime
    opened_at: dt.datetime | None
    seed: str | None  # the draw's: with the pre-queue, it reproduces the order (audit)
    admit_per_s: float
    measured_admit_per_s: float | None
    paused: bool
    joined: int
    waiting: int
    admitted: int
    expired: int
    sold_out: int


class RateChange(msgspec.Struct, forbid_unknown_fields=True):
    admit_per_s: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)]


_decode_join = msgspec.json.Decoder(QueueJoin).decode


def _time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def view_of(svc: Services, event_id: int, entry: Entry) -> QueueEntryView:
    """The entry as its buyer sees it; an admission whose token has run out shows EXPIRED."""
    status, token = entry.status, None
    if status is QueueStatus.ADMITTED and entry.admitted_at_ms is not None:
        ttl = svc.settings.queue_admission_ttl_s
        expires_s = deadlines.admission_expires_at_s(entry.admitted_at_ms, ttl)
        if deadlines.admission_valid_at(expires_s, deadlines.now_ms()):
            key = svc.settings.admission_key
            token = admission.issue(key, entry.buyer, event_id, entry.admitted_at_ms, ttl)
        else:
            status = QueueStatus.EXPIRED
    return QueueEntryView(
        entry.queue_id,
        status.value,
        entry.position,
        entry.eta_s(),
        entry.measured_rate is not None,
        token,
    )


def stats_view(event_id: int, stats: Stats) -> QueueStatsView:
    return QueueStatsView(
        event_id,
        stats.state,
        _time(stats.opens_at_ms),
        _time(stats.opened_at_ms) if stats.opened_at_ms else None,
        stats.seed,
        stats.rate,
        stats.measured_rate,
        stats.paused,
        stats.joined,
        stats.waiting,
        stats.admitted,
        stats.expired,
        stats.sold_out,
    )


async def _queued(svc: Services, event_id: int) -> EventRules:
    rules = await svc.event_rules(event_id)
    if not rules.queue:
        raise NotFound(f"event {event_id} has no queue")
    return rules


def _key(svc: Services) -> bytes:
    key = svc.settings.admission_key
    if not key:
        raise QueueNotConfigured()
    return key


async def _entry_for(
    svc: Services, request: Request[object, object, State], event_id: int, entry_id: str
) -> Entry:
    """The entry, if the caller may see it: in `token` mode its buyer or an admin; anyone
    else gets 404 (and the entry is not counted as polled)."""
    await _queued(svc, event_id)
    key = _key(svc)
    caller = reader(svc.settings, svc.auth, credentials(request))
    # The id is derived from its buyer, so the caller's own is known before the poll counts.
    own = caller is not None and entry_id == queue_id(key, event_id, caller.user_id)
    if not may_read(svc.settings, caller, caller.user_id if caller and own else ""):
        raise NotFound(f"queue entry {entry_id} does not exist")
    entry = await svc.queues.poll(event_id, entry_id)
    if entry is None:
        raise NotFound(f"queue entry {entry_id} does not exist")
    return entry


class QueueController(Controller):
    path = "/api/events/{event_id:int}/queue"
    tags = ["queue"]
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @post(
        "/",
        status_code=201,
        summary="Join the event's queue (the same buyer again: the same entry, 200)",
        description='Body `{}` in token mode (the token names the buyer), `{"user_id"}` in '
        "open mode; `altcha`: the solved proof of work when the event asks for one. Whoever "
        "joins before the event's `opens_at` is placed in one random order at the opening; "
        "later joiners in arrival order behind them.",
    )
    async def join(
        self, event_id: EventIdParam, svc: InjectedServices, request: Request[object, object, State]
    ) -> Response[QueueEntryView]:
        rules = await _queued(svc, event_id)
        body = await request.body()
        try:
            wanted = _decode_join(body) if body.strip() else QueueJoin()
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise InvalidRequest(f"invalid queue join: {exc}") from exc
        buyer = buyer_of(svc.settings, svc.auth, credentials(request), wanted.user_id)
        key = _key(svc)
        limited = svc.count_against_limits(request, buyer)
        if limited is not None:
            svc.limiter.judge(await limited)
        if rules.queue_pow:
            await proof_of_work.spend(svc.redis, svc.queues.keys, key, event_id, wanted.altcha)
        entry = await svc.queues.join(event_id, queue_id(key, event_id, buyer), buyer)
        return Response(view_of(svc, event_id, entry), status_code=201 if entry.created else 200)

    @get(
        "/challenge",
        summary="A proof-of-work challenge to solve before joining (ALTCHA)",
        description="Only for events created with `queue_pow`; each solution joins once.",
    )
    async def challenge(self, event_id: EventIdParam, svc: InjectedServices) -> Challenge:
        rules = await _queued(svc, event_id)
        if not rules.queue_pow:
            raise NotFound(f"event {event_id} asks for no proof of work")
        return proof_of_work.challenge(_key(svc), event_id, rules.queue_pow)

    @get(
        "/{queue_id:str}",
        summary="A queue entry: WAITING (position, eta_s), ADMITTED (admission_token), "
        "EXPIRED or SOLD_OUT",
        description="Polling keeps the entry: one not polled for 5 minutes expires. In "
        "token mode, only to its buyer or an admin; anyone else gets 404.",
    )
    async def read(
        self,
        event_id: EventIdParam,
        queue_id: FromPath[str],
        svc: InjectedServices,
        request: Request[object, object, State],
    ) -> QueueEntryView:
        return view_of(svc, event_id, await _entry_for(svc, request, event_id, queue_id))

    @get(
        "/{queue_id:str}/events",
        summary="A queue entry as Server-Sent Events",
        description="A `status` event (the entry, as GET shows it) at once and whenever it "
        "changes; ends after ADMITTED, EXPIRED or SOLD_OUT, or with an `error` event when the "
        "queue becomes unavailable (poll then). An open stream counts as polling.",
    )
    async def events(
        self,
        event_id: EventIdParam,
        queue_id: FromPath[str],
        svc: InjectedServices,
        request: Request[object, object, State],
    ) -> ServerSentEvent:
        first = await _entry_for(svc, request, event_id, queue_id)
        return ServerSentEvent(_entry_stream(svc, event_id, first))

    @get("/", guards=[admin_only], summary="The queue's numbers (admin)")
    async def stats(self, event_id: EventIdParam, svc: InjectedServices) -> QueueStatsView:
        return await _stats(svc, event_id)

    @post(
        "/open",
        guards=[admin_only],
        status_code=200,
        summary="Open the queue now (admin); also starts a queue whose data was lost afresh",
    )
    async def open(self, event_id: EventIdParam, svc: InjectedServices) -> QueueStatsView:
        await _queued(svc, event_id)
        if not await svc.queues.control(event_id, "open"):
            await svc.queues.create(event_id, 0, svc.settings.queue_admit_per_s)
        return await _stats(svc, event_id)

    @post("/pause", guards=[admin_only], status_code=200, summary="Pause admission (admin)")
    async def pause(self, event_id: EventIdParam, svc: InjectedServices) -> QueueStatsView:
        return await _control(svc, event_id, "pause")

    @post("/resume", guards=[admin_only], status_code=200, summary="Resume admission (admin)")
    async def resume(self, event_id: EventIdParam, svc: InjectedServices) -> QueueStatsView:
        return await _control(svc, event_id, "resume")

    @post(
        "/rate",
        guards=[admin_only],
        status_code=200,
        summary='Change the admission rate (admin): `{"admit_per_s"}`',
    )
    async def rate(
        self, event_id: EventIdParam, data: JSONBody[RateChange], svc: InjectedServices
    ) -> QueueStatsView:
        return await _control(svc, event_id, "rate", data.admit_per_s)


async def _control(
    svc: Services, event_id: int, mode: str, value: float | None = None
) -> QueueStatsView:
    await _queued(svc, event_id)
    if not await svc.queues.control(event_id, mode, value):
        raise QueueLost()
    return await _stats(svc, event_id)


async def _stats(svc: Services, event_id: int) -> QueueStatsView:
    await _queued(svc, event_id)
    stats = await svc.queues.stats(event_id)
    if stats is None:
        raise QueueLost()
    return stats_view(event_id, stats)


async def _entry_stream(
    svc: Services, event_id: int, entry: Entry
) -> AsyncIterator[ServerSentEventMessage]:
    """The entry's view at once and whenever it changes, read from Redis every
    queue_stream_interval_s (one cheap script call; no channel per entry); a comment line
    after sse_heartbeat_s without a change. When Redis fails or loses the queue mid-stream,
    a last `error` event says so and the stream ends (the client polls or reconnects)."""
    s = svc.settings
    with counted("queue"):
        sent: QueueEntryView | None = None
        quiet_s = 0.0
        while True:
            view = view_of(svc, event_id, entry)
            if view != sent:
                yield ServerSentEventMessage(data=msgspec.json.encode(view), event="status")
                sent, quiet_s = view, 0.0
                if view.status != QueueStatus.WAITING:
                    return
            elif quiet_s >= s.sse_heartbeat_s:
                yield heartbeat()
                quiet_s = 0.0
            await asyncio.sleep(s.queue_stream_interval_s)
            quiet_s += s.queue_stream_interval_s
            try:
                polled = await svc.queues.poll(event_id, entry.queue_id)
            except (QueueLost, redis.exceptions.RedisError) as exc:
                yield ServerSentEventMessage(data=_stream_error(exc), event="error")
                return
            if polled is None:
                return
            entry = polled


def _stream_error(exc: Exception) -> bytes:
    detail = QueueLost.__doc__ if isinstance(exc, QueueLost) else "the queue is unavailable"
    return msgspec.json.encode({"detail": (detail or "").strip(), "retry": "poll the entry"})
