-- The operator console's reads (api/overview.py). Loaded by shared/db.py's
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
