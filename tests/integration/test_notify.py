"""The notifier in this process, against real Kafka, PostgreSQL and a real SMTP server
(scripts/mail_sink.py): who is mailed about what, once; what is dead-lettered; the SMTP
server down for a while."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import psycopg
import pytest
from prometheus_client import REGISTRY
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from consumer import delivery
from consumer.mailer import SmtpTarget
from consumer.notify import Notifier
from scripts.mail_sink import MailSink, Received
from scripts.waiting import eventually
from shared.config import Settings
from shared.contracts import Status
from tests.booking_events import (
    Events,
    add_account,
    dead_letters,
    notifier_world,
    publish,
    wait_consumed,
)

pytestmark = pytest.mark.integration

ALICE, BOB = "alice@example.com", "bob@example.com"


@pytest.fixture
async def world(settings: Settings, sink: MailSink) -> AsyncIterator[Settings]:
    """The test's own topics and group, two buyers with accounts (alice, bob)."""
    async with notifier_world(settings, sink.url, {"alice": ALICE, "bob": BOB}) as s:
        yield s


@pytest.fixture
async def notifier(world: Settings) -> AsyncIterator[Notifier]:
    it = Notifier(world, SmtpTarget.from_url(world.smtp_url))
    task = asyncio.create_task(it.run(), name="notifier")
    yield it
    it.stop.set()
    await asyncio.wait_for(task, 30)


def smtp_failures() -> float:
    """How often a mail was retried because the SMTP server failed (in this process)."""
    value = REGISTRY.get_sample_value("tickets_dependency_errors_total", {"dependency": "smtp"})
    return value or 0.0


async def mails(sink: MailSink, count: int, timeout_s: float = 30.0) -> list[Received]:
    async def arrived() -> list[Received] | None:
        got = sink.received
        return got if len(got) >= count else None

    return await eventually(arrived, f"{count} mails received", timeout_s)


async def test_each_confirmation_expiry_and_cancellation_mails_its_buyer_once(
    world: Settings, sink: MailSink, notifier: Notifier
) -> None:
    sale = Events()
    paid, ran_out, cancelled = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    changes = [
        sale.change("alice", Status.HELD, paid),
        sale.change("bob", Status.REJECTED),
        sale.change("alice", Status.CONFIRMED, paid),
        sale.change("bob", Status.HELD, ran_out),
        sale.change("bob", Status.EXPIRED, ran_out),
        sale.change("bob", Status.CONFIRMED, cancelled),
        sale.change("bob", Status.CANCELLED, cancelled),
    ]
    await publish(world, changes)
    await mails(sink, 4)
    await wait_consumed(world)

    got = {(m.recipients, m.message_id): m for m in sink.received}
    assert len(sink.received) == 4  # none for HELD or REJECTED
    want = {
        ((ALICE,), paid, 3, "confirmed"),
        ((BOB,), ran_out, 5, "expired"),
        ((BOB,), cancelled, 6, "confirmed"),
        ((BOB,), cancelled, 7, "cancelled"),
    }
    for recipients, booking_id, seq, word in want:
        mail = got[(recipients, f"<booking-event.1.{seq}@tickets>")]
        assert str(booking_id) in str(mail.message["Subject"])
        assert word in mail.text.lower()
        assert "A-1, A-2" in mail.text and "85.00" in mail.text  # seats and price
    with psycopg.connect(world.database_url) as conn:
        rows = conn.execute(
            "SELECT seq, outcome, accepted_at IS NOT NULL FROM notifications ORDER BY seq"
        ).fetchall()
    assert rows == [(3, "sent", True), (5, "sent", True), (6, "sent", True), (7, "sent", True)]


async def test_a_change_delivered_twice_is_mailed_once(
    world: Settings, sink: MailSink, notifier: Notifier
) -> None:
    sale = Events()
    confirmed = sale.change("alice", Status.CONFIRMED)
    expired = sale.change("bob", Status.EXPIRED)
    # At least once, in seq order: the relay may send a change again after a crash.
    await publish(world, [confirmed, confirmed, expired, confirmed, expired])
    await mails(sink, 2)
    await wait_consumed(world)
    assert Counter(m.message_id for m in sink.received) == {
        "<booking-event.1.1@tickets>": 1,
        "<booking-event.1.2@tickets>": 1,
    }


async def test_a_buyer_without_an_account_is_not_mailed(
    world: Settings, sink: MailSink, notifier: Notifier
) -> None:
    sale = Events()
    # `open` mode: the buyer is whoever the request names, with no account and no address.
    await publish(world, [sale.change("walk-in", Status.CONFIRMED)])
    await publish(world, [sale.change("alice", Status.CONFIRMED)])
    await wait_consumed(world)
    assert [m.recipients for m in sink.received] == [(ALICE,)]


