-- The booking-events outbox: every state change of a booking (HELD, CONFIRMED, REJECTED,
-- EXPIRED, CANCELLED), written by the transaction that decided it, numbered per event, and
-- relayed to the `tickets.booking-events` topic by consumer/relay.py.
-- `message` is the exact Kafka value (JSON text, docs/booking-events.schema.json), so the relay
-- sends it without decoding it; `sent_at` is set once the broker acknowledged it.
CREATE TABLE booking_events (
    event_id   bigint      NOT NULL,
    seq        bigint      NOT NULL CHECK (seq >= 1),
    booking_id uuid        NOT NULL,
    status     text        NOT NULL,
    message    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz,
    PRIMARY KEY (event_id, seq)
);

-- What the relay has still to send: small, whatever the table's size.
CREATE INDEX booking_events_unsent ON booking_events (event_id, seq) WHERE sent_at IS NULL;

-- The last seq given in each event (under the event's row lock, like the stock columns).
ALTER TABLE events ADD COLUMN event_seq bigint NOT NULL DEFAULT 0;
