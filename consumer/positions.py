"""Where this group member stands in its partitions: lag for the metrics, and whether it
has consumed everything (burst mode)."""

from __future__ import annotations

import contextlib

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Gauge

from shared.metrics import CONSUMER_LAG


async def report_lag(consumer: AIOKafkaConsumer, gauge: Gauge = CONSUMER_LAG) -> None:
    """Set `gauge` per assigned partition: the messages not consumed yet."""
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is not None:
            lag = max(highwater - await consumer.position(tp), 0)
            gauge.labels(str(tp.partition)).set(lag)


def forget_lag(revoked: set[TopicPartition]) -> None:
    for tp in revoked:
        with contextlib.suppress(KeyError):
            CONSUMER_LAG.remove(str(tp.partition))


async def caught_up(consumer: AIOKafkaConsumer, *, ask_broker: bool = True) -> bool:
    """True when this member has partitions and has consumed everything in them, as far as
    the latest fetch responses tell (their high watermarks). Asking the broker for end
    offsets instead is slow: the request waits behind the fetcher's long poll on the same
    connection. A partition no fetch has answered for yet is asked about, or, without
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
