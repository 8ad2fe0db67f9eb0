-- The accounts CLI (scripts/accounts.py): giving a registered user a role.

-- name: set_role
-- Emails are unique whatever their case (accounts_email); a closed account keeps its role.
UPDATE accounts SET role = %(role)s
WHERE lower(email) = lower(%(email)s) AND deleted_at IS NULL
RETURNING user_id, email;
