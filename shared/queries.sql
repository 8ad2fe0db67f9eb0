-- Every query the service runs, by name. Loaded once by shared/db.py; parameters are bound.

-- name: create_event
INSERT INTO events (name, capacity, per_user_limit, hold_seconds, opens_at, queue, queue_pow)
VALUES (%(name)s, %(capacity)s, %(per_user_limit)s, %(hold_seconds)s, %(opens_at)s, %(queue)s,
        %(queue_pow)s)
RETURNING id, name, capacity, per_user_limit, hold_seconds, sold, held, opens_at, queue,
          queue_pow;

-- name: get_event
SELECT id, name, capacity, per_user_limit, hold_seconds, sold, held, seat_version, opens_at, queue,
       queue_pow
FROM events WHERE id = %(event_id)s;

-- name: event_ids
SELECT id FROM events ORDER BY id;

-- name: lock_event
SELECT capacity, per_user_limit, hold_seconds, sold, held, next_seat, seat_version, event_seq,
       queue
FROM events WHERE id = %(event_id)s FOR UPDATE;

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
SELECT wanted.booking_id, b.status, b.reason, b.seats, b.hold_expires_at, b.paid_at,
       b.cancelled_at, b.price_cents
FROM unnest(%(booking_ids)s::uuid[]) AS wanted (booking_id)
CROSS JOIN LATERAL (
    SELECT status, reason, seats, hold_expires_at, paid_at, cancelled_at, price_cents
    FROM bookings WHERE booking_id = wanted.booking_id
) AS b;

-- name: live_by_users
-- What each user holds or bought: one index probe per user, as in decided_among.
SELECT wanted.user_id, t.quantity
FROM unnest(%(user_ids)s::text[]) AS wanted (user_id)
CROSS JOIN LATERAL (
    SELECT sum(quantity)::int AS quantity FROM bookings
    WHERE event_id = %(event_id)s AND status IN ('HELD', 'CONFIRMED')
      AND user_id = wanted.user_id
) AS t
WHERE t.quantity IS NOT NULL;

-- name: live_by_all_users
SELECT user_id, sum(quantity)::int AS quantity
FROM bookings
WHERE event_id = %(event_id)s AND status IN ('HELD', 'CONFIRMED')
GROUP BY user_id;

-- name: assign_seat_range
-- The usual case: the batch's seats are one run, first..last, given in order (general
-- admission takes the lowest free seats). One primary-key range scan; the i-th seat goes to
-- the i-th booking id.
-- No index covers booking_id, so each seat is updated in place on its page (see sql/005).
-- The caller checks the row count: a seat already taken is not updated.
UPDATE seats
SET booking_id = (%(booking_ids)s::uuid[])[seat_no - %(first)s + 1]
WHERE event_id = %(event_id)s AND seat_no BETWEEN %(first)s AND %(last)s
  AND booking_id IS NULL;

-- name: assign_seats
-- Seats that are not one run: an equality join on the primary key. Same guard.
UPDATE seats AS s
SET booking_id = a.booking_id
FROM unnest(%(seat_nos)s::int[], %(booking_ids)s::uuid[]) AS a (seat_no, booking_id)
WHERE s.event_id = %(event_id)s AND s.seat_no = a.seat_no AND s.booking_id IS NULL;

-- name: change_stock
UPDATE events
SET sold = sold + %(sold)s, held = held + %(held)s,
    next_seat = greatest(next_seat, %(next_seat)s), seat_version = seat_version + 1
WHERE id = %(event_id)s;

-- name: write_booking_events
-- A batch's booking state changes into the outbox, numbered from first_seq in the order
-- given, and the event's counter advanced, in one round trip (the caller holds the row lock).
WITH advanced AS (
    UPDATE events SET event_seq = %(last_seq)s WHERE id = %(event_id)s
)
INSERT INTO booking_events (event_id, seq, booking_id, status, at)
SELECT %(event_id)s, %(first_seq)s + n - 1, b, s, %(at)s
FROM unnest(%(booking_ids)s::uuid[], %(statuses)s::text[]) WITH ORDINALITY AS t (b, s, n);

