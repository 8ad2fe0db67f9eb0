"""Publishing booking requests to Kafka. A 202 is sent only after `publish` returned, which
means the broker acknowledged with acks=all through an idempotent producer.

Requests that arrive while a partition's previous produce request is in flight are sent
together as the next one, a single record batch built with aiokafka's `create_batch`: each
request costs one append and one future, not a message future, a RecordMetadata and a timer
of its own as with `send_and_wait` (docs/performance.md has the measurements). Light traffic
waits for nothing: a request with nothing in flight before it is sent at once. How long a
request waits, and which deadline its record carries, follows shared/deadlines.py."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.producer.message_accumulator import BatchBuilder

from shared import deadlines
from shared.config import Settings
from shared.contracts import Command, encode_command, event_key, partition_of
from shared.errors import BrokerUnavailable, Unacknowledged
from shared.metrics import PRODUCE_SECONDS

log = logging.getLogger(__name__)

RECONNECT_PAUSE_S = 1.0  # after a failed connection attempt, 503 at once for this long


class _Batch:
    """One produce request in the making: the records, and who waits for the broker's ack.
    All its records share one deadline, `expires_at_ms`: its first request's."""

    __slots__ = ("builder", "expires_at_ms", "sent", "waiters")

    def __init__(self, builder: BatchBuilder, expires_at_ms: int) -> None:
        self.builder = builder
        self.waiters: list[tuple[asyncio.Future[None], float]] = []
        self.expires_at_ms = expires_at_ms
        self.sent = False  # handed to the producer: it may reach the topic, whatever follows

    def append(self, key: bytes, message: Command, waiter: asyncio.Future[None]) -> bool:
        """Add the request with the batch's deadline; False if it does not fit (full, or its
        deadline does not go with the batch's: `deadlines.batch_takes`)."""
        own = message.expires_at_ms or 0
        if not deadlines.batch_takes(self.expires_at_ms, own):
            return False
        if own != self.expires_at_ms:
            message = msgspec.structs.replace(message, expires_at_ms=self.expires_at_ms)
        if self.builder.append(timestamp=None, key=key, value=encode_command(message)) is None:
            return False  # full: the record goes into the next batch
        self.waiters.append((waiter, time.perf_counter()))
        return True

    def seconds_left(self) -> float:
        return deadlines.seconds_left(self.expires_at_ms)

    def settle(self, error: BaseException | None) -> None:
        if error is None:
            acked = time.perf_counter()
            for _, started in self.waiters:
                PRODUCE_SECONDS.observe(acked - started)
        elif self.sent:
            # The idempotent producer keeps a sent batch and may deliver it later: the API
            # marks these requests abandoned (shared/abandoned.py).
            error = Unacknowledged(f"Kafka did not acknowledge in time: {error!r}")
        for waiter, _ in self.waiters:
            if not waiter.done():  # a waiter whose request was cancelled
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)


