-- The events the relay has yet to publish, written beside each event in the same
-- statement, so that a committed event is always either published or waiting here.
-- The relay takes one part at a time under a row lock (`FOR NO KEY UPDATE SKIP
-- LOCKED` on `event_relay_parts`, which a movement's insert here, checking its foreign
-- key with a key-share lock, never waits for): replicas share the parts, one account's events all fall in
-- one part and so leave in the order they were written, and a relay that dies lets go
-- of its part when its connection closes.

CREATE TABLE event_relay_parts (
    part        smallint PRIMARY KEY,
    relayed_at  timestamptz NOT NULL DEFAULT '-infinity'
);

-- Sixteen parts: up to sixteen relays publish at once. Changing the number would
-- reorder the events waiting at the change, so it is fixed here.
INSERT INTO event_relay_parts (part) SELECT generate_series(0, 15);

CREATE TABLE event_outbox (
    event_id  bigint PRIMARY KEY,
    part      smallint NOT NULL REFERENCES event_relay_parts (part)
);

CREATE INDEX event_outbox_part ON event_outbox (part, event_id);

-- The events written before the relay: all of them wait.
INSERT INTO event_outbox (event_id, part) SELECT id, (account_id % 16)::smallint FROM events;

CREATE OR REPLACE FUNCTION ledger_events(p_type text, p_transfer bigint, p_debit bigint, p_credit bigint,
                                         p_debit_data jsonb, p_credit_data jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH numbered AS (
        UPDATE accounts a SET event_seq = a.event_seq + 1
         WHERE a.id IN (p_debit, p_credit) AND a.kind IN ('wallet', 'agent_float', 'biller_settlement')
        RETURNING a.id, a.event_seq, a.currency),
    written AS (
        INSERT INTO events (type, subject, account_id, sequence, data)
        SELECT p_type, transfer_ref(p_transfer), n.id, n.event_seq,
               CASE WHEN n.id = p_debit THEN p_debit_data ELSE p_credit_data END
                 || jsonb_build_object('transfer', transfer_ref(p_transfer), 'account', account_ref(n.id),
                                       'currency', n.currency)
          FROM numbered n
         ORDER BY n.id <> p_debit
        RETURNING id, account_id)
    INSERT INTO event_outbox (event_id, part)
    SELECT w.id, (w.account_id % 16)::smallint FROM written w;
END $$;
