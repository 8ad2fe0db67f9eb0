-- Seat maps: an event is made of sections (rows x seats per row, a price each); its seats are
-- numbered section after section, row after row, so a seat number tells its section, row
-- and place (shared/seating.py). An event created with a capacity is one section `GA` in
-- rows of 25, labelled R{row}-{number} as before.
CREATE TABLE sections (
    event_id      bigint  NOT NULL REFERENCES events (id),
    position      integer NOT NULL CHECK (position >= 0),
    name          text    NOT NULL CHECK (name ~ '^[A-Za-z0-9]{1,16}$'),
    rows          integer NOT NULL CHECK (rows >= 1),
    seats_per_row integer NOT NULL CHECK (seats_per_row >= 1),
    seats         integer NOT NULL,
    first_seat    integer NOT NULL CHECK (first_seat >= 1),
    price_cents   integer CHECK (price_cents >= 0),
    PRIMARY KEY (event_id, position),
    UNIQUE (event_id, name),
    -- Only general admission's last row may be short.
    CONSTRAINT sections_seats_fill_rows
        CHECK (seats BETWEEN (rows - 1) * seats_per_row + 1 AND rows * seats_per_row)
);

INSERT INTO sections (event_id, position, name, rows, seats_per_row, seats, first_seat)
SELECT id, 0, 'GA', (capacity + 24) / 25, 25, capacity, 1 FROM events;

-- Bumped by every transaction that changes a seat's state (taken, given back, paid): the
-- worker keeps an event's seat map in memory and trusts it only while this has not moved.
ALTER TABLE events ADD COLUMN seat_version bigint NOT NULL DEFAULT 0;