-- name: get_booking
SELECT booking_id, event_id, user_id, quantity, status, reason, requested_at, decided_at, seats,
       hold_expires_at, price_cents, paid_at, cancelled_at
FROM bookings
WHERE booking_id = %(booking_id)s;

-- name: bookings_among
-- The bookings a batch's payments and cancellations name, one primary-key probe each.
SELECT b.booking_id, b.event_id, b.user_id, b.quantity, b.status, b.reason, b.seats,
       b.requested_at, b.decided_at, b.hold_expires_at, b.paid_at, b.cancelled_at,
       b.price_cents
FROM unnest(%(booking_ids)s::uuid[]) AS wanted (booking_id)
CROSS JOIN LATERAL (
    SELECT * FROM bookings WHERE booking_id = wanted.booking_id
) AS b;

-- name: due_holds
-- Under the event's row lock: its holds whose time ran out by %(now)s.
SELECT booking_id, event_id, user_id, quantity, status, reason, seats, requested_at, decided_at,
       hold_expires_at, paid_at, cancelled_at, price_cents
FROM bookings
WHERE status = 'HELD' AND hold_expires_at <= %(now)s AND event_id = %(event_id)s
ORDER BY hold_expires_at
LIMIT %(limit)s;

-- name: due_events
-- The events with a hold past its deadline (the expiry sweep).
SELECT DISTINCT event_id FROM bookings WHERE status = 'HELD' AND hold_expires_at <= %(now)s;

-- name: expire_holds
-- The guard repeats the worker's reasoning: only a hold still HELD and past its deadline.
UPDATE bookings SET status = 'EXPIRED'
WHERE booking_id = ANY(%(booking_ids)s::uuid[])
  AND status = 'HELD' AND hold_expires_at <= %(now)s;

-- name: confirm_holds
UPDATE bookings SET status = 'CONFIRMED', paid_at = %(now)s
WHERE booking_id = ANY(%(booking_ids)s::uuid[])
  AND status = 'HELD' AND hold_expires_at > %(now)s;

-- name: cancel_bookings
UPDATE bookings SET status = 'CANCELLED', cancelled_at = %(now)s
WHERE booking_id = ANY(%(booking_ids)s::uuid[]) AND status IN ('HELD', 'CONFIRMED');

-- name: free_seats
-- Through the primary key; booking_id is in no index, so each is a HOT update.
UPDATE seats SET booking_id = NULL
WHERE event_id = %(event_id)s AND seat_no = ANY(%(seat_nos)s::int[])
  AND booking_id = ANY(%(booking_ids)s::uuid[]);

-- name: known_payments
SELECT p.provider, p.payment_ref
FROM unnest(%(providers)s::text[], %(refs)s::text[]) AS wanted (provider, payment_ref)
JOIN payments AS p USING (provider, payment_ref);

-- name: known_webhooks
SELECT event_id FROM webhook_events
WHERE provider = 'stripe' AND event_id = ANY(%(event_ids)s::text[]);

-- name: record_payments
INSERT INTO payments (provider, payment_ref, booking_id, event_id, amount_cents, outcome,
                      received_at)
SELECT * FROM unnest(%(providers)s::text[], %(refs)s::text[], %(booking_ids)s::uuid[],
                     %(event_ids)s::bigint[], %(amounts)s::int[], %(outcomes)s::text[],
                     %(received)s::timestamptz[]);

-- name: record_webhooks
INSERT INTO webhook_events (provider, event_id, type, booking_id)
SELECT 'stripe', * FROM unnest(%(event_ids)s::text[], %(types)s::text[],
                               %(booking_ids)s::uuid[]);

-- name: refund_cancelled
-- A confirmed booking cancelled: the payment that confirmed it is owed back.
UPDATE payments SET outcome = 'refund_due'
WHERE booking_id = ANY(%(booking_ids)s::uuid[]) AND outcome = 'applied';

-- name: webhook_seen
SELECT 1 FROM webhook_events WHERE provider = 'stripe' AND event_id = %(event_id)s;

-- name: refunds_due
SELECT booking_id, provider, payment_ref, amount_cents, received_at
FROM payments WHERE event_id = %(event_id)s AND outcome = 'refund_due'
ORDER BY received_at;

