-- A proposal whose body is itself a secret (a biller's credentials) keeps it sealed by
-- the vault at (admin_proposals, body_sealed, id); `body` then shows what the approver
-- needs to judge it (which credentials are set), never their values.
-- The sealed body is dropped once the proposal is decided; `body_digest` (keyed, as the
-- national ID's blind index) tells a call sent again with its Idempotency-Key from
-- another with the same key.
ALTER TABLE admin_proposals ADD COLUMN body_sealed bytea, ADD COLUMN body_digest bytea;
