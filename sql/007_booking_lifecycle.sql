-- The booking lifecycle: a booking may be HELD until it is paid (CONFIRMED) or its timer runs
-- out (EXPIRED), and HELD or CONFIRMED bookings may be CANCELLED. The constraints below make
-- PostgreSQL the judge of every transition, whatever the worker believes.

-- hold_seconds 0: decided straight to CONFIRMED, as before. `held` is the quantity of the
-- event's HELD bookings, kept beside `sold` under the event's row lock.
ALTER TABLE events ADD COLUMN hold_seconds integer NOT NULL DEFAULT 0
    CHECK (hold_seconds BETWEEN 0 AND 3600);
ALTER TABLE events ADD COLUMN held integer NOT NULL DEFAULT 0 CHECK (held >= 0);
ALTER TABLE events DROP CONSTRAINT events_no_oversell;
ALTER TABLE events ADD CONSTRAINT events_no_oversell
    CHECK (sold >= 0 AND sold + held <= capacity);

ALTER TABLE bookings DROP CONSTRAINT bookings_status_check;
ALTER TABLE bookings ADD CONSTRAINT bookings_status_check
    CHECK (status IN ('HELD', 'CONFIRMED', 'REJECTED', 'EXPIRED', 'CANCELLED'));
ALTER TABLE bookings DROP CONSTRAINT bookings_reason_check;
ALTER TABLE bookings ADD CONSTRAINT bookings_reason_check
    CHECK (reason IN ('SOLD_OUT', 'LIMIT_EXCEEDED', 'INVALID', 'SEAT_TAKEN',
                      'NO_ADJACENT_SEATS', 'NOT_ADMITTED'));

ALTER TABLE bookings ADD COLUMN hold_expires_at timestamptz;
ALTER TABLE bookings ADD COLUMN paid_at timestamptz;
ALTER TABLE bookings ADD COLUMN cancelled_at timestamptz;
ALTER TABLE bookings ADD COLUMN price_cents integer CHECK (price_cents >= 0);

-- Every HELD or EXPIRED booking was a hold with a deadline; a paid one was paid before it
-- (so a paid hold can never be EXPIRED); a CANCELLED one says when.
ALTER TABLE bookings ADD CONSTRAINT bookings_hold_has_deadline
    CHECK (status NOT IN ('HELD', 'EXPIRED') OR hold_expires_at IS NOT NULL);
ALTER TABLE bookings ADD CONSTRAINT bookings_paid_in_time
    CHECK (paid_at IS NULL OR (hold_expires_at IS NOT NULL AND paid_at < hold_expires_at));
ALTER TABLE bookings ADD CONSTRAINT bookings_expired_unpaid
    CHECK (status <> 'EXPIRED' OR paid_at IS NULL);
ALTER TABLE bookings ADD CONSTRAINT bookings_cancelled_when
    CHECK ((status = 'CANCELLED') = (cancelled_at IS NOT NULL));

-- A buyer's per-user total counts what they hold as well as what they bought.
DROP INDEX bookings_event_user_confirmed;
CREATE INDEX bookings_event_user_live ON bookings (event_id, user_id)
    WHERE status IN ('HELD', 'CONFIRMED');

-- The expiry sweep: the holds past their deadline, of every event or of one.
CREATE INDEX bookings_hold_deadline ON bookings (hold_expires_at) INCLUDE (event_id)
    WHERE status = 'HELD';

-- Every payment the worker received, once per provider reference: `applied` confirmed its
-- booking; `refund_due` arrived for a booking that was not HELD any more (expired,
-- cancelled, paid already) or was cancelled after it, and must be paid back.
CREATE TABLE payments (
    provider     text NOT NULL CHECK (provider IN ('dev', 'stripe')),
    payment_ref  text NOT NULL CHECK (char_length(payment_ref) BETWEEN 1 AND 255),
    booking_id   uuid NOT NULL,
    event_id     bigint NOT NULL,
    amount_cents integer,
    outcome      text NOT NULL CHECK (outcome IN ('applied', 'refund_due')),
    received_at  timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, payment_ref)
);
CREATE INDEX payments_booking ON payments (booking_id);
CREATE INDEX payments_refund_due ON payments (event_id) WHERE outcome = 'refund_due';

-- Stripe event ids already applied: a redelivered webhook changes nothing.
CREATE TABLE webhook_events (
    provider   text NOT NULL,
    event_id   text NOT NULL,
    type       text NOT NULL,
    booking_id uuid NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);

-- The audit counts an event's expired and cancelled bookings, as 004 does its rejected ones.
CREATE INDEX bookings_event_ended ON bookings (event_id, status)
    WHERE status IN ('EXPIRED', 'CANCELLED');
