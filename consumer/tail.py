"""The last steps of each decided batch, run while the worker decides the next one."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from consumer.backoff import Backoff
from consumer.finalize import Decided, Outcome
from consumer.positions import report_lag
from consumer.seat_map import SeatMaps
from shared.decisions import DecisionCache
from shared.errors import Stopped
from shared.metrics import BATCH_SECONDS, DECISION_LATENCY, DECISIONS, LIFECYCLE

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DecidedBatch:
    """A batch whose decisions PostgreSQL committed (see consumer/finalize.py's words)."""

    outcome: Outcome  # its decisions and changes, and its gate holds being settled
    offsets: dict[TopicPartition, int]  # to commit once it is settled and recorded (an
    # expiry sweep has none)
    fetched_at: float  # time.monotonic() when it was fetched


class BatchTail:
    """Settles, records and commits decided batches, one at a time, in order.

    The rules, each for a reason:
    1. A batch handed over waits until `start()`: the worker calls it once the next batch's
       gate has answered, or when it is about to wait anyway (nothing fetched, a retry, a
       late request, a rebalance, shutdown). Recording holds Redis for a while, and the
       next batch's calls before and at the gate would queue behind it.
    2. At most one tail runs; `finish()` waits for it, and the worker calls it before it
       hands over the next batch, so offsets are committed in batch order.
    3. A batch's offsets are committed only after its holds are settled and its decisions
       recorded: a crash in between redelivers it, and the replay settles and records it
       again, so no hold outlives its decision and no client reads PENDING for a decided
       booking.
    4. A tail that stops before recording its batch (asked to stop while Redis is down)
       blocks every later commit: committing a later offset would skip the unrecorded
       batch, which must be redelivered.
    5. The next batch's gate must see this batch's holds settled: `settled()`.
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        cache: DecisionCache,
        seat_maps: SeatMaps,
        backoff: Backoff,
    ) -> None:
        self._consumer = consumer
        self._cache = cache
        self._seat_maps = seat_maps
        self._backoff = backoff
        self._waiting: DecidedBatch | None = None  # handed over, not started (rule 1)
        self._running: asyncio.Task[None] | None = None
        self._latest: DecidedBatch | None = None
        self._unrecorded = False  # rule 4
        self.decided = 0

    def hand_over(self, batch: DecidedBatch) -> None:
        """The next batch to finish; call `finish()` first (rule 2)."""
        assert self._waiting is None, "finish() the previous batch before handing over"
        self._waiting = self._latest = batch

    def start(self) -> None:
        """Start the handed-over batch's tail, if it has not started (rule 1)."""
        if self._waiting is not None:
            batch, self._waiting = self._waiting, None
            self._running = asyncio.create_task(self._finish(batch), name="batch-tail")

    async def finish(self) -> None:
        """Start the handed-over batch's tail and wait until it is done; re-raise what it
        raised. Shielded: a waiter that is cancelled (a rebalance giving up) does not cancel
        the tail, and every waiter sees the same task and the same outcome."""
        self.start()
        if self._running is not None:
            await asyncio.shield(self._running)

    async def settled(self) -> None:
        """Wait until the latest batch's holds are settled (rule 5)."""
        if self._latest is not None:
            await self._latest.outcome.settling.wait()

    async def _finish(self, batch: DecidedBatch) -> None:
        decided = batch.outcome.decided
        try:
            await self._backoff.retry(
                lambda: self._record(batch), f"recording {len(decided)} decisions"
            )
        except Stopped:
            log.warning("stopping with an unrecorded batch: it will be redelivered")
            self._unrecorded = True
            return
        _count(decided, batch.outcome.changed)
        self.decided += len(decided)
        if self._unrecorded:
            log.warning("not committing: an earlier batch is unrecorded and must be redelivered")
            return
        if not batch.offsets:
            return  # an expiry sweep or seat maps alone: nothing was fetched
        try:
            await self._backoff.retry(lambda: self._commit(batch.offsets), "offset commit")
        except Stopped:
            log.warning("stopping with an uncommitted batch: it will be redelivered")
            return
        BATCH_SECONDS.observe(time.monotonic() - batch.fetched_at)
        await report_lag(self._consumer)

    async def _record(self, batch: DecidedBatch) -> None:
        await batch.outcome.settling.wait()
        await self._cache.remember_decisions(batch.outcome.recorded)
        await self._seat_maps.publish(batch.outcome.rendered)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit a batch's offsets. Refused is fine: the batch is redelivered, and its
        decisions are found in PostgreSQL."""
        try:
            await asyncio.shield(self._consumer.commit(offsets))
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved on (rebalance); the new owner redelivers, harmlessly.
            log.warning("offset commit refused, batch will be redelivered: %s", exc)


def _count(decided: Decided, changed: Decided) -> None:
    """Decision metrics, one counter update per outcome rather than per booking."""
    outcomes = Counter((d.status.value, d.reason or "none") for _, d in decided)
    for (status, reason), n in outcomes.items():
        DECISIONS.labels(status, reason).inc(n)
    for status, n in Counter(d.status.value for _, d in changed).items():
        LIFECYCLE.labels(status).inc(n)
    now_ms = time.time() * 1000
    DECISION_LATENCY.observe_many(
        max(now_ms - request.requested_at_ms, 0) / 1000 for request, _ in decided
    )