-- name: audit_event
-- The event id is a parameter in every subquery, not `e.id`: planned with the real id,
-- the seats of a small event are found through the primary key even when other events
-- have a million seats each (a correlated `e.id` got a sequential scan of the table).
SELECT e.capacity,
       e.sold,
       e.held,
       (SELECT count(*) FROM bookings WHERE event_id = %(event_id)s AND status = 'CONFIRMED')
           AS confirmed_bookings,
       (SELECT coalesce(sum(quantity), 0) FROM bookings
        WHERE event_id = %(event_id)s AND status = 'CONFIRMED')::int AS confirmed_quantity,
       (SELECT count(*) FROM bookings WHERE event_id = %(event_id)s AND status = 'HELD')
           AS held_bookings,
       (SELECT coalesce(sum(quantity), 0) FROM bookings
        WHERE event_id = %(event_id)s AND status = 'HELD')::int AS held_quantity,
       (SELECT count(*) FROM bookings WHERE event_id = %(event_id)s AND status = 'REJECTED')
           AS rejected_bookings,
       (SELECT count(*) FROM bookings WHERE event_id = %(event_id)s AND status = 'EXPIRED')
           AS expired_bookings,
       (SELECT count(*) FROM bookings WHERE event_id = %(event_id)s AND status = 'CANCELLED')
           AS cancelled_bookings,
       (SELECT count(*) FROM seats WHERE event_id = %(event_id)s AND booking_id IS NOT NULL)
           AS seats_assigned,
       (SELECT count(*) FROM (
            SELECT label FROM seats WHERE event_id = %(event_id)s AND booking_id IS NOT NULL
            GROUP BY label HAVING count(DISTINCT booking_id) > 1) AS d)
           AS double_assigned_seats,
       -- Seats owned by anything but a live (held or confirmed) booking of the event: an
       -- expired or cancelled booking's seats must be free or another booking's.
       (SELECT count(*) FROM seats AS s
        LEFT JOIN bookings AS b
            ON b.booking_id = s.booking_id AND b.event_id = s.event_id
               AND b.status IN ('HELD', 'CONFIRMED')
        WHERE s.event_id = %(event_id)s AND s.booking_id IS NOT NULL AND b.booking_id IS NULL)
           AS misassigned_seats,
       -- Live bookings whose own list of seats (what a poll shows) is not what the seat map
       -- says, and rejected bookings that list seats.
       (SELECT count(*) FROM bookings AS b
        LEFT JOIN (SELECT booking_id, array_agg(label ORDER BY seat_no) AS labels
                   FROM seats WHERE event_id = %(event_id)s AND booking_id IS NOT NULL
                   GROUP BY booking_id) AS m ON m.booking_id = b.booking_id
        WHERE b.event_id = %(event_id)s AND b.status IN ('HELD', 'CONFIRMED')
          AND b.seats IS DISTINCT FROM m.labels)
       + (SELECT count(*) FROM bookings
          WHERE event_id = %(event_id)s AND status = 'REJECTED' AND seats <> '{}')
           AS misrecorded_bookings,
       -- Payments kept without a confirmed booking to show for them, and paid bookings
       -- without a payment kept: both must be zero (every payment ends applied to a
       -- CONFIRMED booking, or refund_due).
       (SELECT count(*) FROM payments AS p
        LEFT JOIN bookings AS b ON b.booking_id = p.booking_id AND b.status = 'CONFIRMED'
        WHERE p.event_id = %(event_id)s AND p.outcome = 'applied' AND b.booking_id IS NULL)
       + (SELECT count(*) FROM bookings AS b
          WHERE b.event_id = %(event_id)s AND b.status = 'CONFIRMED' AND b.paid_at IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM payments AS p
                            WHERE p.booking_id = b.booking_id AND p.outcome = 'applied'))
           AS unsettled_payments
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
SELECT booking_id, event_id, user_id, quantity, status, reason, requested_at, decided_at, seats,
       hold_expires_at, price_cents, paid_at, cancelled_at
