-- The booking events the notifier (consumer/notify.py) mailed: one row per (event_id, seq),
-- so a redelivered event is never mailed twice. The row is inserted in a transaction that
-- stays open while the mail is handed to the SMTP server and is committed right after the
-- end of its DATA is sent (consumer/delivery.py and docs/notifications.md say why).
--   outcome 'sent':    handed over; accepted_at set once the server's 250 was seen (written
--                      at the end of each batch). NULL: no reply came, or the notifier was
--                      stopped before the batch's end, so the mail may or may not have been
--                      accepted; either way it is never sent again.
--   outcome 'refused': the server refused it for good (5xx); the event is dead-lettered.
CREATE TABLE notifications (
    event_id    bigint      NOT NULL,
    seq         bigint      NOT NULL CHECK (seq >= 1),
    booking_id  uuid        NOT NULL,
    status      text        NOT NULL,
    recipient   text        NOT NULL,
    outcome     text        NOT NULL DEFAULT 'sent' CHECK (outcome IN ('sent', 'refused')),
    reply       text,
    handed_at   timestamptz NOT NULL DEFAULT now(),
    accepted_at timestamptz,
    PRIMARY KEY (event_id, seq)
);
