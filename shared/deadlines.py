"""The deadline protocol: a request answered 503 never takes a seat, and a request answered
202 is never dropped. Every rule of it is here; docs/deadlines.md tells the whole story.

1. The API stamps each request with a deadline, `expires_at_ms` (`deadline_for`).
2. The publisher waits for Kafka's acknowledgement until just before it (`seconds_left`).
   Requests sent in one produce request share its first request's deadline (`batch_takes`),
   and each record carries that shared deadline.
3. When the wait ends without an acknowledgement, the API answers 503 and, if the request was
   sent, marks the booking abandoned in PostgreSQL (shared/abandoned.py: a Redis wipe must not
   undo it). An idempotent producer keeps the message, though, and may deliver it once the
   broker is back.
4. The broker stamps each record of the booking topic with the time it appended it
   (`BOOKING_TOPIC_CONFIG`).
5. The worker drops a record appended after its deadline (`appended_after_expiry`: the API
   has answered 503 by then) and one marked abandoned. A record appended in the second half
   of its window (`appended_late`) may still see its acknowledgement miss the deadline, so
   the worker first waits until the API has had its say (`abandon_settled_at_ms`).

This assumes the API's and the broker's clocks agree (NTP), as they do on one machine.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from aiokafka import ConsumerRecord

from shared.contracts import BookingRequested

# The publisher gives up this much before a deadline, so what it acknowledged was appended
# in time.
MARGIN_S = 0.005
# A produce request takes requests whose deadlines lie at most this much after its first
# one's; so a request may be answered 503 up to this much before its own deadline.
BATCH_SPREAD_MS = 100
# After a late record's deadline, how long the API may take to mark it abandoned.
ABANDON_SETTLE_MS = 500

# Kafka's timestamp type when the broker stamps the append time.
LOG_APPEND_TIME = 1
BOOKING_TOPIC_CONFIG = {"message.timestamp.type": "LogAppendTime"}


def now_ms() -> int:
    return int(time.time() * 1000)


def deadline_for(requested_at_ms: int, produce_timeout_s: float) -> int:
    """The `expires_at_ms` of a request made at `requested_at_ms`."""
    return requested_at_ms + int(produce_timeout_s * 1000)


def seconds_left(expires_at_ms: int) -> float:
    """How long the API may still wait for an acknowledgement (never negative)."""
    return max(expires_at_ms / 1000 - time.time() - MARGIN_S, 0.0)


def batch_takes(batch_expires_at_ms: int, expires_at_ms: int) -> bool:
    """Whether a produce request whose deadline is `batch_expires_at_ms` may take a request
    with this deadline (which it then carries the batch's deadline instead)."""
    return 0 <= expires_at_ms - batch_expires_at_ms <= BATCH_SPREAD_MS


def appended_after_expiry(record: ConsumerRecord[bytes, bytes], request: BookingRequested) -> bool:
    """Appended after the API stopped waiting for it: the API answered 503, nobody holds its
    booking id, and it must not take a seat."""
    return (
        request.expires_at_ms is not None
        and record.timestamp_type == LOG_APPEND_TIME
        and record.timestamp > request.expires_at_ms
    )


def appended_late(record: ConsumerRecord[bytes, bytes], request: BookingRequested) -> bool:
    """Appended in time, but in the second half of its window (the broker was slow or away):
    its acknowledgement may miss the deadline, so the API may answer 503 after all."""
    if request.expires_at_ms is None or record.timestamp_type != LOG_APPEND_TIME:
        return False
    halfway = (request.requested_at_ms + request.expires_at_ms) / 2
    appended_at: int = record.timestamp
    return halfway < appended_at <= request.expires_at_ms


def abandon_settled_at_ms(late: Iterable[BookingRequested]) -> int:
    """When every one of these late requests has been answered by the API, and marked
    abandoned if it was answered 503."""
    return max(r.expires_at_ms or 0 for r in late) + ABANDON_SETTLE_MS


# The on-sale queue (shared/queue.py, shared/admission.py, api/proof_of_work.py).

CHALLENGE_TTL_S = 600  # a proof-of-work challenge must be solved and spent within this


def admission_expires_at_s(admitted_at_ms: int, ttl_s: int) -> int:
    """An admission token's `exp` (epoch s): `ttl_s` after the admission."""
    return admitted_at_ms // 1000 + ttl_s


def admission_valid_at(expires_at_s: int, at_ms: int) -> bool:
    """Whether an admission token is valid for a request made at `at_ms`: the API asks with
    its clock, the worker with the request's `requested_at_ms`, so a redelivered request is
    judged as its first delivery was."""
    return at_ms < expires_at_s * 1000
