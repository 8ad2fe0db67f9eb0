-- The notifier's queries (consumer/notifications.py), on the notifications table
-- (sql/011_notifications.sql) and the buyers' accounts.

-- name: recipients
SELECT user_id, email FROM accounts
WHERE user_id = ANY(%(user_ids)s::text[]) AND deleted_at IS NULL;

-- The claim: a row that exists (committed) means mailed already; a row another notifier
-- is inserting makes this wait until that one commits or rolls back.
-- name: claim
INSERT INTO notifications (event_id, seq, booking_id, status, recipient)
VALUES (%(event_id)s, %(seq)s, %(booking_id)s, %(status)s, %(recipient)s)
ON CONFLICT (event_id, seq) DO NOTHING
RETURNING true AS claimed;

-- name: record_handed
INSERT INTO notifications (event_id, seq, booking_id, status, recipient, reply)
VALUES (%(event_id)s, %(seq)s, %(booking_id)s, %(status)s, %(recipient)s, %(reply)s)
ON CONFLICT (event_id, seq) DO NOTHING;

-- name: record_accepted
INSERT INTO notifications (event_id, seq, booking_id, status, recipient, reply, accepted_at)
SELECT e, s, b, st, r, re, now()
FROM unnest(%(event_ids)s::bigint[], %(seqs)s::bigint[], %(booking_ids)s::uuid[],
            %(statuses)s::text[], %(recipients)s::text[], %(replies)s::text[])
     AS accepted (e, s, b, st, r, re)
ON CONFLICT (event_id, seq) DO UPDATE
SET accepted_at = now(), reply = excluded.reply, outcome = 'sent';

-- name: record_refused
INSERT INTO notifications (event_id, seq, booking_id, status, recipient, outcome, reply)
VALUES (%(event_id)s, %(seq)s, %(booking_id)s, %(status)s, %(recipient)s, 'refused', %(reply)s)
ON CONFLICT (event_id, seq) DO UPDATE SET outcome = 'refused', reply = excluded.reply;

-- name: forget
DELETE FROM notifications WHERE event_id = %(event_id)s AND seq = %(seq)s;
