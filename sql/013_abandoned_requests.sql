-- Booking requests the API answered 503 for while Kafka might still deliver them (its wait for
-- the acknowledgement ran out): the worker drops these rather than sell a seat to a buyer who
-- was told nothing was booked (docs/deadlines.md). In the ledger, not in Redis, so a Redis
-- that loses its data cannot turn a 503 into a sale. Rows appear only around Kafka outages.
CREATE TABLE abandoned_requests (
    booking_id uuid PRIMARY KEY,
    abandoned_at timestamptz NOT NULL DEFAULT now()
);
