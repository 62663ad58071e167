-- A proposal whose body is itself a secret (a biller's credentials) keeps it sealed by
-- the vault at (admin_proposals, body_sealed, id); `body` then shows what the approver
-- needs to judge it (which credentials are set), never their values.
ALTER TABLE admin_proposals ADD COLUMN body_sealed bytea;
