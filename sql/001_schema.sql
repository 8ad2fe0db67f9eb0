-- The ledger. PostgreSQL is the final arbiter: the constraints below make an oversell or a
-- double seat assignment impossible even if every other layer were wrong.

CREATE TABLE events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text    NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    capacity       integer NOT NULL CHECK (capacity BETWEEN 1 AND 1000000),
    per_user_limit integer NOT NULL CHECK (per_user_limit >= 1),
    sold           integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_no_oversell CHECK (sold BETWEEN 0 AND capacity)
);

-- Only decided bookings live here; a PENDING booking is a message in Kafka.
CREATE TABLE bookings (
    booking_id   uuid    PRIMARY KEY,
    event_id     bigint  NOT NULL REFERENCES events (id),
    user_id      text    NOT NULL CHECK (char_length(user_id) BETWEEN 1 AND 64),
    quantity     integer NOT NULL CHECK (quantity >= 1),
    status       text    NOT NULL CHECK (status IN ('CONFIRMED', 'REJECTED')),
    reason       text    CHECK (reason IN ('SOLD_OUT', 'LIMIT_EXCEEDED', 'INVALID')),
    requested_at timestamptz NOT NULL,
    decided_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bookings_reason_iff_rejected CHECK ((status = 'REJECTED') = (reason IS NOT NULL))
);

CREATE INDEX bookings_event_user_confirmed ON bookings (event_id, user_id)
    WHERE status = 'CONFIRMED';
CREATE INDEX bookings_event_status ON bookings (event_id, status);

-- One row per seat, created with the event. A seat row holds at most one booking id, so a
-- seat cannot belong to two bookings.
CREATE TABLE seats (
    event_id   bigint  NOT NULL REFERENCES events (id),
    seat_no    integer NOT NULL CHECK (seat_no >= 1),
    label      text    NOT NULL,
    booking_id uuid    REFERENCES bookings (booking_id),
    PRIMARY KEY (event_id, seat_no),
    UNIQUE (event_id, label)
);

CREATE INDEX seats_free ON seats (event_id, seat_no) WHERE booking_id IS NULL;
CREATE INDEX seats_booking ON seats (booking_id) WHERE booking_id IS NOT NULL;