class Publisher:
    """Owns the producer. Starts lazily, so the API comes up (and says 503) while Kafka is
    down, and recovers by itself when it returns."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[AIOKafkaProducer] | None = None
        self._retry_at = 0.0
        self._last_error = ""
        self._partition_of: dict[int, int] = {}  # event id -> partition, until metadata changes
        self._batches: dict[int, deque[_Batch]] = {}  # per partition: not yet sent, oldest first
        self._senders: dict[int, asyncio.Task[None]] = {}  # per partition, while it has batches
        self._stopped = False

    def _new_producer(self) -> AIOKafkaProducer:
        s = self._settings
        return AIOKafkaProducer(
            bootstrap_servers=s.bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            max_batch_size=256 * 1024,
            # A request not acknowledged in time fails instead of waiting 40 s.
            request_timeout_ms=int(s.produce_timeout_s * 1000),
        )

    async def start(self) -> None:
        """Try once to connect; failure is not fatal (see `_producer_or_raise`)."""
        try:
            await self._producer_or_raise()
        except BrokerUnavailable:
            log.warning("kafka unavailable at start; will retry on the first booking")

    async def _producer_or_raise(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        if self._stopped:
            raise BrokerUnavailable("the API is shutting down")
        # While Kafka is known to be down, answer at once instead of queueing every request
        # behind another connection attempt.
        if time.monotonic() < self._retry_at:
            raise BrokerUnavailable(f"Kafka is unreachable: {self._last_error}")
        # One connection attempt at a time, shared by every request waiting for it; a
        # request that gives up (its deadline passed) does not cancel it for the others.
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.create_task(self._connect())
            self._connecting.add_done_callback(_retrieve_exception)
        return await asyncio.shield(self._connecting)

    async def _connect(self) -> AIOKafkaProducer:
        producer = self._new_producer()
        try:
            async with asyncio.timeout(self._settings.produce_timeout_s):
                await producer.start()
                await producer.partitions_for(self._settings.topic)  # metadata, for `_partition`
        except (KafkaError, OSError, TimeoutError) as exc:
            await producer.stop()
            self._last_error = repr(exc)
            self._retry_at = time.monotonic() + RECONNECT_PAUSE_S
            raise BrokerUnavailable(f"cannot connect to Kafka: {exc!r}") from exc
        except asyncio.CancelledError:
            await producer.stop()  # the app is shutting down
            raise
        producer.client.cluster.add_listener(lambda _: self._partition_of.clear())
        self._producer = producer
        return producer

    async def publish(self, message: Command) -> None:
        """Return only once Kafka acknowledged the message; else raise BrokerUnavailable.

        The whole wait, connecting included, ends just before `message.expires_at_ms`, or
        before its batch's deadline if that is earlier, which is then the deadline its
        record carries (shared/deadlines.py)."""
        try:
            producer = self._producer
            if producer is None:
                async with asyncio.timeout(deadlines.seconds_left(message.expires_at_ms or 0)):
                    producer = await self._producer_or_raise()
            key = event_key(message.event_id)
            partition = self._partition(producer, message.event_id, key)
            acked = asyncio.get_running_loop().create_future()
            self._enqueue(producer, partition, key, message, acked)
            await acked
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(f"Kafka did not acknowledge: {exc!r}") from exc

    def _partition(self, producer: AIOKafkaProducer, event_id: int, key: bytes) -> int:
        """The partition aiokafka's default partitioner (murmur2, as in the Java client)
        gives the event's key: one event's requests stay in one partition, in order."""
        partition = self._partition_of.get(event_id)
        if partition is None:
            partitions = producer.client.cluster.partitions_for_topic(self._settings.topic)
            if not partitions:
                raise BrokerUnavailable(f"Kafka has no partitions for {self._settings.topic}")
            partition = partition_of(event_id, partitions)
            self._partition_of[event_id] = partition
        return partition

    def _enqueue(
        self,
        producer: AIOKafkaProducer,
        partition: int,
        key: bytes,
        message: Command,
        acked: asyncio.Future[None],
    ) -> None:
        batches = self._batches.setdefault(partition, deque())
        if not (batches and batches[-1].append(key, message, acked)):
            batch = _Batch(producer.create_batch(), message.expires_at_ms or 0)
            batch.append(key, message, acked)  # an empty batch takes its first record
            batches.append(batch)
        if partition not in self._senders:
            self._senders[partition] = asyncio.create_task(self._send(producer, partition))

    async def _send(self, producer: AIOKafkaProducer, partition: int) -> None:
        """Send the partition's batches one produce request at a time, each once the one
        before it was acknowledged (or gave up), until none is left. Every request gets an
        answer: a batch past its deadline is not sent at all, and whatever is left when the
        sender is cancelled (the API stopping) fails."""
        batches = self._batches[partition]
        try:
            while batches:
                batch = batches.popleft()
                if batch.seconds_left() <= 0:
                    batch.settle(TimeoutError("deadline passed before the batch could be sent"))
                    continue
                try:
                    async with asyncio.timeout(batch.seconds_left()):
                        batch.sent = True
                        delivered = await producer.send_batch(
                            batch.builder, self._settings.topic, partition=partition
                        )
                        await delivered
                except Exception as exc:  # noqa: BLE001 - handed to every request of the batch
                    batch.settle(exc)
                except BaseException:
                    batches.appendleft(batch)  # failed below, with the rest
                    raise
                else:
                    batch.settle(None)
        finally:
            del self._senders[partition]
            _fail_all(batches)

    async def ready(self) -> bool:
        try:
            producer = await self._producer_or_raise()
            await asyncio.wait_for(producer.client.fetch_all_metadata(), 2)
        except (BrokerUnavailable, KafkaError, OSError, TimeoutError):
            return False
        return True

    async def stop(self) -> None:
        self._stopped = True  # a request from now on gets 503 rather than a new producer
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        if self._producer is not None:
            await self._producer.stop()  # flushes what was sent; the senders see the acks
            self._producer = None
        senders = list(self._senders.values())
        for sender in senders:
            sender.cancel()  # whatever never reached the producer fails its requests
        await asyncio.gather(*senders, return_exceptions=True)
        self._senders.clear()  # a sender cancelled before it ever ran left its entry
        for batches in self._batches.values():
            _fail_all(batches)


def _fail_all(batches: deque[_Batch]) -> None:
    while batches:
        batches.popleft().settle(BrokerUnavailable("the API is shutting down"))


def _retrieve_exception(task: asyncio.Task[AIOKafkaProducer]) -> None:
    """Mark a failed connection attempt's exception as seen, even if every request that
    waited for it gave up first (its waiters get BrokerUnavailable either way)."""
    if not task.cancelled():
        task.exception()
