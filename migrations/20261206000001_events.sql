-- The event log: every movement posted or rejected is an event, written in the
-- transaction that makes it, once per party account (a wallet, an agent's float, a
-- biller's settlement account) with that account's next sequence number, so that a
-- consumer reading one account's events can order them and see a gap. Append-only.
-- Fee revenue, commission and the funding suspense account are no party: their
-- movements are fields of the parties' events.

ALTER TABLE accounts ADD COLUMN event_seq bigint NOT NULL DEFAULT 0;

CREATE TABLE events (
    -- The log's order; an event's stable id is its transfer and account
    -- (`TX0000002A.AC00000003`), so it needs no column of its own.
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type        text NOT NULL,
    -- The transfer the event is about (`TX0000002A`).
    subject     text NOT NULL,
    account_id  bigint NOT NULL REFERENCES accounts (id),
    sequence    bigint NOT NULL,
    time        timestamptz NOT NULL DEFAULT now(),
    data        jsonb NOT NULL,
    UNIQUE (account_id, sequence)
);

CREATE FUNCTION events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END $$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();

-- An account as events name it (`AC0000002A`), written as transfer references are.
CREATE FUNCTION account_ref(id bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'AC' || CASE WHEN id < 4294967296 THEN lpad(upper(to_hex(id)), 8, '0')
                                                 ELSE upper(to_hex(id)) END $$;

-- lpad cuts a longer text to its length: past 2^32 transfers, references would have
-- repeated (the program writes them with at least 8 digits, never fewer than it has).
CREATE OR REPLACE FUNCTION transfer_ref(id bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'TX' || CASE WHEN id < 4294967296 THEN lpad(upper(to_hex(id)), 8, '0')
                                                 ELSE upper(to_hex(id)) END $$;

-- The events of `p_type` about transfer `p_transfer` for its party accounts among
-- `p_debit` and `p_credit` (a NULL or an account that is no party has none), each
-- under its account's next sequence number, the debit side first; `p_debit_data` and
-- `p_credit_data` are each side's fields. A movement has locked these rows already
-- (one refused before it locked anything locks just its payer's row here, holding no
-- other), so numbers follow the order movements commit in, without gaps. One
-- statement: a movement's cost is counted in statements.
CREATE FUNCTION ledger_events(p_type text, p_transfer bigint, p_debit bigint, p_credit bigint,
                              p_debit_data jsonb, p_credit_data jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH numbered AS (
        UPDATE accounts a SET event_seq = a.event_seq + 1
         WHERE a.id IN (p_debit, p_credit) AND a.kind IN ('wallet', 'agent_float', 'biller_settlement')
        RETURNING a.id, a.event_seq, a.currency)
    INSERT INTO events (type, subject, account_id, sequence, data)
    SELECT p_type, transfer_ref(p_transfer), n.id, n.event_seq,
           CASE WHEN n.id = p_debit THEN p_debit_data ELSE p_credit_data END
             || jsonb_build_object('transfer', transfer_ref(p_transfer), 'account', account_ref(n.id),
                                   'currency', n.currency)
      FROM numbered n
     ORDER BY n.id <> p_debit;
END $$;

-- A transfer posted or rejected: its events. At commit (a deferred constraint
-- trigger), when every lock the movement takes is held, so that numbering an
-- account's events never takes a lock out of the ledger's order.
CREATE FUNCTION transfers_events() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_type text;
    v_debited bigint;
    v_credited bigint;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = NEW.status THEN
        RETURN NULL;
    END IF;
    IF NEW.status = 'posted' THEN
        v_type := CASE NEW.kind
            WHEN 'p2p' THEN 'transfer.posted'
            WHEN 'reversal' THEN 'transfer.reversed'
            WHEN 'cash_in' THEN 'cash_in.posted'
            WHEN 'cash_out' THEN 'cash_out.posted'
            WHEN 'float_transfer' THEN 'float.moved'
            WHEN 'bill' THEN 'bill.paid'
            WHEN 'funding' THEN 'account.funded'
            ELSE NEW.kind || '.posted' END;
        -- What each side paid in fees, from its entries: the payer usually, a biller
        -- that takes the fee out of what it is paid.
        SELECT coalesce(sum(e.amount) FILTER (WHERE e.account_id = NEW.debit_account_id), 0),
               coalesce(sum(e.amount) FILTER (WHERE e.account_id = NEW.credit_account_id), 0)
          INTO v_debited, v_credited
          FROM entries e WHERE e.transfer_id = NEW.id;
        PERFORM ledger_events(v_type, NEW.id, NEW.debit_account_id, NEW.credit_account_id,
            jsonb_build_object('kind', NEW.kind, 'direction', 'debit', 'amount', NEW.amount,
                               'fee', -v_debited - NEW.amount, 'counterparty', account_ref(NEW.credit_account_id)),
            jsonb_build_object('kind', NEW.kind, 'direction', 'credit', 'amount', NEW.amount,
                               'fee', NEW.amount - v_credited, 'counterparty', account_ref(NEW.debit_account_id)));
    ELSIF NEW.status = 'rejected' AND NEW.debit_account_id IS NOT NULL THEN
        v_type := CASE NEW.kind
            WHEN 'p2p' THEN 'transfer.rejected'
            WHEN 'float_transfer' THEN 'float.rejected'
            WHEN 'bill' THEN 'bill.refused'
            ELSE NEW.kind || '.rejected' END;
        PERFORM ledger_events(v_type, NEW.id, NEW.debit_account_id, NULL,
            jsonb_build_object('kind', NEW.kind, 'amount', NEW.amount, 'reason', coalesce(NEW.reject_code, 'rejected')),
            NULL);
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER transfers_events AFTER INSERT OR UPDATE OF status ON transfers
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.status IN ('posted', 'rejected'))
    EXECUTE FUNCTION transfers_events();
