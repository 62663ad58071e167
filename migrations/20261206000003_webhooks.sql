-- Webhooks: partners' endpoints, the event types each wants, and one delivery per
-- endpoint and event. The relay makes the deliveries in the transaction that marks
-- the events published, so each event reaches each endpoint that wants it once, in
-- a row that records every attempt's outcome.

CREATE TABLE webhooks (
    -- `wh_` and 16 hex digits, made before the row so that its secrets are sealed
    -- for it.
    id               text PRIMARY KEY,
    url              text NOT NULL,
    -- Event types, exact or with `*` (`transfer.*`).
    types            text[] NOT NULL,
    secret_sealed    bytea NOT NULL,
    -- After a rotation, the secret before it, still signed with until `previous_until`.
    previous_sealed  bytea,
    previous_until   timestamptz,
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    disabled_reason  text,
    -- The endpoint's failures since its last success, and when the first of them was.
    failures_in_row  integer NOT NULL DEFAULT 0,
    failing_since    timestamptz,
    -- The endpoint's breaker: nothing is sent to it before this.
    breaker_until    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id       text NOT NULL REFERENCES webhooks (id),
    event_id         bigint NOT NULL REFERENCES events (id),
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status      integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- Retries go on for a day from here (the delivery's making, or its replay).
    retry_from       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (webhook_id, event_id)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id DESC);

-- Whether an event of type `p_type` is one of `p_types` (`*` standing for any run of
-- characters).
CREATE FUNCTION webhook_wants(p_types text[], p_type text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT EXISTS (SELECT 1 FROM unnest(p_types) t
                    WHERE p_type LIKE replace(replace(replace(t, '\', '\\'), '_', '\_'), '*', '%'))
$$;
