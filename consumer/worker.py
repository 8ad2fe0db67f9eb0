"""The worker loop: fetch a batch, decide it, commit its offsets; shut down in order.

Offsets are committed only after PostgreSQL committed the batch's decisions, so a crash at any
point means redelivery, never loss; the finalizer makes redelivery harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec
import psycopg
import redis.exceptions
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from prometheus_client import start_http_server

from consumer.auditor import Auditor
from consumer.finalize import Finalizer, Settling
from consumer.reconcile import Reconciler
from shared import heap
from shared.config import Settings
from shared.contracts import BookingRequested, Decision, Reason, Status, decode_request
from shared.db import open_pool
from shared.decisions import DecisionCache
from shared.errors import Unavailable
from shared.inventory import Inventory, open_redis
from shared.metrics import (
    BATCH_SECONDS,
    BATCH_SIZE,
    CONSUMER_LAG,
    DEAD_LETTERS,
    DECISION_LATENCY,
    DECISIONS,
    DEPENDENCY_ERRORS,
    EXPIRED_REQUESTS,
)

log = logging.getLogger(__name__)

# Failures of a dependency that heal by themselves: back off and retry the same batch.
RETRYABLE: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    KafkaError,
    Unavailable,
    OSError,
)


# aiokafka asks the broker for more of a partition only once everything fetched from it has
# been consumed, so the worker waits for each refill. At 4 MiB (~20,000 requests, ten
# batches) that wait cost ~100 ms every tenth batch; at 16 MiB it comes four times less often:
# 16.8-19.2k decisions/s against 11.8-16.3k in five interleaved drains of 100,000 requests.
FETCH_BYTES_PER_PARTITION = 16 * 1024 * 1024
# aiokafka keeps one fetch request in flight per broker. While partitions without new
# messages sit in a long poll (500 ms by default), a partition whose buffer just emptied
# cannot ask for more: a drain stalled 100-370 ms at its refill. The long poll now ends
# within 100 ms. The price is paid when idle: ~10 empty fetches a second instead of 2, 0.7%
# of a core more between the worker and the broker (2.3% more at 50 ms).
FETCH_MAX_WAIT_MS = 100


_TailArgs = tuple[
    AIOKafkaConsumer,
    DecisionCache,
    list[tuple[BookingRequested, Decision]],
    Settling,
    dict[TopicPartition, int],
    float,
]


@dataclass(frozen=True, slots=True)
class Poison:
    record: ConsumerRecord[bytes, bytes]
    reason: str


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM/SIGINT set `stop`; a second signal exits at once. Old handlers come back."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.error("second %s: exiting immediately", signal.Signals(signum).name)
            os._exit(128 + signum)
        log.info("%s: finishing the batch in hand, then stopping", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            loop.remove_signal_handler(sig)


def _dump_tasks() -> None:
    """SIGUSR1: log where every asyncio task is waiting (for a worker that seems stuck)."""
    out = io.StringIO()
    for task in asyncio.all_tasks():
        print(f"--- {task.get_name()} {task.get_coro()!r}", file=out)
        task.print_stack(file=out)
    log.warning("SIGUSR1: %d tasks\n%s", len(asyncio.all_tasks()), out.getvalue())


class _WaitForBatchOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions are handed over only after the batch in hand is decided and committed."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._worker.batch_lock:
            await self._worker.finish_tail()
            log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))
            for tp in revoked:
                with contextlib.suppress(KeyError):
                    CONSUMER_LAG.remove(str(tp.partition))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))


class Worker:
    def __init__(self, settings: Settings, *, stop_when_idle: bool = False) -> None:
        self.settings = settings
        self.stop = asyncio.Event()
        self._stop_when_idle = stop_when_idle
        self.batch_lock = asyncio.Lock()
        # The previous batch's last steps (polling cache, metrics, offset commit), which run
        # while the next batch is decided. At most one at a time, so commits stay in order.
        self._tail: asyncio.Task[None] | None = None
        # The latest batch's tail, not started yet. It starts once the next batch's gate has
        # answered (or sooner if that batch waits or fails): its cache write holds Redis for
        # ~20 ms, and the next batch's Redis calls before and at the gate would queue behind it.
        self._tail_args: _TailArgs | None = None
        # Set when a tail stopped before recording its batch: offsets committed after that
        # would cover the unrecorded batch and it would never be redelivered.
        self._unrecorded = False
        # The latest batch's holds, settled in Redis while the next batch is fetched and
        # decoded; that batch's gate waits for them, and so does the tail's offset commit.
        self._settling: Settling | None = None
        self.decided = 0

    async def run(self) -> None:
        s = self.settings
        if s.worker_metrics_port:
            try:
                start_http_server(s.worker_metrics_port, addr=s.worker_metrics_host)
            except OSError as exc:
                log.error("metrics port %s unavailable: %s", s.worker_metrics_port, exc)
        # A short wait for a connection: while PostgreSQL is down the batch fails fast, backs
        # off, and a SIGTERM is honoured within seconds.
        pool = open_pool(s, max_size=4, acquire_timeout_s=3.0)
        redis_client = open_redis(s)
        producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap_servers, acks="all", enable_idempotence=True
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers,
            group_id=s.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=FETCH_BYTES_PER_PARTITION,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            session_timeout_ms=s.consumer_session_timeout_ms,
            heartbeat_interval_ms=s.consumer_session_timeout_ms // 3,
        )
        await pool.open(wait=False)
        cache = DecisionCache(redis_client, s.redis_prefix, s.status_cache_ttl_s)
        finalizer = Finalizer(s, pool, Inventory(redis_client, s.redis_prefix), cache)
        self.auditor = Auditor(pool, finalizer.inventory, s.audit_interval_s)
        side_task: asyncio.Task[None] | None = None
        try:
            await producer.start()
            await self._reconcile(Reconciler(s, pool, finalizer, finalizer.inventory))
            await consumer.start()
            consumer.subscribe([s.topic], listener=_WaitForBatchOnRevoke(self))
            log.info("worker started: topic=%s group=%s", s.topic, s.consumer_group)
            side_task = asyncio.create_task(self.auditor.run(self.stop), name="auditor")
            heap.settle(s.gc_young_threshold)
            await self._loop(consumer, producer, finalizer, cache, side_task)
        finally:
            # Shutdown order: stop fetching (done), leave the group, then close the pools.
            if side_task is not None:
                side_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await side_task
            await consumer.stop()
            await producer.stop()
            await redis_client.aclose()
            await pool.close()
            log.info("worker stopped after %d decisions", self.decided)

    async def _reconcile(self, reconciler: Reconciler) -> None:
        """Put the gate in line with the ledger before deciding anything (see reconcile.py)."""
        try:
            fixes = await reconciler.run()
        except RETRYABLE as exc:
            # Not fatal: a missing counter is also rebuilt on demand when a batch needs it.
            log.warning("reconciler could not run at start: %r", exc)
            return
        log.info(
            "reconciler at start: %d events checked, %d fixes", fixes.events_checked, fixes.total
        )

    async def _loop(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        finalizer: Finalizer,
        cache: DecisionCache,
        side_task: asyncio.Task[None],
    ) -> None:
        try:
            while not self.stop.is_set():
                if side_task.done():
                    # A side task that dies stops the worker loudly rather than limping.
                    side_task.result()
                    raise RuntimeError(f"side task {side_task.get_name()} ended unexpectedly")
                batch = await consumer.getmany(
                    timeout_ms=self.settings.poll_timeout_ms, max_records=self.settings.batch_max
                )
                if not batch:
                    await self.finish_tail()
                    await _report_lag(consumer)
                    if self._stop_when_idle and await _caught_up(consumer):
                        log.info("no more messages: stopping (burst mode)")
                        return
                    continue
                started = time.monotonic()
                async with self.batch_lock:
                    settled = await self._settle_batch(batch, producer, finalizer, cache)
                    if settled is None:
                        return  # stopped while a dependency was down; nothing committed
                    decided, self._settling = settled
                    offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
                    await self.finish_tail()
                    self._tail_args = (consumer, cache, decided, self._settling, offsets, started)
                if self._stop_when_idle and await _caught_up(consumer, ask_broker=False):
                    log.info("no more messages: stopping (burst mode)")
                    return  # without polling once more for nothing
        finally:
            await self.finish_tail()

    async def finish_tail(self) -> None:
        """Wait until the latest batch is recorded and its offsets committed; re-raise what
        its tail raised. Shielded: a waiter that is cancelled (a rebalance giving up) does not
        cancel the tail. Only the loop replaces the tail, after waiting for it, so whoever
        waits (the loop, the revoke listener) sees the same task and the same outcome."""
        self._start_tail()
        if self._tail is not None:
            await asyncio.shield(self._tail)

    def _start_tail(self) -> None:
        """Start the latest batch's tail if it has not started. The previous tail is done:
        the loop waits for it before it sets the next one."""
        if self._tail_args is not None:
            args, self._tail_args = self._tail_args, None
            self._tail = asyncio.create_task(self._finish(*args), name="batch-tail")

    async def _finish(
        self,
        consumer: AIOKafkaConsumer,
        cache: DecisionCache,
        decided: list[tuple[BookingRequested, Decision]],
        settling: Settling,
        offsets: dict[TopicPartition, int],
        started: float,
    ) -> None:
        """A decided batch's last steps: its holds settled and the polling cache, then the
        offsets. The offsets wait for both: a crash in between redelivers the batch, which
        settles and writes the decisions again, so no hold outlives its decision and no
        client is left reading PENDING for a decided booking."""
        for delay in self._backoff():
            try:
                await settling.wait()
                await cache.remember_decisions(decided)
                break
            except RETRYABLE as exc:
                DEPENDENCY_ERRORS.labels(_dependency(exc)).inc()
                log.warning("recording %d decisions failed (%r); retrying in %.1fs",
                            len(decided), exc, delay)  # fmt: skip
            if not await self._pause(delay):
                log.warning("stopping with an unrecorded batch: it will be redelivered")
                self._unrecorded = True
                return
        _count_decisions(decided)
        self.decided += len(decided)
        if self._unrecorded:
            log.warning("not committing: an earlier batch is unrecorded and must be redelivered")
            return
        await self._commit(consumer, offsets)
        BATCH_SECONDS.observe(time.monotonic() - started)
        await _report_lag(consumer)

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        """Commit a decided batch's offsets; retry while the broker is unreachable. Giving up
        is safe: the batch is redelivered and its decisions are found in PostgreSQL."""
        for delay in self._backoff():
            try:
                await asyncio.shield(consumer.commit(offsets))
                return
            except (CommitFailedError, IllegalStateError) as exc:
                # The group moved on (rebalance); the new owner redelivers, harmlessly.
                log.warning("offset commit refused, batch will be redelivered: %s", exc)
                return
            except KafkaError as exc:
                DEPENDENCY_ERRORS.labels("kafka").inc()
                log.warning("offset commit failed (%r); retrying in %.1fs", exc, delay)
            if not await self._pause(delay):
                log.warning("stopping with an uncommitted batch: it will be redelivered")
                return

    def _backoff(self) -> Iterator[float]:
        """Delays between retries: doubling from 0.1 s up to TICKETS_RETRY_BACKOFF_MAX_S."""
        delay = 0.1
        while True:
            yield delay
            delay = min(delay * 2, self.settings.retry_backoff_max_s)

    async def _pause(self, seconds: float) -> bool:
        """Wait unless asked to stop; True if the caller should carry on."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)
        return not self.stop.is_set()

    async def _settle_batch(
        self,
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
        producer: AIOKafkaProducer,
        finalizer: Finalizer,
        cache: DecisionCache,
    ) -> tuple[list[tuple[BookingRequested, Decision]], Settling] | None:
        """Decide every record of the batch, retrying dependency failures with backoff.
        Returns None if asked to stop before the batch could be decided."""
        records = [record for records in batch.values() for record in records]
        BATCH_SIZE.observe(len(records))
        for delay in self._backoff():
            try:
                return await self._decide(records, producer, finalizer, cache)
            except RETRYABLE as exc:
                DEPENDENCY_ERRORS.labels(_dependency(exc)).inc()
                log.warning("batch of %d failed (%r); retrying in %.1fs", len(records), exc, delay)
                self._start_tail()  # the previous batch is decided: record it meanwhile
            if not await self._pause(delay):
                return None
        raise AssertionError("unreachable: _backoff never ends")

    async def _decide(
        self,
        records: list[ConsumerRecord[bytes, bytes]],
        producer: AIOKafkaProducer,
        finalizer: Finalizer,
        cache: DecisionCache,
    ) -> tuple[list[tuple[BookingRequested, Decision]], Settling]:
        requests: list[BookingRequested] = []
        poison: list[Poison] = []
        expired = 0
        appended: list[tuple[ConsumerRecord[bytes, bytes], BookingRequested]] = []
        known: dict[int, bool] = {}
        for record in records:
            try:
                request = decode_request(record.value)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                poison.append(Poison(record, f"undecodable: {exc}"))
                continue
            event_id = request.event_id
            if event_id not in known:
                known[event_id] = await finalizer.knows_event(event_id)
            if not known[event_id]:
                poison.append(Poison(record, f"unknown event {event_id}"))
                continue
            if appended_after_expiry(record, request):
                expired += 1  # answered 503: nobody holds this id; it must not take a seat
                continue
            requests.append(request)
            appended.append((record, request))
        for bad in poison:
            await self._dead_letter(producer, cache, finalizer, bad)
        late = [r for record, r in appended if appended_late(record, r)]
        if late:
            self._start_tail()  # not held up by this wait
            # The API may still be waiting for these acknowledgements: let it decide (202,
            # or 503 and an abandoned mark) before looking at the marks.
            settled_at_ms = max(r.expires_at_ms or 0 for r in late) + ABANDON_SETTLE_MS
            await asyncio.sleep(max(settled_at_ms - time.time() * 1000, 0) / 1000)
        abandoned = await cache.abandoned([r.booking_id for r in requests])
        if abandoned:
            expired += len(abandoned)
            requests = [r for r in requests if r.booking_id not in abandoned]
        if expired:
            EXPIRED_REQUESTS.inc(expired)
            log.warning("dropped %d requests the API answered 503 for", expired)
        if self._settling is not None:
            await self._settling.wait()  # the gate must see the previous batch's holds settled
        settled = await finalizer.commit(requests, after_gate=self._start_tail)
        self.auditor.saw(event_id for event_id, exists in known.items() if exists)
        return settled

    async def _dead_letter(
        self,
        producer: AIOKafkaProducer,
        cache: DecisionCache,
        finalizer: Finalizer,
        bad: Poison,
    ) -> None:
        """Park the message with its reason; reject its booking if it names an undecided one."""
        record = bad.record
        await producer.send_and_wait(
            self.settings.dlq_topic,
            value=record.value,
            key=record.key,
            headers=[
                ("reason", bad.reason.encode()[:1000]),
                ("source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
            ],
        )
        DEAD_LETTERS.inc()
        request = _salvage(record.value)
        log.warning(
            "dead-lettered %s/%s@%s: %s",
            record.topic,
            record.partition,
            record.offset,
            bad.reason,
            extra={"booking_id": request.booking_id} if request else {},
        )
        if request is not None and not await self._decided(request.booking_id, cache, finalizer):
            now_ms = int(time.time() * 1000)
            decision = Decision(request.booking_id, Status.REJECTED, Reason.INVALID, (), now_ms)
            await cache.remember_decisions([(request, decision)])

    @staticmethod
    async def _decided(booking_id: uuid.UUID, cache: DecisionCache, finalizer: Finalizer) -> bool:
        """A poison message naming a booking that was already decided changes nothing."""
        cached = await cache.get(booking_id)
        if cached is not None and cached.status != Status.PENDING:
            return True
        return booking_id in await finalizer.decided_ids([booking_id])


def _count_decisions(decided: list[tuple[BookingRequested, Decision]]) -> None:
    """Decision metrics, one counter update per outcome rather than per booking."""
    outcomes = Counter((d.status.value, d.reason or "none") for _, d in decided)
    for (status, reason), n in outcomes.items():
        DECISIONS.labels(status, reason).inc(n)
    now_ms = time.time() * 1000
    DECISION_LATENCY.observe_many(
        max(now_ms - request.requested_at_ms, 0) / 1000 for request, _ in decided
    )


def _salvage(raw: bytes | None) -> BookingRequested | None:
    """The booking an invalid message was about, when it names one, with what it says."""
    if not raw:
        return None
    try:
        fields = msgspec.json.decode(raw)
        return BookingRequested(
            booking_id=msgspec.convert(fields["booking_id"], uuid.UUID),
            event_id=_as_int(fields.get("event_id")),
            user_id=str(fields.get("user_id", ""))[:64],
            quantity=_as_int(fields.get("quantity")),
            requested_at_ms=_as_int(fields.get("requested_at_ms")),
        )
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError, AttributeError):
        return None


