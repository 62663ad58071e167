-- Messages subscribers send us. One row per provider message id, so a provider that
-- retries a callback for hours has one effect. The text is not kept: a subscriber may
-- send a PIN by mistake.
CREATE TABLE sms_inbound (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel     text NOT NULL,
    provider    text NOT NULL,
    message_id  text NOT NULL,
    msisdn      text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    -- When its reply was queued: until then a retry of the message waits (or, once the
    -- first try looks dead, takes over).
    answered_at timestamptz,
    UNIQUE (provider, message_id)
);

-- Pieces of long messages (Vonage sends them one by one), kept until the last arrives
-- (an hour at most).
-- Each piece is known by its own message id (phones reuse the small concatenation
-- references); a joined piece stays, marked, so that its retries are recognised.
CREATE TABLE sms_parts (
    provider    text NOT NULL,
    message_id  text NOT NULL,
    msisdn      text NOT NULL,
    reference   text NOT NULL,
    part        smallint NOT NULL CHECK (part >= 1),
    total       smallint NOT NULL CHECK (total >= part),
    body        text NOT NULL,
    joined      boolean NOT NULL DEFAULT false,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, message_id)
);
CREATE INDEX sms_parts_waiting ON sms_parts (provider, msisdn, reference) WHERE NOT joined;

-- Numbers that replied STOP: no message that is not transactional goes to them.
CREATE TABLE sms_opt_outs (
    msisdn text PRIMARY KEY,
    since  timestamptz NOT NULL DEFAULT now()
);

-- Replies to inbound messages go through the outbox too: no transfer, one per message.
ALTER TABLE outbox
    ALTER COLUMN transfer_id DROP NOT NULL,
    ADD COLUMN inbound_id bigint UNIQUE REFERENCES sms_inbound (id),
    ADD COLUMN transactional boolean NOT NULL DEFAULT true,
    DROP CONSTRAINT outbox_role_check,
    ADD CONSTRAINT outbox_role_check CHECK (role IN ('payer', 'payee', 'reply')),
    ADD CONSTRAINT outbox_has_a_cause CHECK (transfer_id IS NOT NULL OR inbound_id IS NOT NULL OR NOT transactional);

-- The SMS conversation a number is in (one per channel): a reply within the session
-- lifetime continues it. Each conversation has its own session id, so the idempotency
-- keys of its movements never repeat those of an earlier one.
CREATE TABLE sms_conversations (
    channel    text NOT NULL,
    msisdn     text NOT NULL,
    session_id text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, msisdn)
);
