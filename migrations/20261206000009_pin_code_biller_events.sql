-- The last of the state changes the event log lacked: a PIN locked by wrong guesses
-- (`pin.locked`) or unlocked before its time (`pin.unlocked`, by an operator or a new
-- PIN), a wrong one-time code (`otp.failed`), and a biller created or changed
-- (`biller.changed`). Each is written at the commit of the change it reports, numbered
-- in the sequence of the customer's wallet (the biller's settlement account), like the
-- party events. They can happen again and again to one subject, so their ids carry the
-- sequence (`CU00000003.AC00000005.7`).
--
-- Where the change came from is not in the row: the statement that makes it sets
-- `ussd.channel` (the channel of the hop: `hubtel-gh`, `sms:at-ke`) or `ussd.actor`
-- (`admin`, `pin_change`, `demo`) for its transaction, and the event carries it
-- (`unknown` when nothing said so: a change made by hand). The anomaly rules count
-- lockouts and wrong codes per channel with it.

CREATE FUNCTION customer_ref(id bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'CU' || CASE WHEN id < 4294967296 THEN lpad(upper(to_hex(id)), 8, '0')
                                                 ELSE upper(to_hex(id)) END $$;

CREATE OR REPLACE FUNCTION event_id(e events) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT e.subject || '.' || account_ref(e.account_id)
           || CASE WHEN e.type IN ('hold.placed', 'bill.pending') THEN '.held'
                   WHEN e.type IN ('pin.locked', 'pin.unlocked', 'otp.failed', 'biller.changed')
                   THEN '.' || e.sequence
                   ELSE '' END
$$;

-- A setting the changing statement made for its transaction, or NULL.
CREATE FUNCTION change_context(p_name text) RETURNS text
LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('ussd.' || p_name, true), '') $$;

-- An event about customer `p_customer`, on their wallet; nothing when they have none.
CREATE FUNCTION customer_event(p_type text, p_customer bigint, p_data jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM party_event(p_type, customer_ref(c.id), a.id,
                        jsonb_build_object('customer', customer_ref(c.id), 'msisdn', masked(c.msisdn)) || p_data)
       FROM customers c JOIN accounts a ON a.customer_id = c.id AND a.kind = 'wallet'
      WHERE c.id = p_customer;
END $$;

CREATE FUNCTION customers_pin_events() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_was boolean := coalesce(OLD.pin_locked_until > now(), false);
    v_is boolean := coalesce(NEW.pin_locked_until > now(), false);
BEGIN
    IF v_is AND NOT v_was THEN
        PERFORM customer_event('pin.locked', NEW.id,
            jsonb_build_object('until', to_char(NEW.pin_locked_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                               'failures', NEW.pin_failures, 'channel', change_context('channel')));
    ELSIF v_was AND NOT v_is THEN
        PERFORM customer_event('pin.unlocked', NEW.id,
            jsonb_build_object('by', coalesce(change_context('actor'), 'unknown')));
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER customers_pin_events AFTER UPDATE OF pin_locked_until ON customers
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.pin_locked_until IS DISTINCT FROM OLD.pin_locked_until)
    EXECUTE FUNCTION customers_pin_events();

CREATE FUNCTION sms_code_failures_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM customer_event('otp.failed', c.id,
                           jsonb_build_object('failures', NEW.failures, 'channel', change_context('channel')))
       FROM customers c WHERE c.msisdn = NEW.msisdn;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER sms_code_failures_events AFTER INSERT OR UPDATE ON sms_code_failures
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    EXECUTE FUNCTION sms_code_failures_events();

-- A biller's event names what changed, never its credentials or address: consumers
-- learn that they changed, an operator's audit trail says how.
CREATE FUNCTION billers_events() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_changed text[];
BEGIN
    IF TG_OP = 'UPDATE' THEN
        SELECT coalesce(array_agg(CASE n.key WHEN 'credentials_sealed' THEN 'credentials' ELSE n.key END
                                  ORDER BY n.key), '{}')
          INTO v_changed
          FROM jsonb_each(to_jsonb(NEW)) n
         WHERE to_jsonb(OLD) -> n.key IS DISTINCT FROM n.value;
        IF cardinality(v_changed) = 0 THEN
            RETURN NULL;
        END IF;
    END IF;
    PERFORM party_event('biller.changed', 'BL' || NEW.code, NEW.settlement_account_id,
        jsonb_build_object('biller', NEW.code, 'name', NEW.name, 'status', NEW.status,
                           'fee_payer', NEW.fee_payer, 'action', CASE TG_OP WHEN 'INSERT' THEN 'created' ELSE 'updated' END,
                           'changed', to_jsonb(coalesce(v_changed, '{}'::text[])),
                           'by', coalesce(change_context('actor'), 'unknown')));
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER billers_events AFTER INSERT OR UPDATE ON billers
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    EXECUTE FUNCTION billers_events();

-- A channel's anomaly names the channel; the account it is on is that of the event
-- that reached the threshold, which may be a victim's.
ALTER TABLE anomalies ADD COLUMN channel text;

CREATE OR REPLACE FUNCTION record_anomaly(p_rule text, p_account bigint, p_observed bigint, p_threshold bigint,
                                          p_window_secs integer, p_trigger text, p_data jsonb)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO anomalies (rule, account_id, observed, threshold, window_secs, trigger, channel)
    VALUES (p_rule, p_account, p_observed, p_threshold, p_window_secs, p_trigger, p_data ->> 'channel')
    ON CONFLICT DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NOT NULL THEN
        PERFORM party_event('anomaly.detected', anomaly_ref(v_id), p_account,
            p_data || jsonb_build_object('anomaly', anomaly_ref(v_id), 'rule', p_rule, 'observed', p_observed,
                                         'threshold', p_threshold, 'window_secs', p_window_secs, 'trigger', p_trigger));
    END IF;
    RETURN v_id;
END $$;
