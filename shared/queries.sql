-- Every query the service runs, by name. Loaded once by shared/db.py; parameters are bound.

-- name: create_event
INSERT INTO events (name, capacity, per_user_limit)
VALUES (%(name)s, %(capacity)s, %(per_user_limit)s)
RETURNING id, name, capacity, per_user_limit, sold;

-- name: create_seats
-- Rows of 25 seats: R1-1 .. R1-25, R2-1 ...; one statement, however many seats.
INSERT INTO seats (event_id, seat_no, label)
SELECT %(event_id)s, n, 'R' || ((n - 1) / 25 + 1)::text || '-' || ((n - 1) %% 25 + 1)::text
FROM generate_series(1, %(capacity)s) AS n;

-- name: get_event
SELECT id, name, capacity, per_user_limit, sold FROM events WHERE id = %(event_id)s;

-- name: event_ids
SELECT id FROM events ORDER BY id;

-- name: lock_event
SELECT capacity, per_user_limit, sold, next_seat FROM events WHERE id = %(event_id)s FOR UPDATE;

-- name: probes_only
-- For the rest of the deciding transaction: join by index probes only. Its lookups are a few
-- thousand ids against tables that grew by that many rows a second ago; by its cost model
-- the planner preferred hashing the whole bookings table, so the "already decided" check
-- grew with the table instead of with the batch.
SET LOCAL enable_hashjoin = off;
SET LOCAL enable_mergejoin = off;

-- name: decided_among
-- One primary-key probe per id (LATERAL), so the cost follows the batch, not the table,
-- whatever the planner believes about a table that grew by a whole sale a minute ago.
SELECT wanted.booking_id, b.status, b.reason, b.seats
FROM unnest(%(booking_ids)s::uuid[]) AS wanted (booking_id)
CROSS JOIN LATERAL (
    SELECT status, reason, seats FROM bookings WHERE booking_id = wanted.booking_id
) AS b;

-- name: confirmed_by_users
-- One index probe per user, for the same reason as decided_among.
SELECT wanted.user_id, t.quantity
FROM unnest(%(user_ids)s::text[]) AS wanted (user_id)
CROSS JOIN LATERAL (
    SELECT sum(quantity)::int AS quantity FROM bookings
    WHERE event_id = %(event_id)s AND status = 'CONFIRMED' AND user_id = wanted.user_id
) AS t
WHERE t.quantity IS NOT NULL;

-- name: confirmed_by_all_users
SELECT user_id, sum(quantity)::int AS quantity
FROM bookings
WHERE event_id = %(event_id)s AND status = 'CONFIRMED'
GROUP BY user_id;

-- name: lowest_free_seats
-- Only when the free seats are not simply next_seat onwards (a seat was given back by hand):
-- walks the event's seats in order, so it costs as many rows as were sold. Runs under the
-- event's row lock, so no other transaction takes these seats meanwhile.
SELECT seat_no FROM seats
WHERE event_id = %(event_id)s AND booking_id IS NULL
ORDER BY seat_no
LIMIT %(count)s;

-- name: assign_seat_range
-- The usual case: the free seats are one run, first..last (seats are taken lowest first and
-- never given back). One primary-key range scan; the i-th seat goes to the i-th booking id.
-- No index covers booking_id, so each seat is updated in place on its page (see sql/005).
-- Returns the labels in seat order, as one array.
WITH taken AS (
    UPDATE seats
    SET booking_id = (%(booking_ids)s::uuid[])[seat_no - %(first)s + 1]
    WHERE event_id = %(event_id)s AND seat_no BETWEEN %(first)s AND %(last)s
      AND booking_id IS NULL
    RETURNING seat_no, label
)
SELECT coalesce(array_agg(label ORDER BY seat_no), '{}') AS labels FROM taken;

