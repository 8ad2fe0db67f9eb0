"""The notifier's pure parts: TICKETS_SMTP_URL, the mail's text, the message as DATA sends it."""

from __future__ import annotations

import email
import email.policy
import uuid

import pytest

from consumer.booking_mail import compose
from consumer.mailer import SmtpTarget, as_data
from shared.contracts import BookingEvent, Status
from shared.errors import ConfigError

pytestmark = pytest.mark.unit


def test_smtp_url_with_credentials_and_implicit_tls() -> None:
    target = SmtpTarget.from_url("smtps://mailer:p%40ss%3Aword@mail.example.com:465")
    assert target == SmtpTarget("mail.example.com", 465, True, "mailer", "p@ss:word")
    assert SmtpTarget.from_url("smtp://127.0.0.1:1025") == SmtpTarget("127.0.0.1", 1025, False)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("", "TICKETS_SMTP_URL is empty"),
        ("mail.example.com:25", "must start with smtp://"),
        ("https://mail.example.com:25", "must start with smtp://"),
        ("smtp://mail.example.com", "must name a host and a port"),
        ("smtp://:25", "must name a host and a port"),
        ("smtp://mail.example.com:port", "TICKETS_SMTP_URL"),
    ],
)
def test_bad_smtp_urls_are_refused_with_the_variable_named(url: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        SmtpTarget.from_url(url)


def change(status: Status, price_cents: int | None = 12005) -> BookingEvent:
    return BookingEvent(
        event_id=7,
        seq=42,
        booking_id=uuid.UUID("01937a3c-0000-7000-8000-000000000001"),
        user_id="alice",
        status=status,
        reason=None,
        seats=("B-3", "B-4"),
        quantity=2,
        price_cents=price_cents,
        hold_expires_at=None,
        at="2026-12-04T10:00:00.250Z",
    )


@pytest.mark.parametrize(
    ("status", "subject", "said"),
    [
        (Status.CONFIRMED, "Your booking is confirmed", "the seats below are yours"),
        (Status.EXPIRED, "Your hold has expired", "hold ran out before it was paid"),
        (Status.CANCELLED, "Your booking is cancelled", "was cancelled"),
    ],
)
def test_the_mail_says_what_happened_to_which_booking(
    status: Status, subject: str, said: str
) -> None:
    raw = compose(change(status), "tickets@example.com", "alice@example.com").as_bytes()
    assert max(raw) < 128  # 7-bit: any server takes it
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert mail["Subject"] == f"{subject} (01937a3c-0000-7000-8000-000000000001)"
    assert (mail["From"], mail["To"]) == ("tickets@example.com", "alice@example.com")
    assert mail["Message-ID"] == "<booking-event.7.42@tickets>"
    assert mail["Date"] == "Fri, 04 Dec 2026 10:00:00 +0000"
    body = mail.get_content()  # type: ignore[attr-defined]
    assert said in body
    for line in ("Event:    7", f"Status:   {status}", "Tickets:  2", "Seats:    B-3, B-4"):
        assert line in body
    assert "Price:    120.05" in body


def test_a_booking_without_a_price_says_so() -> None:
    mail = compose(change(Status.CONFIRMED, None), "t@example.com", "a@example.com")
    assert "Price:    not set" in mail.get_content()


def test_data_doubles_leading_dots_and_ends_lines_with_crlf() -> None:
    assert as_data(b"a\n.b\r\n..c\rd") == b"a\r\n..b\r\n...c\r\nd\r\n"
    assert as_data(b"x\r\n") == b"x\r\n"
