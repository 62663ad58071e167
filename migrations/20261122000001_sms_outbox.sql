-- The SMS worker's bookkeeping on the outbox: how many times a message was tried, when
-- it is next due (also the lease a worker holds while sending), why the last try
-- failed, and what the provider called the message (for its delivery reports).

ALTER TABLE outbox
    ADD COLUMN attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    ADD COLUMN next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN last_error          text,
    ADD COLUMN provider            text,
    ADD COLUMN provider_message_id text,
    ADD COLUMN segments            smallint,
    ADD COLUMN sent_at             timestamptz,
    ADD COLUMN status_at           timestamptz;

DROP INDEX outbox_queued;
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'queued';
CREATE INDEX outbox_provider_message ON outbox (provider, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
