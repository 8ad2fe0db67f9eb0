"""`python -m consumer.notify`: mails buyers when a booking is confirmed, expires or is
cancelled, reading the booking-events topic in a consumer group of its own
(TICKETS_NOTIFY_GROUP) and mailing through TICKETS_SMTP_URL.

Records are handled in order, one mail at a time on one reused SMTP connection, and a
batch's offsets are committed once its mails are done, so a crash means redelivery; each
state change is still mailed once (consumer/delivery.py says how, and what window is left).
HELD and REJECTED are not mailed, nor buyers without an account (`open` mode). A message
that cannot be decoded, or a mail the server refuses for good (5xx), goes to the dead-letter
topic (TICKETS_NOTIFY_DLQ_TOPIC) with a `reason` header. While PostgreSQL or the SMTP server
is down, the mail in hand is retried with backoff and the rest wait behind it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import sys
from typing import TypeAlias

import msgspec
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from consumer import notifications
from consumer.backoff import Backoff, stop_clients
from consumer.booking_mail import MAILED
from consumer.delivery import Delivery, Result
from consumer.mailer import Mailer, SmtpTarget
from consumer.notifications import Mailing
from consumer.positions import report_lag
from consumer.worker import stop_on_signals
from shared import logs, metrics
from shared.config import Settings, load_or_exit
from shared.contracts import BookingEvent, decode_booking_event
from shared.db import Pool, open_pool
from shared.errors import ConfigError, Stopped
from shared.metrics import NOTIFICATIONS, NOTIFY_LAG, NOTIFY_OUTCOMES

log = logging.getLogger(__name__)

# Small batches: offsets are committed after each, and a rebalance waits for the one in hand.
BATCH_MAX = 100
REASON_MAX_BYTES = 1000
OUTCOME = {outcome: NOTIFICATIONS.labels(outcome) for outcome in NOTIFY_OUTCOMES}

Record: TypeAlias = ConsumerRecord[bytes, bytes]


class _FinishBatchOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions are handed over only after the batch in hand is mailed and committed."""

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._notifier.batch_lock:
            log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))


class Notifier:
    def __init__(self, settings: Settings, target: SmtpTarget) -> None:
        self.settings = settings
        self.target = target
        self.stop = asyncio.Event()
        self.batch_lock = asyncio.Lock()  # held by a batch from fetch to offset commit
        self.backoff = Backoff(self.stop, settings.retry_backoff_max_s)

    async def run(self) -> None:
        s = self.settings
        metrics.serve(s.notify_metrics_port, s.worker_metrics_host)
        # A short wait for a connection, so a batch fails fast and backs off while
        # PostgreSQL is down, and a SIGTERM is honoured within seconds.
        pool = open_pool(s, max_size=2, acquire_timeout_s=3.0)
        mailer = Mailer(self.target)
        kafka: list[AIOKafkaProducer | AIOKafkaConsumer] = []  # started, to stop in order
        try:
            await pool.open(wait=False)
            # Started while Kafka may be down (a restart mid-outage): each waits for it.
            producer = await self.backoff.started(
                functools.partial(
                    AIOKafkaProducer,
                    bootstrap_servers=s.bootstrap_servers,
                    acks="all",
                    enable_idempotence=True,
                ),
                "dead-letter producer",
            )
            kafka.append(producer)
            consumer = await self.backoff.started(
                functools.partial(
                    AIOKafkaConsumer,
                    bootstrap_servers=s.bootstrap_servers,
                    group_id=s.notify_group,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    session_timeout_ms=s.consumer_session_timeout_ms,
                    heartbeat_interval_ms=s.consumer_session_timeout_ms // 3,
                ),
                "events consumer",
            )
            kafka.insert(0, consumer)  # the first to stop: leave the group
            consumer.subscribe([s.events_topic], listener=_FinishBatchOnRevoke(self))
            log.info("notifier started: topic=%s group=%s", s.events_topic, s.notify_group)
            delivery = Delivery(pool, mailer, s.mail_from, self.backoff)
            batches = _Batches(self, pool, producer, delivery)
            await self._loop(consumer, batches)
        except Stopped:
            log.info("stopped while waiting for a dependency")
        finally:
            # Stop fetching (done), leave the group, then close the connections.
            await stop_clients(kafka)
            await mailer.quit()
            await pool.close()
            log.info("notifier stopped")

    async def _loop(self, consumer: AIOKafkaConsumer, batches: _Batches) -> None:
        while not self.stop.is_set():
            fetched = await consumer.getmany(
                timeout_ms=self.settings.poll_timeout_ms, max_records=BATCH_MAX
            )
            if fetched:
                async with self.batch_lock:
                    done = await batches.handle([r for part in fetched.values() for r in part])
                    if done:
                        await _commit(consumer, done)
            await report_lag(consumer, NOTIFY_LAG)


