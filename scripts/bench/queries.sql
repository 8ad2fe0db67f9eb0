-- The benchmark's own queries, by name (loaded with shared.db.NamedQueries). The
-- service's queries that the baselines reuse stay in shared/queries.sql.

-- name: create_raw_table
-- A copy of the current bookings table with its columns, checks and indexes, so the
-- storage ceiling follows the schema as migrations change it.
CREATE TABLE bookings_raw (LIKE bookings INCLUDING ALL);

-- name: foreign_keys
-- LIKE copies all but the foreign keys: they are added one by one from these.
SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint
WHERE conrelid = 'bookings'::regclass AND contype = 'f';

-- name: copy_raw
COPY bookings_raw (booking_id, event_id, user_id, quantity, status, reason, requested_at, decided_at)
FROM STDIN;

-- name: naive_user_total
SELECT coalesce(sum(quantity), 0)::int AS quantity FROM bookings
WHERE event_id = %(event_id)s AND user_id = %(user_id)s AND status = 'CONFIRMED';

-- name: naive_insert
INSERT INTO bookings (booking_id, event_id, user_id, quantity, status, reason,
                      requested_at, decided_at, seats)
VALUES (%(booking_id)s, %(event_id)s, %(user_id)s, %(quantity)s, %(status)s,
        %(reason)s, %(requested_at)s, now(), %(seats)s);

-- name: naive_take_seats
UPDATE seats SET booking_id = %(booking_id)s
WHERE event_id = %(event_id)s AND seat_no BETWEEN %(first)s AND %(last)s
  AND booking_id IS NULL
RETURNING label;

-- name: batch_times
-- Every batch has one decided_at: the ledger tells when each batch was decided.
SELECT decided_at, count(*) AS n, count(*) FILTER (WHERE status = 'CONFIRMED') AS ok
FROM bookings WHERE event_id = %(event_id)s
GROUP BY decided_at ORDER BY decided_at;

-- name: seats_taken
SELECT count(*) AS n FROM seats WHERE event_id = %(event_id)s AND booking_id IS NOT NULL;

-- name: checkpoints
-- PostgreSQL 15/16 (pg_stat_bgwriter); 17 moved these counters to pg_stat_checkpointer.
SELECT checkpoints_timed + checkpoints_req AS n FROM pg_stat_bgwriter;

-- name: decided_count
-- One partial index per status group (no index on event_id alone: sql/003), so polling this
-- every 50 ms reads the event's entries, not the whole table (a parallel scan of some
-- 300,000 rows that kept PostgreSQL busy through the flash sale it was timing).
SELECT (SELECT count(*) FROM bookings
        WHERE event_id = %(event_id)s AND status IN ('HELD', 'CONFIRMED'))
     + (SELECT count(*) FROM bookings WHERE event_id = %(event_id)s AND status = 'REJECTED')
     + (SELECT count(*) FROM bookings
        WHERE event_id = %(event_id)s AND status IN ('EXPIRED', 'CANCELLED')) AS n;

-- name: decision_latency
-- worst_at_s: when the slowest decision's request came, seconds after the sale's first.
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99,
       max(ms) AS worst,
       extract(epoch FROM max(decided_at))::float8 AS last_decided,
       count(*) FILTER (WHERE status = 'CONFIRMED') AS confirmed,
       extract(epoch FROM (array_agg(requested_at ORDER BY ms DESC))[1]
               - min(requested_at))::float8 AS worst_at_s
FROM (SELECT status, requested_at, decided_at,
             extract(epoch FROM decided_at - requested_at)::float8 * 1000 AS ms
      FROM bookings WHERE event_id = %(event_id)s) AS b;

-- name: status_count
SELECT count(*) AS n FROM bookings WHERE event_id = %(event_id)s AND status = %(status)s;

-- name: payment_times
-- Every batch confirms its payments at one paid_at: the ledger tells when each was decided.
SELECT paid_at, count(*) AS n FROM bookings
WHERE event_id = %(event_id)s AND status = 'CONFIRMED'
GROUP BY paid_at ORDER BY paid_at;

-- name: align_deadlines
-- Every hold of the event runs out at one moment, a little ahead (phase 10).
WITH moment AS (SELECT clock_timestamp() + interval '1.5 seconds' AS deadline),
     moved AS (
         UPDATE bookings SET hold_expires_at = (SELECT deadline FROM moment)
         WHERE event_id = %(event_id)s AND status = 'HELD'
         RETURNING 1)
SELECT (SELECT deadline FROM moment) AS deadline, (SELECT count(*) FROM moved) AS moved;
