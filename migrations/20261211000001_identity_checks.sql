-- Identity checks: a customer's national ID and names sent to the identity provider
-- (at registration, or from "Upgrade my account"), its answer, and the operators'
-- review of those it did not match. A match moves the customer to the verified tier.
--
-- A check is written in the same transaction as what asks for it, so that the SMS the
-- subscriber is promised comes whatever happens to the process: the worker claims due
-- checks (a lease, `SKIP LOCKED`), submits or polls them, and settles each answer once.
CREATE TABLE identity_checks (
    -- `idc_` and 16 hex digits: the provider's reference and idempotency key too.
    id                text PRIMARY KEY CHECK (id ~ '^idc_[0-9a-f]{16}$'),
    customer_id       bigint NOT NULL REFERENCES customers (id),
    first_name        text NOT NULL,
    last_name         text NOT NULL,
    -- Sealed by the vault at (identity_checks, national_id_enc, id); never in clear, and
    -- dropped once the check is decided (the customer's row keeps the one verified).
    national_id_enc   bytea,
    -- The blind index of the ID, as customers.national_id_index.
    national_id_index bytea NOT NULL,
    -- queued: to submit; submitted: the provider has it, its answer awaited (callback
    -- or poll); review: an operator decides; verified, overridden (verified by two
    -- operators against the provider's answer) and rejected are final.
    state             text NOT NULL DEFAULT 'queued'
                      CHECK (state IN ('queued', 'submitted', 'review', 'verified', 'overridden', 'rejected')),
    -- Why a check waits for review: the provider found the names do not match the ID,
    -- or the ID already behind another registration (here or with the provider), or
    -- refused the request (or the wallet is blocked), or never answered; or it matched
    -- an ID other than the one the wallet was registered with.
    reason            text CHECK (reason IN ('mismatch', 'duplicate', 'refused', 'no_answer', 'id_changed')),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When the worker next looks at it (also the lease while it does).
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    submitted_at      timestamptz,
    decided_at        timestamptz,
    -- The provider (`provider`), or the operator token(s) that decided the review.
    decided_by        text,
    note              text,
    CHECK (state <> 'review' OR reason IS NOT NULL),
    CHECK (state IN ('verified', 'overridden', 'rejected') OR national_id_enc IS NOT NULL)
);
CREATE INDEX identity_checks_due ON identity_checks (next_attempt_at) WHERE state IN ('queued', 'submitted');
CREATE INDEX identity_checks_review ON identity_checks (created_at) WHERE state = 'review';
-- One check open per customer: a second "Upgrade my account" while one is waiting is
-- told it is waiting.
CREATE UNIQUE INDEX identity_checks_open ON identity_checks (customer_id)
    WHERE state IN ('queued', 'submitted', 'review');

ALTER TABLE customers ADD COLUMN verified_at timestamptz;

-- The tier a verified identity reaches: the one named `verified`. Named once, so that
-- no two tiers can answer; a deployment without one verifies nobody (the highest
-- smallint is no tier), and reads of who is verified still answer.
CREATE UNIQUE INDEX kyc_tiers_name ON kyc_tiers (name);
CREATE FUNCTION verified_tier() RETURNS smallint
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT tier FROM kyc_tiers WHERE name = 'verified'), 32767::smallint)
$$;

-- A check as operators see it (the admin API): never the ID number.
CREATE FUNCTION identity_check_shown(c identity_checks) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', c.id, 'msisdn', cu.msisdn, 'first_name', c.first_name, 'last_name', c.last_name,
        'state', c.state, 'reason', c.reason, 'note', c.note, 'attempts', c.attempts,
        'last_error', c.last_error, 'created_at', c.created_at, 'submitted_at', c.submitted_at,
        'decided_at', c.decided_at, 'decided_by', c.decided_by, 'kyc_tier', t.name)
      FROM customers cu JOIN kyc_tiers t ON t.tier = cu.kyc_tier
     WHERE cu.id = c.customer_id
$$;

-- Profiles kept in memory say whether the customer is verified: a tier change is
-- announced like a name's.
DROP TRIGGER customers_profile_changed ON customers;
CREATE TRIGGER customers_profile_changed AFTER UPDATE ON customers FOR EACH ROW
    WHEN (OLD.msisdn IS DISTINCT FROM NEW.msisdn
          OR OLD.first_name IS DISTINCT FROM NEW.first_name
          OR OLD.last_name IS DISTINCT FROM NEW.last_name
          OR OLD.language IS DISTINCT FROM NEW.language
          OR OLD.kyc_tier IS DISTINCT FROM NEW.kyc_tier)
    EXECUTE FUNCTION customers_profile_changed();

-- Identity notices go through the outbox under the key `identity:<check>:<what>`.
ALTER TABLE outbox DROP CONSTRAINT outbox_role_check,
    ADD CONSTRAINT outbox_role_check CHECK (role IN ('payer', 'payee', 'reply', 'request', 'outcome', 'identity'));
