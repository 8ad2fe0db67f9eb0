"""The worker loop: fetch a batch, decide it, commit its offsets; shut down in order.

Offsets are committed only after PostgreSQL committed the batch's decisions, so a crash at any
point means redelivery, never loss; the finalizer makes redelivery harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import os
import signal
import time
from collections.abc import Iterator

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from consumer.admission import Admitter
from consumer.auditor import Auditor, assigned_events
from consumer.backoff import Backoff, stop_clients
from consumer.dead_letters import DeadLetters, Poison
from consumer.expiry import ExpirySweep
from consumer.finalize import Finalizer, Outcome
from consumer.positions import caught_up, forget_lag, report_lag
from consumer.reconcile import Reconciler
from consumer.relay import Relay
from consumer.settling import Settling
from consumer.tail import BatchTail, DecidedBatch
from shared import deadlines, heap, metrics
from shared.config import Settings
from shared.contracts import BookingRequested, Command, decode_command
from shared.db import open_pool
from shared.decisions import DecisionCache
from shared.errors import Stopped
from shared.failures import classify
from shared.inventory import Inventory
from shared.metrics import BATCH_SIZE, EXPIRED_REQUESTS
from shared.redis_clients import open_redis

log = logging.getLogger(__name__)

# aiokafka asks the broker for more of a partition only once everything fetched from it has
# been consumed, so the worker waits for each refill: large fetches make those waits rare.
FETCH_BYTES_PER_PARTITION = 16 * 1024 * 1024
# aiokafka keeps one fetch request in flight per broker: while quiet partitions sit in a
# long poll, a partition whose buffer just emptied cannot ask for more. A short long poll
# bounds that stall, for a few more empty fetches a second when idle.
FETCH_MAX_WAIT_MS = 100
# The relay's record batches: one produce request carries thousands of booking events.
RELAY_BATCH_BYTES = 512 * 1024
SIDE_TASK_GRACE_S = 5.0  # at shutdown, how long the relay may take to finish its round

Records = list[ConsumerRecord[bytes, bytes]]


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


class _FinishBatchOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions are handed over only after the batch in hand is decided and committed."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._worker.batch_lock:
            await self._worker.finish_tail()
            log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))
            forget_lag(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))


class Worker:
    def __init__(self, settings: Settings, *, stop_when_idle: bool = False) -> None:
        self.settings = settings
        self.stop = asyncio.Event()
        self._stop_when_idle = stop_when_idle
        self._backoff = Backoff(self.stop, settings.retry_backoff_max_s)
        # Held while a batch is decided and handed to the tail, and by the revoke listener.
        self.batch_lock = asyncio.Lock()
        self._tail: BatchTail | None = None

    @property
    def decided(self) -> int:
        return self._tail.decided if self._tail is not None else 0

    async def finish_tail(self) -> None:
        if self._tail is not None:
            await self._tail.finish()

    async def run(self) -> None:
        s = self.settings
        metrics.serve(s.worker_metrics_port, s.worker_metrics_host)
        # A short wait for a connection: while PostgreSQL is down the batch fails fast, backs
        # off, and a SIGTERM is honoured within seconds.
        pool = open_pool(s, max_size=4, acquire_timeout_s=3.0)
        redis_client = open_redis(s)
        await pool.open(wait=False)
        cache = DecisionCache(redis_client, s.redis_prefix, s.status_cache_ttl_s)
        finalizer = Finalizer(s, pool, Inventory(redis_client, s.redis_prefix), cache)
        kafka: list[AIOKafkaProducer | AIOKafkaConsumer] = []  # started, to stop in order
        side_tasks: list[asyncio.Task[None]] = []
        try:
            # Started while Kafka may be down (a restart mid-outage): each waits for it.
            producer = await self._backoff.started(
                functools.partial(_producer, s), "dead-letter producer"
            )
            kafka.append(producer)
            relay_producer = await self._backoff.started(
                functools.partial(_producer, s, max_batch_size=RELAY_BATCH_BYTES),
                "outbox relay's producer",
            )
            kafka.append(relay_producer)
            await self._reconcile(Reconciler(s, pool, finalizer, finalizer.inventory))
            consumer = await self._backoff.started(
                functools.partial(_consumer, s), "booking consumer"
            )
            kafka.insert(0, consumer)  # the first to stop: leave the group
            self._tail = BatchTail(consumer, cache, finalizer.seat_maps, self._backoff)
            dead_letters = DeadLetters(producer, s.dlq_topic, cache, finalizer)
            self.relay = Relay(s, relay_producer, self._backoff)
            auditor = Auditor(
                pool, finalizer.inventory, s.audit_interval_s, assigned_events(consumer, s.topic)
            )
            consumer.subscribe([s.topic], listener=_FinishBatchOnRevoke(self))
            log.info("worker started: topic=%s group=%s", s.topic, s.consumer_group)
            side_tasks.append(asyncio.create_task(auditor.run(self.stop), name="auditor"))
            if s.outbox:
                side_tasks.append(asyncio.create_task(self.relay.run(self.stop), name="relay"))
            admitter = Admitter(s, pool, redis_client)
            side_tasks.append(asyncio.create_task(admitter.run(self.stop), name="admission"))
            heap.settle(s.gc_young_threshold)
            batches = _Batches(self._tail, finalizer, dead_letters, auditor)
            sweep = ExpirySweep(pool, consumer, s.topic, s.expiry_sweep_interval_s)
            await self._loop(consumer, batches, sweep, side_tasks)
        except Stopped:
            log.info("stopped while waiting for a dependency")
        finally:
            # Shutdown order: stop fetching (done), leave the group, stop the side tasks (the
            # relay sends what it read), then close the clients and pools.
            self.stop.set()
            for task in side_tasks:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), SIDE_TASK_GRACE_S)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await stop_clients(kafka)
            await redis_client.aclose()
            await pool.close()
            log.info("worker stopped after %d decisions", self.decided)

    async def _reconcile(self, reconciler: Reconciler) -> None:
        """Put the gate in line with the ledger before deciding anything (see reconcile.py)."""
        try:
            fixes = await reconciler.run()
        except Exception as exc:
            if not classify(exc).retryable:
                raise
            # Not fatal: a missing counter is also rebuilt on demand when a batch needs it.
            log.warning("reconciler could not run at start: %r", exc)
            return
        log.info(
            "reconciler at start: %d events checked, %d fixes", fixes.events_checked, fixes.total
        )

    async def _loop(
        self,
        consumer: AIOKafkaConsumer,
        batches: _Batches,
        sweep: ExpirySweep,
        side_tasks: list[asyncio.Task[None]],
    ) -> None:
        assert self._tail is not None
        try:
            while not self.stop.is_set():
                for task in side_tasks:
                    if task.done():
                        # A side task that dies stops the worker loudly rather than limping.
                        task.result()
                        raise RuntimeError(f"side task {task.get_name()} ended unexpectedly")
                batch_max = self.settings.batch_max
                fetched = await consumer.getmany(timeout_ms=0, max_records=batch_max)
                if not fetched:
                    # About to wait for the broker: record the last batch meanwhile (rule 1
                    # of consumer/tail.py), so its buyers hear of it without that wait.
                    self._tail.start()
                    fetched = await consumer.getmany(
                        timeout_ms=self.settings.poll_timeout_ms, max_records=batch_max
                    )
                if fetched:
                    fetched_at = time.monotonic()
                    records = [record for part in fetched.values() for record in part]
                    offsets = {tp: part[-1].offset + 1 for tp, part in fetched.items()}
                    BATCH_SIZE.observe(len(records))
                    async with self.batch_lock:
                        try:
                            outcome = await self._backoff.retry(
                                functools.partial(batches.decide, records),
                                f"batch of {len(records)}",
                                on_failure=self._tail.start,  # record the previous meanwhile
                            )
                        except Stopped:
                            return  # stopped while a dependency was down; nothing committed
                        self.relay.nudge()
                        await self._tail.finish()
                        self._tail.hand_over(DecidedBatch(outcome, offsets, fetched_at))
                    # Without polling once more for nothing.
                    if self._stop_when_idle and await caught_up(consumer, ask_broker=False):
                        log.info("no more messages: stopping (burst mode)")
                        return
                else:
                    await self._tail.finish()
                    self._publish_seat_maps(batches)
                    await report_lag(consumer)
                    if self._stop_when_idle and await caught_up(consumer):
                        log.info("no more messages: stopping (burst mode)")
                        return
                if sweep.due():
                    await self._expire(batches, sweep)
        finally:
            await self._tail.finish()
            self._publish_seat_maps(batches)  # what the last batches changed
            await self._tail.finish()

    def _publish_seat_maps(self, batches: _Batches) -> None:
        """Quiet now: the seat maps changed since their last publication go out (a busy
        event's are published with its batches, at most every 250 ms)."""
        assert self._tail is not None
        outcome = batches.seat_maps_only()
        if outcome is not None:
            self._tail.hand_over(DecidedBatch(outcome, {}, time.monotonic()))

    async def _expire(self, batches: _Batches, sweep: ExpirySweep) -> None:
        """Expire the due holds of events that had no batch to do it (consumer/expiry.py)."""
        assert self._tail is not None
        async with self.batch_lock:
            try:
                await self._backoff.retry(
                    batches.rebuild_stale_gates, "rebuilding gates after a Redis failover"
                )
                events = await self._backoff.retry(sweep.events, "finding due holds")
                if not events:
                    return
                outcome = await self._backoff.retry(
                    functools.partial(batches.expire, events),
                    f"expiry sweep of {len(events)} events",
                    on_failure=self._tail.start,
                )
            except Stopped:
                return
            self.relay.nudge()
            await self._tail.finish()
            self._tail.hand_over(DecidedBatch(outcome, {}, time.monotonic()))


def _producer(s: Settings, **options: int) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=s.bootstrap_servers, acks="all", enable_idempotence=True, **options
    )


