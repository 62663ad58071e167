-- A merchant's confirmation endpoint: a webhook of its own (`webhooks.merchant_id`),
-- signed, retried, dead-lettered and replayed as partners' are, that gets only the
-- events of its merchant's settlement accounts. A merchant payment's events carry
-- what the merchant needs to apply it: the merchant, its business number or till, the
-- customer's account reference with it, and the customer's name and masked number.

ALTER TABLE webhooks ADD COLUMN merchant_id bigint UNIQUE REFERENCES merchants (id);

-- Whether webhook `w` gets event `e`: a type it wants, and for a merchant's endpoint
-- an event of one of that merchant's settlement accounts.
CREATE FUNCTION webhook_for(w webhooks, e events) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT webhook_wants(w.types, e.type)
       AND (w.merchant_id IS NULL
            OR EXISTS (SELECT 1 FROM merchant_settlement_shards s
                        WHERE s.merchant_id = w.merchant_id AND s.account_id = e.account_id))
$$;

CREATE OR REPLACE FUNCTION transfers_events() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_type text;
    v_debited bigint;
    v_credited bigint;
    -- What a merchant payment's events carry beside the rest.
    v_merchant jsonb := '{}';
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
        IF NEW.kind = 'merchant' THEN
            SELECT jsonb_strip_nulls(jsonb_build_object(
                       'merchant', 'MC' || lpad(upper(to_hex(m.id)), greatest(8, length(to_hex(m.id))), '0'),
                       'business_number', m.business_number, 'till', p.till_number,
                       'account_reference', p.account_reference,
                       'customer', jsonb_build_object('name', c.first_name || ' ' || c.last_name,
                                                      'msisdn', masked(c.msisdn))))
              INTO v_merchant
              FROM merchant_payments p
              JOIN merchants m ON m.id = p.merchant_id
              JOIN accounts a ON a.id = NEW.debit_account_id
              JOIN customers c ON c.id = a.customer_id
             WHERE p.transfer_id = NEW.id;
        END IF;
        SELECT coalesce(sum(e.amount) FILTER (WHERE e.account_id = NEW.debit_account_id), 0),
               coalesce(sum(e.amount) FILTER (WHERE e.account_id = NEW.credit_account_id), 0)
          INTO v_debited, v_credited
          FROM entries e WHERE e.transfer_id = NEW.id;
        PERFORM ledger_events(v_type, NEW.id, NEW.debit_account_id, NEW.credit_account_id,
            jsonb_build_object('kind', NEW.kind, 'direction', 'debit', 'amount', NEW.amount,
                               'fee', -v_debited - NEW.amount, 'counterparty', account_ref(NEW.credit_account_id))
              || coalesce(v_merchant, '{}'),
            jsonb_build_object('kind', NEW.kind, 'direction', 'credit', 'amount', NEW.amount,
                               'fee', NEW.amount - v_credited, 'counterparty', account_ref(NEW.debit_account_id))
              || coalesce(v_merchant, '{}'));
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

