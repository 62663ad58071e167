-- Holds are events too: money put aside for a cash-out the customer has to approve
-- (`hold.placed`) or for a bill the biller has yet to confirm (`bill.pending`), then
-- given back (`hold.released`, or `bill.refused` for a bill) or let run out
-- (`hold.expired`); a hold that is taken posts as before (`cash_out.posted`,
-- `bill.paid`). Each for the payer only, numbered in its sequence. A held transfer has
-- two events for its payer, so the first's id carries `.held`
-- (`TX0000002A.AC00000003.held`).

CREATE OR REPLACE FUNCTION transfers_events() RETURNS trigger
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
        SELECT coalesce(sum(e.amount) FILTER (WHERE e.account_id = NEW.debit_account_id), 0),
               coalesce(sum(e.amount) FILTER (WHERE e.account_id = NEW.credit_account_id), 0)
          INTO v_debited, v_credited
          FROM entries e WHERE e.transfer_id = NEW.id;
        PERFORM ledger_events(v_type, NEW.id, NEW.debit_account_id, NEW.credit_account_id,
            jsonb_build_object('kind', NEW.kind, 'direction', 'debit', 'amount', NEW.amount,
                               'fee', -v_debited - NEW.amount, 'counterparty', account_ref(NEW.credit_account_id)),
            jsonb_build_object('kind', NEW.kind, 'direction', 'credit', 'amount', NEW.amount,
                               'fee', NEW.amount - v_credited, 'counterparty', account_ref(NEW.debit_account_id)));
    ELSIF NEW.status = 'held' AND NEW.debit_account_id IS NOT NULL THEN
        v_type := CASE NEW.kind WHEN 'bill' THEN 'bill.pending' ELSE 'hold.placed' END;
        PERFORM ledger_events(v_type, NEW.id, NEW.debit_account_id, NULL,
            jsonb_build_object('kind', NEW.kind, 'amount', NEW.amount, 'fee', coalesce(NEW.fee, 0),
                               'counterparty', account_ref(NEW.credit_account_id)),
            NULL);
    ELSIF NEW.status IN ('voided', 'expired') AND NEW.debit_account_id IS NOT NULL THEN
        v_type := CASE WHEN NEW.kind = 'bill' THEN 'bill.refused'
                       WHEN NEW.status = 'voided' THEN 'hold.released' ELSE 'hold.expired' END;
        PERFORM ledger_events(v_type, NEW.id, NEW.debit_account_id, NULL,
            jsonb_build_object('kind', NEW.kind, 'amount', NEW.amount,
                               'reason', CASE NEW.status WHEN 'voided' THEN 'declined' ELSE 'expired' END),
            NULL);
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

DROP TRIGGER transfers_events ON transfers;
CREATE CONSTRAINT TRIGGER transfers_events AFTER INSERT OR UPDATE OF status ON transfers
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.status IN ('posted', 'rejected', 'held', 'voided', 'expired'))
    EXECUTE FUNCTION transfers_events();

-- An event's stable id: its subject and account, and `.held` for the first of a held
-- transfer's two events for its payer.
CREATE FUNCTION event_id(e events) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT e.subject || '.' || account_ref(e.account_id)
           || CASE WHEN e.type IN ('hold.placed', 'bill.pending') THEN '.held' ELSE '' END
$$;
