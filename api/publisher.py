"""Publishing booking requests to Kafka. A 202 is sent only after `publish` returned, which
means the broker acknowledged with acks=all through an idempotent producer."""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.config import Settings
from shared.contracts import BookingRequested, encode_request, event_key
from shared.errors import BrokerUnavailable
from shared.metrics import PRODUCE_SECONDS

log = logging.getLogger(__name__)

RECONNECT_PAUSE_S = 1.0  # after a failed connection attempt, 503 at once for this long
DEADLINE_MARGIN_S = 0.005  # give up this much before a message's deadline


class Publisher:
    """Owns the producer. Starts lazily, so the API comes up (and says 503) while Kafka is
    down, and recovers by itself when it returns."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[AIOKafkaProducer] | None = None
        self._retry_at = 0.0
        self._last_error = ""

    def _new_producer(self) -> AIOKafkaProducer:
        s = self._settings
        return AIOKafkaProducer(
            bootstrap_servers=s.bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=s.producer_linger_ms,
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
            await asyncio.wait_for(producer.start(), self._settings.produce_timeout_s)
        except (KafkaError, OSError, TimeoutError) as exc:
            await producer.stop()
            self._last_error = repr(exc)
            self._retry_at = time.monotonic() + RECONNECT_PAUSE_S
            raise BrokerUnavailable(f"cannot connect to Kafka: {exc!r}") from exc
        except asyncio.CancelledError:
            await producer.stop()  # the app is shutting down
            raise
        self._producer = producer
        return producer

    @property
    def timeout_ms(self) -> int:
        """How long `publish` waits for the acknowledgement, connecting included."""
        return int(self._settings.produce_timeout_s * 1000)

    async def publish(self, message: BookingRequested) -> None:
        """Return only once Kafka acknowledged the message; else raise BrokerUnavailable.

        The whole wait, connecting included, ends just before `message.expires_at_ms`; the
        worker drops a message the broker appended after that, and one this API marked
        abandoned (see api/bookings.py). (asyncio.timeout rather than wait_for, which made
        a Task per request.)"""
        started = time.perf_counter()
        try:
            # Give up a little before the message's deadline: whatever this API acknowledges
            # was appended before expires_at_ms, so the worker never drops it.
            remaining_s = (message.expires_at_ms or 0) / 1000 - time.time() - DEADLINE_MARGIN_S
            async with asyncio.timeout(max(remaining_s, 0.0)):
                producer = await self._producer_or_raise()
                await producer.send_and_wait(
                    self._settings.topic,
                    value=encode_request(message),
                    key=event_key(message.event_id),
                )
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(f"Kafka did not acknowledge: {exc!r}") from exc
        PRODUCE_SECONDS.observe(time.perf_counter() - started)

    async def ready(self) -> bool:
        try:
            producer = await self._producer_or_raise()
            await asyncio.wait_for(producer.client.fetch_all_metadata(), 2)
        except (BrokerUnavailable, KafkaError, OSError, TimeoutError):
            return False
        return True

    async def stop(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


def _retrieve_exception(task: asyncio.Task[AIOKafkaProducer]) -> None:
    """Mark a failed connection attempt's exception as seen, even if every request that
    waited for it gave up first (its waiters get BrokerUnavailable either way)."""
    if not task.cancelled():
        task.exception()
