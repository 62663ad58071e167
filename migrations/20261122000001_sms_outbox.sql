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

-- Delivery reports as the providers sent them, one row per (message, status): a
-- provider retrying a report adds nothing. Kept even when no outbox row carries the
-- message id yet (a report may overtake the worker recording the send); the worker
-- applies them when it does.
CREATE TABLE sms_delivery_reports (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider    text NOT NULL,
    message_id  text NOT NULL,
    status      text NOT NULL CHECK (status IN ('sent', 'delivered', 'failed', 'expired', 'rejected')),
    error       text,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, message_id, status)
);

-- Delivery status only moves forward: queued → sent → one final state. A late "sent"
-- never undoes "delivered", and the first final state stays.
CREATE FUNCTION sms_status_rank(status text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE status WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 ELSE 2 END
$$;
