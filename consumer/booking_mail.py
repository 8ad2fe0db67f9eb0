"""The mail a buyer gets when a booking is confirmed, expires or is cancelled: plain text,
built from the booking event alone, so the same event always makes the same message (its
Message-ID included, which lets a mail system spot a copy)."""

from __future__ import annotations

import email.policy
import email.utils
from datetime import UTC, datetime
from email.message import EmailMessage

from shared.contracts import BookingEvent, Status

# Header and body encodings a 7-bit server takes too (no 8BITMIME needed).
POLICY = email.policy.SMTP.clone(cte_type="7bit")

SUBJECTS = {
    Status.CONFIRMED: "Your booking is confirmed",
    Status.EXPIRED: "Your hold has expired",
    Status.CANCELLED: "Your booking is cancelled",
}
WHAT_HAPPENED = {
    Status.CONFIRMED: "Your booking is confirmed: the seats below are yours.",
    Status.EXPIRED: (
        "Your hold ran out before it was paid for, so the booking has expired and its "
        "seats were released to other buyers."
    ),
    Status.CANCELLED: "Your booking was cancelled and its seats were released.",
}
# The statuses buyers are mailed about; HELD and REJECTED are answered by the API itself.
MAILED = frozenset(SUBJECTS)


def message_id(event: BookingEvent) -> str:
    """One id per state change: a redelivered event makes a message with the same id."""
    return f"<booking-event.{event.event_id}.{event.seq}@tickets>"


def compose(event: BookingEvent, sender: str, recipient: str) -> EmailMessage:
    """The mail about `event` (whose status is in MAILED) for its buyer."""
    message = EmailMessage(policy=POLICY)
    message["From"] = sender
    message["To"] = recipient
    # Short enough for one line (78 characters): a folded subject shows a leading space.
    message["Subject"] = f"{SUBJECTS[event.status]} ({event.booking_id})"
    message["Date"] = email.utils.format_datetime(_when(event.at))
    message["Message-ID"] = message_id(event)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: autoresponders stay quiet
    seats = ", ".join(event.seats) if event.seats else "general admission"
    message.set_content(
        "\n".join(
            [
                WHAT_HAPPENED[event.status],
                "",
                f"Booking:  {event.booking_id}",
                f"Event:    {event.event_id}",
                f"Status:   {event.status}",
                f"Tickets:  {event.quantity}",
                f"Seats:    {seats}",
                f"Price:    {_price(event.price_cents)}",
                f"Changed:  {event.at}",
                "",
                "This message was sent automatically; replies are not read.",
            ]
        )
    )
    return message


def _price(cents: int | None) -> str:
    if cents is None:
        return "not set"
    return f"{cents // 100}.{cents % 100:02d}"


def _when(at: str) -> datetime:
    """The time of the change; the time of writing if the event's is unreadable."""
    try:
        parsed = datetime.fromisoformat(at)
    except ValueError:
        return datetime.now(UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