def _as_int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


LOG_APPEND_TIME = 1  # Kafka's timestamp type when the broker stamps the append time


def appended_after_expiry(record: ConsumerRecord[bytes, bytes], request: BookingRequested) -> bool:
    """True for a request the broker appended after the API stopped waiting for it: the API
    answered 503, so nobody holds its booking id, and it must not take a seat. (An idempotent
    producer never drops a queued message, so it may still arrive once Kafka is back.)"""
    return (
        request.expires_at_ms is not None
        and record.timestamp_type == LOG_APPEND_TIME
        and record.timestamp > request.expires_at_ms
    )


# After a late request's deadline, how long the API may take to mark it abandoned.
ABANDON_SETTLE_MS = 500


def appended_late(record: ConsumerRecord[bytes, bytes], request: BookingRequested) -> bool:
    """Appended in time, but in the second half of its window (the broker was slow or away):
    its acknowledgement may miss the API's deadline, so the API may answer 503 after all."""
    if request.expires_at_ms is None or record.timestamp_type != LOG_APPEND_TIME:
        return False
    halfway = (request.requested_at_ms + request.expires_at_ms) / 2
    appended_at: int = record.timestamp
    return halfway < appended_at <= request.expires_at_ms


def _dependency(exc: BaseException) -> str:
    """The metric label of a retryable failure."""
    if isinstance(exc, psycopg.Error):
        return "postgres"
    if isinstance(exc, redis.exceptions.RedisError):
        return "redis"
    if isinstance(exc, KafkaError):
        return "kafka"
    return "other"


async def _report_lag(consumer: AIOKafkaConsumer) -> None:
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is not None:
            lag = max(highwater - await consumer.position(tp), 0)
            CONSUMER_LAG.labels(str(tp.partition)).set(lag)


async def _caught_up(consumer: AIOKafkaConsumer, *, ask_broker: bool = True) -> bool:
    """True when this member has partitions and has consumed everything in them, as far as
    the latest fetch responses tell (their high watermarks). Asking the broker for end
    offsets instead took 0.3-0.4 s: the request waits behind the fetcher's long poll on the
    same connection. A partition no fetch has answered for yet is asked about, or, without
    `ask_broker`, counts as not consumed."""
    assigned = list(consumer.assignment())
    if not assigned:
        return False
    unknown = [tp for tp in assigned if consumer.highwater(tp) is None]
    if unknown and not ask_broker:
        return False
    ends = await consumer.end_offsets(unknown) if unknown else {}
    for tp in assigned:
        end = ends.get(tp, consumer.highwater(tp))
        if end is None or await consumer.position(tp) < end:
            return False
    return True
