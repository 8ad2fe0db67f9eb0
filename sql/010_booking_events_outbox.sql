-- The booking-events outbox: every state change of a booking (HELD, CONFIRMED, REJECTED,
-- EXPIRED, CANCELLED), written by the transaction that decided it, numbered per event, and
-- relayed to the `tickets.booking-events` topic by consumer/relay.py. A row is the change
-- alone: the relay reads the rest of the message from the booking (its seats, price and
-- deadline never change), so the deciding transaction writes a few bytes per change.
CREATE TABLE booking_events (
    event_id   bigint      NOT NULL,
    seq        bigint      NOT NULL CHECK (seq >= 1),
    booking_id uuid        NOT NULL,
    status     text        NOT NULL,
    at         timestamptz NOT NULL,
    PRIMARY KEY (event_id, seq)
);

-- The last seq given in each event (under the event's row lock, like the stock columns).
ALTER TABLE events ADD COLUMN event_seq bigint NOT NULL DEFAULT 0;

-- How far the relay has sent each event (the broker acknowledged every seq up to `seq`):
-- one row per event, moved once per round, instead of a mark on every outbox row.
CREATE TABLE booking_events_relayed (
    event_id bigint PRIMARY KEY,
    seq      bigint NOT NULL
);