async def test_garbage_is_dead_lettered_and_the_rest_still_mailed(
    world: Settings, sink: MailSink, notifier: Notifier
) -> None:
    sale = Events()
    garbage = [b"not json", b'{"event_id": 1, "status": "CONFIRMED"}']
    await publish(world, [garbage[0], sale.change("alice", Status.CONFIRMED), garbage[1]])
    await publish(world, [sale.change("bob", Status.CANCELLED)])
    await mails(sink, 2)
    await wait_consumed(world)

    assert sorted(m.recipients for m in sink.received) == [(ALICE,), (BOB,)]
    parked = await dead_letters(world)
    assert sorted(value or b"" for value, _ in parked) == sorted(garbage)
    for _, headers in parked:
        assert headers["reason"].startswith(b"undecodable")
        assert headers["source"].startswith(world.events_topic.encode())


async def test_a_refused_recipient_is_dead_lettered_once(
    world: Settings, sink: MailSink, notifier: Notifier
) -> None:
    add_account(world.database_url, "gone", "refuse-me@example.com")
    sale = Events()
    refused = sale.change("gone", Status.CONFIRMED)
    await publish(world, [refused, sale.change("alice", Status.CONFIRMED), refused])
    await mails(sink, 1)
    await wait_consumed(world)

    assert [m.recipients for m in sink.received] == [(ALICE,)]
    [(_, headers)] = await dead_letters(world)  # the duplicate found it refused already
    assert headers["reason"].startswith(b"refused by the SMTP server: 550")
    with psycopg.connect(world.database_url) as conn:
        row = conn.execute("SELECT outcome FROM notifications WHERE seq = 1").fetchone()
    assert row == ("refused",)


async def test_try_again_later_at_the_end_of_data_mails_once_later(
    world: Settings, sink: MailSink, notifier: Notifier
) -> None:
    add_account(world.database_url, "flaky", "flaky@example.com")
    sale = Events()
    await publish(world, [sale.change("flaky", Status.CONFIRMED)])
    await publish(world, [sale.change("alice", Status.CONFIRMED)])
    await mails(sink, 2)
    await wait_consumed(world)
    assert [m.recipients for m in sink.received] == [("flaky@example.com",), (ALICE,)]


async def test_postgresql_failing_at_the_commit_does_not_mail_twice(
    world: Settings, sink: MailSink, notifier: Notifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed: list[bool] = []

    async def commit_on_a_dead_connection(conn: AsyncConnection[DictRow]) -> bool:
        """The first claim's COMMIT finds its session gone, after the mail has left."""
        if not failed:
            async with await AsyncConnection.connect(world.database_url) as other:
                await other.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        committed = await real_commit(conn)
        failed.append(committed)
        return committed

    real_commit = delivery._commit
    monkeypatch.setattr(delivery, "_commit", commit_on_a_dead_connection)
    sale = Events()
    confirmed = sale.change("alice", Status.CONFIRMED)
    await publish(world, [confirmed, confirmed, sale.change("bob", Status.CONFIRMED)])
    await mails(sink, 2)
    await wait_consumed(world)

    assert failed[0] is False  # the COMMIT did fail
    assert sorted(m.message_id for m in sink.received) == [
        "<booking-event.1.1@tickets>",
        "<booking-event.1.2@tickets>",
    ]
    with psycopg.connect(world.database_url) as conn:
        rows = conn.execute("SELECT seq, accepted_at IS NOT NULL FROM notifications").fetchall()
    assert sorted(rows) == [(1, True), (2, True)]


async def test_the_smtp_server_down_for_a_while_delays_mails_without_repeating_them(
    world: Settings, sink: MailSink, notifier: Notifier
) -> None:
    sale = Events()
    await publish(world, [sale.change("alice", Status.CONFIRMED)])
    await mails(sink, 1)  # connected, and the connection kept for the next mails

    sink.stop()
    before = smtp_failures()
    changes = [sale.change(user, Status.CONFIRMED) for user in ["alice", "bob"] * 5]
    await publish(world, changes)

    async def retried() -> bool:
        return smtp_failures() >= before + 3

    await eventually(retried, "the notifier retrying against the stopped SMTP server")
    assert len(sink.received) == 1
    sink.start()
    await mails(sink, 11)
    await wait_consumed(world)
    ids = Counter(m.message_id for m in sink.received)
    assert len(ids) == 11 and set(ids.values()) == {1}
