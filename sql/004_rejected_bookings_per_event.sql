-- The audit counts an event's rejected bookings. Without 003's (event_id, status) index that
-- count scanned the whole bookings table, every event, every audit. A partial index on the
-- rejected rows answers it, and no query about confirmed bookings can be planned through it.
CREATE INDEX bookings_event_rejected ON bookings (event_id) WHERE status = 'REJECTED';
