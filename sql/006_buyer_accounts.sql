-- Buyers' accounts, and their bookings listed newest first.
-- user_id is what tokens carry as `sub` and bookings as user_id; an account is never
-- removed, only marked deleted, so its id is never given to anyone else.
CREATE TABLE accounts (
    user_id       text PRIMARY KEY CHECK (char_length(user_id) BETWEEN 1 AND 64),
    email         text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    password_hash text NOT NULL,
    role          text NOT NULL DEFAULT 'buyer' CHECK (role IN ('buyer', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz
);

-- Emails are unique whatever their case.
CREATE UNIQUE INDEX accounts_email ON accounts (lower(email));

-- GET /api/me/bookings: a buyer's bookings by id (UUIDv7: creation time first), so a page is
-- one index range whatever the ledger's size.
CREATE INDEX bookings_user_newest ON bookings (user_id, booking_id);
