-- Parties are events too: a customer registered (`customer.registered`, on their new
-- wallet) and an agent onboarded (`agent.onboarded`, on their new float), each at the
-- commit of the transaction that made them, numbered in that account's sequence (as
-- its first event: the account is new, so no other transaction waits on its row).

-- An event about something other than a transfer: `p_subject` names it, `p_account`
-- numbers it; into the relay's outbox like every event.
CREATE FUNCTION party_event(p_type text, p_subject text, p_account bigint, p_data jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
    v_currency text;
    v_event bigint;
BEGIN
    UPDATE accounts SET event_seq = event_seq + 1 WHERE id = p_account RETURNING event_seq, currency INTO v_seq, v_currency;
    INSERT INTO events (type, subject, account_id, sequence, data)
    VALUES (p_type, p_subject, p_account, v_seq,
            p_data || jsonb_build_object('account', account_ref(p_account), 'currency', v_currency))
    RETURNING id INTO v_event;
    INSERT INTO event_outbox (event_id, part) VALUES (v_event, (p_account % 16)::smallint);
END $$;

-- A number as events show it to consumers that need no more: +254700***001.
CREATE FUNCTION masked(msisdn text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT left(msisdn, 7) || '***' || right(msisdn, 3) $$;

CREATE FUNCTION wallets_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM party_event('customer.registered', 'CU' || lpad(upper(to_hex(c.id)), 8, '0'), NEW.id,
                        jsonb_build_object('customer', 'CU' || lpad(upper(to_hex(c.id)), 8, '0'),
                                           'msisdn', masked(c.msisdn), 'language', c.language))
       FROM customers c WHERE c.id = NEW.customer_id;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER wallets_events AFTER INSERT ON accounts
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.kind = 'wallet')
    EXECUTE FUNCTION wallets_events();

CREATE FUNCTION agents_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM party_event('agent.onboarded', 'AG' || NEW.agent_number, NEW.float_account_id,
                        jsonb_build_object('agent', 'AG' || NEW.agent_number,
                                           'commission_account', account_ref(NEW.commission_account_id),
                                           'msisdn', masked(c.msisdn)))
       FROM customers c WHERE c.id = NEW.customer_id;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER agents_events AFTER INSERT ON agents
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    EXECUTE FUNCTION agents_events();

-- An anomaly's event is a party event too.
CREATE OR REPLACE FUNCTION record_anomaly(p_rule text, p_account bigint, p_observed bigint, p_threshold bigint,
                                          p_window_secs integer, p_trigger text, p_data jsonb)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO anomalies (rule, account_id, observed, threshold, window_secs, trigger)
    VALUES (p_rule, p_account, p_observed, p_threshold, p_window_secs, p_trigger)
    ON CONFLICT DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NOT NULL THEN
        PERFORM party_event('anomaly.detected', anomaly_ref(v_id), p_account,
            p_data || jsonb_build_object('anomaly', anomaly_ref(v_id), 'rule', p_rule, 'observed', p_observed,
                                         'threshold', p_threshold, 'window_secs', p_window_secs, 'trigger', p_trigger));
    END IF;
    RETURN v_id;
END $$;