-- name: assign_seats
-- Free seats with gaps between them: an equality join on the primary key. Same result.
WITH taken AS (
    UPDATE seats AS s
    SET booking_id = a.booking_id
    FROM unnest(%(seat_nos)s::int[], %(booking_ids)s::uuid[]) AS a (seat_no, booking_id)
    WHERE s.event_id = %(event_id)s AND s.seat_no = a.seat_no AND s.booking_id IS NULL
    RETURNING s.seat_no, s.label
)
SELECT coalesce(array_agg(label ORDER BY seat_no), '{}') AS labels FROM taken;

-- name: add_sold
UPDATE events
SET sold = sold + %(quantity)s, next_seat = greatest(next_seat, %(next_seat)s)
WHERE id = %(event_id)s;

-- name: get_booking
SELECT booking_id, event_id, user_id, quantity, status, reason, requested_at, decided_at, seats
FROM bookings
WHERE booking_id = %(booking_id)s;

-- name: audit_event
SELECT e.capacity,
       e.sold,
       (SELECT count(*) FROM bookings WHERE event_id = e.id AND status = 'CONFIRMED')
           AS confirmed_bookings,
       (SELECT coalesce(sum(quantity), 0) FROM bookings
        WHERE event_id = e.id AND status = 'CONFIRMED')::int AS confirmed_quantity,
       (SELECT count(*) FROM bookings WHERE event_id = e.id AND status = 'REJECTED')
           AS rejected_bookings,
       (SELECT count(*) FROM seats WHERE event_id = e.id AND booking_id IS NOT NULL)
           AS seats_assigned,
       (SELECT count(*) FROM (
            SELECT label FROM seats WHERE event_id = e.id AND booking_id IS NOT NULL
            GROUP BY label HAVING count(DISTINCT booking_id) > 1) AS d)
           AS double_assigned_seats,
       (SELECT count(*) FROM seats AS s
        LEFT JOIN bookings AS b
            ON b.booking_id = s.booking_id AND b.event_id = s.event_id
               AND b.status = 'CONFIRMED'
        WHERE s.event_id = e.id AND s.booking_id IS NOT NULL AND b.booking_id IS NULL)
           AS misassigned_seats,
       -- Bookings whose own list of seats (what a poll shows) is not what the seat map says.
       (SELECT count(*) FROM bookings AS b
        LEFT JOIN (SELECT booking_id, array_agg(label ORDER BY seat_no) AS labels
                   FROM seats WHERE event_id = e.id AND booking_id IS NOT NULL
                   GROUP BY booking_id) AS m ON m.booking_id = b.booking_id
        WHERE b.event_id = e.id AND b.status = 'CONFIRMED'
          AND b.seats IS DISTINCT FROM m.labels)
       + (SELECT count(*) FROM bookings
          WHERE event_id = e.id AND status = 'REJECTED' AND seats <> '{}')
           AS misrecorded_bookings
FROM events AS e
WHERE e.id = %(event_id)s;

-- name: ping
SELECT 1;

-- name: create_account
INSERT INTO accounts (user_id, email, password_hash, role)
VALUES (%(user_id)s, %(email)s, %(password_hash)s, %(role)s)
ON CONFLICT DO NOTHING
RETURNING user_id;

-- name: account_by_email
SELECT user_id, password_hash, role FROM accounts
WHERE lower(email) = lower(%(email)s) AND deleted_at IS NULL;

-- name: account_by_id
SELECT user_id, email, role, created_at FROM accounts
WHERE user_id = %(user_id)s AND deleted_at IS NULL;

-- name: delete_account
UPDATE accounts SET deleted_at = now()
WHERE user_id = %(user_id)s AND deleted_at IS NULL
RETURNING user_id;

-- name: bookings_of_user
-- Newest first; a page ends before %(before)s (the previous page's last id), if given.
SELECT booking_id, event_id, user_id, quantity, status, reason, requested_at, decided_at, seats
FROM bookings
WHERE user_id = %(user_id)s
  AND (%(before)s::uuid IS NULL OR booking_id < %(before)s::uuid)
ORDER BY booking_id DESC
LIMIT %(limit)s;