def _consumer(s: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=s.bootstrap_servers,
        group_id=s.consumer_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=FETCH_BYTES_PER_PARTITION,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        session_timeout_ms=s.consumer_session_timeout_ms,
        heartbeat_interval_ms=s.consumer_session_timeout_ms // 3,
    )


class _Batches:
    """Turns fetched records into a decided batch: drops what must not be decided (poison,
    requests answered 503), then lets the finalizer decide the rest."""

    def __init__(
        self,
        tail: BatchTail,
        finalizer: Finalizer,
        dead_letters: DeadLetters,
        auditor: Auditor,
    ) -> None:
        self._tail = tail
        self._finalizer = finalizer
        self._dead_letters = dead_letters
        self._auditor = auditor

    def seat_maps_only(self) -> Outcome | None:
        """The seat maps still to publish, as an outcome with nothing else in it."""
        rendered = self._finalizer.seat_maps.render(force=True)
        if not rendered:
            return None
        return Outcome([], [], Settling(self._finalizer.inventory, []), rendered)

    async def rebuild_stale_gates(self) -> int:
        await self._tail.settled()  # a settle still running would land on the rebuilt gate
        return await self._finalizer.rebuild_stale_gates()

    async def expire(self, event_ids: list[int]) -> Outcome:
        await self._tail.settled()  # the gate must see the previous batch's holds settled
        return await self._finalizer.decide([], expire=event_ids)

    async def decide(self, records: Records) -> Outcome:
        commands: list[Command] = []
        poison: list[Poison] = []
        expired = 0
        appended: list[tuple[ConsumerRecord[bytes, bytes], BookingRequested]] = []
        known: dict[int, bool] = {}
        for record in records:
            try:
                command = decode_command(record.value)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                poison.append(Poison(record, f"undecodable: {exc}"))
                continue
            event_id = command.event_id
            if event_id not in known:
                known[event_id] = await self._finalizer.knows_event(event_id)
            if not known[event_id]:
                poison.append(Poison(record, f"unknown event {event_id}"))
                continue
            if isinstance(command, BookingRequested):
                if deadlines.appended_after_expiry(record, command):
                    expired += 1  # answered 503: nobody holds this id; it must not take a seat
                    continue
                appended.append((record, command))
            # A payment or cancellation is applied whenever it arrives: applying one the
            # API answered 503 for is what the client's retry would have done.
            commands.append(command)
        for bad in poison:
            await self._dead_letters.park(bad)
        late = [r for record, r in appended if deadlines.appended_late(record, r)]
        if late:
            self._tail.start()  # not held up by this wait
            # The API may still be waiting for these acknowledgements: let it answer (202,
            # or 503 and an abandoned mark) before looking at the marks.
            wait_ms = deadlines.abandon_settled_at_ms(late) - deadlines.now_ms()
            await asyncio.sleep(max(wait_ms, 0) / 1000)
        # In the ledger: a Redis that lost its data must not turn a 503 into a sale.
        abandoned = await self._finalizer.abandoned_among([r.booking_id for _, r in appended])
        if abandoned:
            expired += len(abandoned)
            commands = [
                c
                for c in commands
                if not (isinstance(c, BookingRequested) and c.booking_id in abandoned)
            ]
        if expired:
            EXPIRED_REQUESTS.inc(expired)
            log.warning("dropped %d requests the API answered 503 for", expired)
        await self._tail.settled()  # the gate must see the previous batch's holds settled
        outcome = await self._finalizer.decide(commands, after_gate=self._tail.start)
        self._auditor.saw(event_id for event_id, exists in known.items() if exists)
        return outcome
