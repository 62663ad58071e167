-- Four-eyes approvals: a sensitive admin call (an agent's onboarding, a float top-up over
-- the limit, a reversal, a PIN unlock) is written down as a proposal by one token and
-- carried out only when a different token approves it with a one-time password.
CREATE TABLE admin_proposals (
    id             text PRIMARY KEY,
    -- The call as it will be made again: method, path (with its values), the
    -- Idempotency-Key it carried, its JSON body.
    method         text NOT NULL,
    path           text NOT NULL,
    idempotency_key text,
    body           jsonb,
    proposed_by    text NOT NULL,
    proposed_at    timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    state          text NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'approved', 'rejected')),
    decided_by     text,
    decided_at     timestamptz,
    note           text,
    -- What carrying it out answered.
    outcome_status smallint,
    outcome        jsonb,
    CHECK ((state = 'pending') = (decided_by IS NULL))
);

CREATE INDEX admin_proposals_pending ON admin_proposals (proposed_at) WHERE state = 'pending';

-- A flag whose every change needs a second token's approval.
ALTER TABLE flags ADD COLUMN sensitive boolean NOT NULL DEFAULT false;

-- An approver's TOTP secret (RFC 6238), sealed with the data key; the last step used,
-- so that a code is taken once.
CREATE TABLE approver_totp (
    token_name text PRIMARY KEY,
    secret     bytea NOT NULL,
    last_step  bigint NOT NULL DEFAULT 0,
    -- Wrong codes in a row, and the lock they earned (RFC 6238 section 5.2).
    failures   integer NOT NULL DEFAULT 0,
    locked_until timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
