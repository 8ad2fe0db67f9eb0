"""One booking event, one mail: the claim in PostgreSQL and the SMTP transaction, ordered so
that killing the notifier at any moment neither loses the mail nor sends it twice, except in
a window of a few microseconds.

For each mail, on one PostgreSQL connection:

1. BEGIN; insert the event's row into `notifications` (the claim). A committed row means it
   was mailed (or refused) before: nothing to do. A row another notifier has inserted but
   not committed makes this insert wait for that one's outcome.
2. SMTP: MAIL, RCPT, DATA and the whole message, except the end-of-data line.
3. The end-of-data line, then COMMIT, written back to back in the same tick of the event
   loop (consumer/mailer.py `Mailer.end`), the SMTP socket corked meanwhile: the end of
   DATA reaches the server only after the COMMIT has left.
4. The server's reply to the end of DATA.

An SMTP server takes responsibility for a message when it reads the end-of-data line, and
discards one whose connection drops before it (RFC 5321 4.1.1.4, 6.1). Bytes a process has
written to a TCP socket are delivered even if it is killed right after (the kernel flushes
them on close), and so are the bytes of a COMMIT: PostgreSQL commits a COMMIT it has read.
So, with SIGKILL at any moment:

- before step 3: the server discards the unfinished message, PostgreSQL rolls the claim
  back, the Kafka offset was not committed: after the restart the event comes again and is
  mailed once.
- after step 3: the mail is accepted and the claim committed; the event comes again, finds
  its row and is not mailed again.
- between the two writes of step 3 (a few microseconds of Python between two send()
  calls): the kernel still sends the corked end of DATA when it closes the dead process'
  socket, so the mail is accepted but the claim is rolled back: mailed a second time. This
  is the only window left for a crash, and nothing outside this process can time a kill
  into it: the server sees the end of DATA only after the COMMIT has been answered.
  Uncorked, the end of DATA woke the server first, and a kill timed by the server's receipt
  of a mail often duplicated it (measured in docs/performance.md).
  The other order (commit, wait for its answer, then the end-of-data line) leaves a window
  where the mail is lost instead, of a whole PostgreSQL round trip and event-loop wake-up,
  and loses the mail too whenever the COMMIT's outcome is unknown; psycopg cannot send a
  COMMIT without awaiting its answer.

What else can go wrong, and what follows:

- PostgreSQL fails at the COMMIT (the mail has left): on a 250, or no reply, the row is
  written again with backoff, so the mail is not sent twice, unless the notifier is also
  stopped before PostgreSQL is back.
- No reply (connection lost, timeout) after step 3: in doubt. The server may have queued it,
  so it is never sent again; the row keeps `accepted_at` NULL and counts as `in_doubt`.
- A 4xx reply to the end of DATA: the row is deleted and the mail tried again later. Killed
  between the reply and the delete, it is never sent.
- A 5xx reply (here, or to MAIL/RCPT/DATA): dead-lettered, then recorded as `refused`.
  Killed in between, it is dead-lettered again after the restart, never mailed twice.
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from consumer import notifications
from consumer.backoff import Backoff
from consumer.booking_mail import compose
from consumer.mailer import Mailer
from consumer.notifications import Mailing
from shared.db import Pool
from shared.errors import MailRefused, MailUnavailable

log = logging.getLogger(__name__)

Park = Callable[[str], Awaitable[None]]  # dead-letters the event's message with a reason


class Result(enum.StrEnum):
    SENT = "sent"  # the server answered the end of DATA with 2xx
    IN_DOUBT = "in_doubt"  # handed over, no answer: never sent again
    DUPLICATE = "duplicate"  # mailed (or refused) before: a redelivered event
    REFUSED = "refused"  # 5xx: dead-lettered


@dataclass(frozen=True, slots=True)
class Delivered:
    result: Result
    reply: str = ""


class Delivery:
    def __init__(self, pool: Pool, mailer: Mailer, sender: str, backoff: Backoff) -> None:
        self._pool = pool
        self._mailer = mailer
        self._sender = sender
        self._backoff = backoff

    async def deliver(self, mailing: Mailing, park: Park) -> Delivered:
        """Mail `mailing` unless it was mailed before; `park` it if the server refuses it.
        Raises MailUnavailable or a PostgreSQL error while nothing has left (retry later:
        the claim is rolled back)."""
        message = compose(mailing.event, self._sender, mailing.recipient).as_bytes()
        async with self._pool.connection() as conn:
            if not await notifications.claim(conn, mailing):
                await conn.rollback()
                return Delivered(Result.DUPLICATE)
            try:
                await self._mailer.begin(self._sender, mailing.recipient, message)
            except MailRefused as refused:
                await park(str(refused))
                await notifications.record_refused(conn, mailing, str(refused))
                await conn.commit()
                return Delivered(Result.REFUSED, str(refused))
            committed, reply = await self._mailer.end(functools.partial(_commit, conn))
        if reply.accepted:
            if not committed:
                await self._after(notifications.record_handed, mailing, reply.text)
            return Delivered(Result.SENT, f"{reply.code} {reply.text}")
        if reply.code is None:
            log.warning(
                "mail for event %s seq %s handed over without a reply (%s): not sent again",
                mailing.event.event_id,
                mailing.event.seq,
                reply.text,
            )
            if not committed:
                await self._after(notifications.record_handed, mailing, reply.text)
            return Delivered(Result.IN_DOUBT, reply.text)
        text = f"{reply.code} {reply.text}"
        if reply.refused:
            reason = f"refused by the SMTP server: {text}"
            await park(reason)
            await self._after(notifications.refuse, mailing, reason)
            return Delivered(Result.REFUSED, reason)
        await self._after(notifications.forget, mailing)
        raise MailUnavailable(f"the SMTP server said {text} to the end of DATA")

    async def _after(
        self, record: Callable[..., Awaitable[None]], mailing: Mailing, *args: str
    ) -> None:
        """Bookkeeping once the mail has left: retried here until it is done, never by
        sending the mail again (raises Stopped if asked to stop first)."""
        await self._backoff.retry(
            functools.partial(record, self._pool, mailing, *args),
            f"recording the mail for event {mailing.event.event_id} seq {mailing.event.seq}",
        )


async def _commit(conn: AsyncConnection[DictRow]) -> bool:
    """COMMIT the claim; False if PostgreSQL failed (its outcome is then unknown)."""
    try:
        await conn.commit()
    except psycopg.Error as exc:
        log.warning("committing a mail's claim failed (%r): recording it again", exc)
        return False
    return True