class _Batches:
    """One fetched batch: decoded, skipped or mailed record by record, in order."""

    def __init__(
        self, notifier: Notifier, pool: Pool, producer: AIOKafkaProducer, delivery: Delivery
    ) -> None:
        self._settings = notifier.settings
        self._stop = notifier.stop
        self._backoff = notifier.backoff
        self._pool = pool
        self._producer = producer
        self._delivery = delivery

    async def handle(self, records: list[Record]) -> dict[TopicPartition, int]:
        """The offsets to commit: past every record done. Stops early (and commits what was
        done) when asked to stop, even while a dependency is down."""
        done: dict[TopicPartition, int] = {}
        accepted: list[tuple[Mailing, str]] = []
        try:
            events = [(record, _decode(record)) for record in records]
            wanted = {e.user_id for _, e in events if isinstance(e, BookingEvent)}
            addresses = await self._backoff.retry(
                functools.partial(notifications.recipients, self._pool, wanted),
                "looking up the buyers' addresses",
            )
            for record, event in events:
                if self._stop.is_set():
                    break
                outcome = await self._one(record, event, addresses, accepted)
                OUTCOME[outcome].inc()
                done[TopicPartition(record.topic, record.partition)] = record.offset + 1
        except Stopped:
            log.info("stopped while a dependency was down: the rest of the batch comes again")
        with contextlib.suppress(Stopped):
            # Only diagnostics: rows without accepted_at read "in doubt" if this is lost.
            await self._backoff.retry(
                functools.partial(notifications.record_accepted, self._pool, accepted),
                f"recording {len(accepted)} mails as accepted",
            )
        return done

    async def _one(
        self,
        record: Record,
        event: BookingEvent | str,
        addresses: dict[str, str],
        accepted: list[tuple[Mailing, str]],
    ) -> str:
        park = functools.partial(self._park, record)
        if isinstance(event, str):
            await park(event)
            return "undecodable"
        if event.status not in MAILED:
            return "not_mailed"
        address = addresses.get(event.user_id)
        if address is None:
            log.debug(
                "no account for %s: event %s seq %s not mailed",
                event.user_id,
                event.event_id,
                event.seq,
            )
            return "no_account"
        mailing = Mailing(event, address)
        delivered = await self._backoff.retry(
            functools.partial(self._delivery.deliver, mailing, park),
            f"mailing event {event.event_id} seq {event.seq}",
        )
        if delivered.result is Result.SENT:
            accepted.append((mailing, delivered.reply))
        return delivered.result.value

    async def _park(self, record: Record, reason: str) -> None:
        """The message on the dead-letter topic with the reason and where it came from."""
        source = f"{record.topic}/{record.partition}/{record.offset}"
        await self._backoff.retry(
            functools.partial(
                self._producer.send_and_wait,
                self._settings.notify_dlq_topic,
                value=record.value,
                key=record.key,
                headers=[
                    ("reason", reason.encode()[:REASON_MAX_BYTES]),
                    ("source", source.encode()),
                ],
            ),
            f"dead-lettering {source}",
        )
        log.warning("dead-lettered %s: %s", source, reason)


def _decode(record: Record) -> BookingEvent | str:
    """The event, or why the message is poison."""
    try:
        return decode_booking_event(record.value)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return f"undecodable: {exc}"


async def _commit(consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
    try:
        # Shielded: a stop request must not leave a commit half done.
        await asyncio.shield(consumer.commit(offsets))
    except KafkaError as exc:
        # After a rebalance: the next owner gets these events again and finds them mailed.
        log.warning("offsets not committed (%r): the events come again", exc)


async def _run(settings: Settings, target: SmtpTarget) -> None:
    notifier = Notifier(settings, target)
    with stop_on_signals(notifier.stop):
        await notifier.run()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m consumer.notify", description=__doc__)
    parser.parse_args()
    settings = load_or_exit()
    try:
        target = SmtpTarget.from_url(settings.smtp_url)
        if settings.notify_dlq_topic in ("", settings.events_topic):
            raise ConfigError(
                "TICKETS_NOTIFY_DLQ_TOPIC must be set and differ from the events topic"
            )
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    logs.configure(settings)
    uvloop.run(_run(settings, target))


if __name__ == "__main__":
    main()
