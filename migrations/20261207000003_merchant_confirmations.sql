-- A merchant's confirmation endpoint: a webhook of its own (`webhooks.merchant_id`),
-- signed, retried, dead-lettered and replayed as partners' are, that gets only the
-- events of its merchant's settlement accounts (the relay's fan-out joins them by
-- account). A merchant payment's events carry
-- what the merchant needs to apply it: the merchant, its business number or till, the
-- customer's account reference with it, and the customer's name and masked number.

ALTER TABLE webhooks ADD COLUMN merchant_id bigint UNIQUE REFERENCES merchants (id);

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
            WHEN 'merchant_withdrawal' THEN 'merchant.withdrawn'
            WHEN 'funding' THEN 'account.funded'
            ELSE NEW.kind || '.posted' END;
        IF NEW.kind = 'merchant' THEN
            SELECT jsonb_strip_nulls(jsonb_build_object(
                       'merchant', merchant_ref(m.id),
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
        ELSIF NEW.kind = 'merchant_withdrawal' THEN
            SELECT jsonb_build_object('merchant', merchant_ref(s.merchant_id)) INTO v_merchant
              FROM merchant_settlement_shards s WHERE s.account_id = NEW.debit_account_id;
        END IF;
        SELECT coalesce(sum(e.amount) FILTER (WHERE e.account_id = NEW.debit_account_id), 0),
               coalesce(sum(e.amount) FILTER (WHERE e.account_id = NEW.credit_account_id), 0)
          INTO v_debited, v_credited
          FROM entries e WHERE e.transfer_id = NEW.id;
        -- A withdrawal takes the amount from several shards: the debit shard's event says
        -- what it gave (the others have events of their own).
        PERFORM ledger_events(v_type, NEW.id, NEW.debit_account_id, NEW.credit_account_id,
            CASE WHEN NEW.kind = 'merchant_withdrawal'
                 THEN jsonb_build_object('kind', NEW.kind, 'direction', 'debit', 'amount', -v_debited, 'fee', 0,
                                         'counterparty', account_ref(NEW.credit_account_id))
                 ELSE jsonb_build_object('kind', NEW.kind, 'direction', 'debit', 'amount', NEW.amount,
                                         'fee', -v_debited - NEW.amount,
                                         'counterparty', account_ref(NEW.credit_account_id)) END
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
            WHEN 'merchant_withdrawal' THEN 'merchant.withdrawal_rejected'
            ELSE NEW.kind || '.rejected' END;
        PERFORM ledger_events(v_type, NEW.id, NEW.debit_account_id, NULL,
            jsonb_build_object('kind', NEW.kind, 'amount', NEW.amount, 'reason', coalesce(NEW.reject_code, 'rejected')),
            NULL);
    END IF;
    RETURN NULL;
END $$;