FROM bookings
WHERE user_id = %(user_id)s
  AND (%(before)s::uuid IS NULL OR booking_id < %(before)s::uuid)
ORDER BY booking_id DESC
LIMIT %(limit)s;

-- name: create_section
INSERT INTO sections (event_id, position, name, rows, seats_per_row, seats, first_seat,
                      price_cents)
VALUES (%(event_id)s, %(position)s, %(name)s, %(rows)s, %(seats_per_row)s, %(seats)s,
        %(first_seat)s, %(price_cents)s);

-- name: event_sections
SELECT name, rows, seats_per_row, seats, first_seat, price_cents
FROM sections WHERE event_id = %(event_id)s ORDER BY position;

-- name: taken_seats
-- Every taken seat of the event and whether its booking is paid: the worker's seat map when
-- it starts deciding an event, and the gate's seat bitmap when Redis lost it.
SELECT s.seat_no, b.status = 'CONFIRMED' AS sold
FROM seats AS s JOIN bookings AS b ON b.booking_id = s.booking_id
WHERE s.event_id = %(event_id)s AND s.booking_id IS NOT NULL;

-- name: relay_lock
-- One relay at a time across workers: a session lock, released when its connection ends.
SELECT pg_try_advisory_lock(%(key)s) AS locked;

-- name: booking_events_backlog
-- The events whose outbox holds changes the relay has not sent.
SELECT e.id AS event_id, COALESCE(r.seq, 0) AS sent, e.event_seq
FROM events AS e LEFT JOIN booking_events_relayed AS r ON r.event_id = e.id
WHERE e.event_seq > COALESCE(r.seq, 0)
ORDER BY e.id;

-- name: unsent_booking_events
-- An event's next changes after `sent`, each as its Kafka message (the JSON of
-- docs/booking-events.schema.json), the booking's details read from its row.
SELECT o.seq, json_build_object(
    'event_id', o.event_id,
    'seq', o.seq,
    'booking_id', o.booking_id,
    'user_id', b.user_id,
    'status', o.status,
    'reason', CASE WHEN o.status = 'REJECTED' THEN b.reason END,
    'seats', b.seats,
    'quantity', b.quantity,
    'price_cents', b.price_cents,
    'hold_expires_at', to_char(b.hold_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'at', to_char(o.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
)::text AS message
FROM booking_events AS o JOIN bookings AS b ON b.booking_id = o.booking_id
WHERE o.event_id = %(event_id)s AND o.seq > %(sent)s
ORDER BY o.seq
LIMIT %(limit)s;

-- name: mark_booking_events_relayed
-- The broker acknowledged every change of these events up to these seqs.
INSERT INTO booking_events_relayed (event_id, seq)
SELECT * FROM unnest(%(event_ids)s::bigint[], %(seqs)s::bigint[])
ON CONFLICT (event_id) DO UPDATE
SET seq = greatest(booking_events_relayed.seq, excluded.seq);

-- name: relay_plan
-- The relay's connection joins the outbox to bookings by primary-key probes only (for a
-- round of a few thousand rows the planner would rather hash the whole bookings table), and
-- in one process: parallel workers would cost more CPU than they save on a busy machine.
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SET max_parallel_workers_per_gather = 0;

-- name: queue_stock
-- The admission loop's view of its queued events: sold out, or too much held to admit more.
SELECT id, capacity, sold, held FROM events WHERE id = ANY(%(event_ids)s::bigint[]);

-- name: recent_events
SELECT id, name, capacity, queue, hold_seconds FROM events ORDER BY id DESC LIMIT %(limit)s;

-- name: abandon_requests
-- The API answered 503 for these requests (shared/abandoned.py).
INSERT INTO abandoned_requests (booking_id)
SELECT unnest(%(booking_ids)s::uuid[])
ON CONFLICT DO NOTHING;

-- name: abandoned_among
-- One primary-key probe per id, as in decided_among.
SELECT wanted.booking_id
FROM unnest(%(booking_ids)s::uuid[]) AS wanted (booking_id)
WHERE EXISTS (SELECT 1 FROM abandoned_requests a WHERE a.booking_id = wanted.booking_id);
