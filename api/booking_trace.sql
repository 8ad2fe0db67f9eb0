-- A booking's trace through Kafka (api/booking_trace.py). Loaded by shared/db.py's
-- NamedQueries; parameters are bound.

-- name: booking_moments
-- What the ledger knows of when a booking's commands reached Kafka: its event (so its
-- partition), the times its payments were received (the API's clock when it published them)
-- and when its cancellation was decided (after the command was appended); its seats for the
-- console to show.
SELECT b.event_id, b.status, b.quantity, b.seats, b.cancelled_at,
       array(SELECT p.received_at FROM payments AS p WHERE p.booking_id = b.booking_id
             ORDER BY p.received_at) AS payments_received
FROM bookings AS b WHERE b.booking_id = %(booking_id)s;
