-- Anomalies: what the detector found in the event stream, for operators to list, each
-- also an `anomaly.detected` event (so that it reaches the streams and webhooks),
-- numbered in its account's sequence like every other event.

CREATE TABLE anomalies (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule         text NOT NULL,
    account_id   bigint NOT NULL REFERENCES accounts (id),
    -- What the rule measured, against its threshold, over its window.
    observed     bigint NOT NULL,
    threshold    bigint NOT NULL,
    window_secs  integer NOT NULL,
    -- The event that crossed the threshold (`TX0000002A.AC00000003`).
    trigger      text NOT NULL,
    detected_at  timestamptz NOT NULL DEFAULT now(),
    -- The rule fires once per account and window however many replicas see the event.
    UNIQUE (rule, account_id, trigger)
);

CREATE INDEX anomalies_latest ON anomalies (id DESC);

-- An anomaly as events name it (`AN0000002A`), written as transfer references are.
CREATE FUNCTION anomaly_ref(id bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'AN' || CASE WHEN id < 4294967296 THEN lpad(upper(to_hex(id)), 8, '0')
                                                 ELSE upper(to_hex(id)) END $$;

-- Records an anomaly and its event in one transaction; its id, or NULL when the rule
-- already fired on this trigger (a repeat of the event on the stream).
CREATE FUNCTION record_anomaly(p_rule text, p_account bigint, p_observed bigint, p_threshold bigint,
                               p_window_secs integer, p_trigger text, p_data jsonb)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_seq bigint;
    v_event bigint;
BEGIN
    INSERT INTO anomalies (rule, account_id, observed, threshold, window_secs, trigger)
    VALUES (p_rule, p_account, p_observed, p_threshold, p_window_secs, p_trigger)
    ON CONFLICT DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        RETURN NULL;
    END IF;
    UPDATE accounts SET event_seq = event_seq + 1 WHERE id = p_account RETURNING event_seq INTO v_seq;
    INSERT INTO events (type, subject, account_id, sequence, data)
    VALUES ('anomaly.detected', anomaly_ref(v_id), p_account, v_seq,
            p_data || jsonb_build_object('anomaly', anomaly_ref(v_id), 'account', account_ref(p_account),
                                         'rule', p_rule, 'observed', p_observed, 'threshold', p_threshold,
                                         'window_secs', p_window_secs, 'trigger', p_trigger))
    RETURNING id INTO v_event;
    INSERT INTO event_outbox (event_id, part) VALUES (v_event, (p_account % 16)::smallint);
    RETURN v_id;
END $$;
