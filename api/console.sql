-- The operator console's reads (api/overview.py, api/console.py). Loaded by shared/db.py's
-- NamedQueries; parameters are bound.

-- name: newest_events
SELECT id, name, capacity, sold, held, hold_seconds, queue
FROM events ORDER BY id DESC LIMIT %(limit)s;

-- name: recent_decisions
-- Bookings first decided since %(since)s. The bookings table has no index on decided_at (one
-- more index on the worker's hot insert), so the scan is bounded by the primary key: booking
-- ids are UUIDv7, ordered by the time the API made them, and %(first_id)s is the smallest id
-- of the lookback. A booking requested before the lookback and decided in the window (a
-- backlog longer than the lookback) is not counted; the worker's lag shows that backlog.
SELECT count(*) AS decided,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM decided_at - requested_at)) AS p50_s,
       percentile_cont(0.99) WITHIN GROUP (
           ORDER BY extract(epoch FROM decided_at - requested_at)) AS p99_s
FROM bookings
WHERE booking_id >= %(first_id)s AND decided_at >= %(since)s;

-- name: booking_moments
-- What the ledger knows of when a booking's commands reached Kafka: its event (so its
-- partition), the times its payments were received (the API's clock when it published them)
-- and when its cancellation was decided (after the command was appended); its seats for the
-- console to show.
SELECT b.event_id, b.status, b.quantity, b.seats, b.cancelled_at,
       array(SELECT p.received_at FROM payments AS p WHERE p.booking_id = b.booking_id
             ORDER BY p.received_at) AS payments_received
FROM bookings AS b WHERE b.booking_id = %(booking_id)s;
