-- The on-sale queue (waiting room): an event may open at `opens_at` and sell only to buyers
-- the queue admitted (`queue`); `queue_pow` asks each joiner for a proof of work first (the
-- ALTCHA challenge's largest number, 0: none). The queue's entries live in Redis
-- (shared/queue.py); the ledger only knows which events have one, so the worker refuses a
-- booking without a valid admission token whatever Redis says.
ALTER TABLE events ADD COLUMN opens_at timestamptz;
ALTER TABLE events ADD COLUMN queue boolean NOT NULL DEFAULT false;
ALTER TABLE events ADD COLUMN queue_pow integer NOT NULL DEFAULT 0
    CHECK (queue_pow BETWEEN 0 AND 10000000);
