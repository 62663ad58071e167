-- Reversing a posted transfer: a new transfer of kind 'reversal', linked by
-- `reverses`, that moves the amount back from the payee (and, when asked, the fee back
-- from fee revenue) to the payer, with a receipt to each. At most once per transfer:
-- its idempotency key is derived from the original's id, and `reverses` is unique.

ALTER TABLE transfers ADD COLUMN reason text;

CREATE FUNCTION transfer_reverse(p_original bigint, p_refund_fee boolean, p_reason text)
RETURNS TABLE (outcome text, transfer_id bigint, amount bigint, fee_refunded bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_key text := 'reversal:' || p_original;
    v_orig transfers%ROWTYPE;
    v_prior transfers%ROWTYPE;
    v_id bigint;
    v_fee bigint := 0;
    v_fee_account bigint;
    v_payer record;
    v_payee record;
    v_payer_balance bigint;
    v_payee_balance bigint;
BEGIN
    -- The original is locked first: a second reversal waits here, then finds the first.
    SELECT * INTO v_orig FROM transfers t WHERE t.id = p_original FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::bigint, 0::bigint, 0::bigint;
        RETURN;
    END IF;
    SELECT * INTO v_prior FROM transfers t WHERE t.idempotency_key = v_key;
    IF FOUND THEN
        RETURN QUERY SELECT 'already_reversed'::text, v_prior.id, v_prior.amount,
            (SELECT coalesce(-sum(e.amount), 0)::bigint FROM entries e
               JOIN accounts a ON a.id = e.account_id AND a.kind = 'fee_revenue'
              WHERE e.transfer_id = v_prior.id);
        RETURN;
    END IF;
    IF v_orig.kind <> 'p2p' OR v_orig.status <> 'posted' THEN
        RETURN QUERY SELECT 'not_reversible'::text, NULL::bigint, 0::bigint, 0::bigint;
        RETURN;
    END IF;

    IF p_refund_fee AND v_orig.fee > 0 THEN
        v_fee := v_orig.fee;
        SELECT e.account_id INTO STRICT v_fee_account FROM entries e
          JOIN accounts a ON a.id = e.account_id AND a.kind = 'fee_revenue'
         WHERE e.transfer_id = p_original AND e.amount > 0;
    END IF;
    PERFORM 1 FROM accounts a
     WHERE a.id IN (v_orig.debit_account_id, v_orig.credit_account_id, v_fee_account)
     ORDER BY a.id
       FOR UPDATE;

    -- Only what the payee still has can come back.
    UPDATE accounts a SET balance = a.balance - v_orig.amount
     WHERE a.id = v_orig.credit_account_id AND a.balance - a.held >= v_orig.amount
    RETURNING a.balance INTO v_payee_balance;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'insufficient_funds'::text, NULL::bigint, 0::bigint, 0::bigint;
        RETURN;
    END IF;
    IF v_fee > 0 THEN
        UPDATE accounts a SET balance = a.balance - v_fee WHERE a.id = v_fee_account;
    END IF;
    UPDATE accounts a SET balance = a.balance + v_orig.amount + v_fee
     WHERE a.id = v_orig.debit_account_id
    RETURNING a.balance INTO v_payer_balance;

    INSERT INTO transfers (idempotency_key, request_hash, kind, status, debit_account_id,
                           credit_account_id, amount, reverses, reason, debit_balance_after)
    VALUES (v_key, sha256(convert_to(v_key, 'UTF8')), 'reversal', 'posted',
            v_orig.credit_account_id, v_orig.debit_account_id, v_orig.amount, p_original,
            p_reason, v_payee_balance)
    RETURNING id INTO v_id;
    INSERT INTO entries (transfer_id, account_id, amount)
    VALUES (v_id, v_orig.credit_account_id, -v_orig.amount), (v_id, v_orig.debit_account_id, v_orig.amount);
    IF v_fee > 0 THEN
        INSERT INTO entries (transfer_id, account_id, amount)
        VALUES (v_id, v_fee_account, -v_fee), (v_id, v_orig.debit_account_id, v_fee);
    END IF;

    SELECT c.msisdn, c.language, c.first_name || ' ' || c.last_name AS name INTO STRICT v_payer
      FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE a.id = v_orig.debit_account_id;
    SELECT c.msisdn, c.language, c.first_name || ' ' || c.last_name AS name INTO STRICT v_payee
      FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE a.id = v_orig.credit_account_id;
    -- The original payee is debited ('payer' of the reversal), the original payer credited.
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
        (v_id, 'payer', v_payee.msisdn, v_payee.language, 'reversal_debited',
         jsonb_build_object('ref', transfer_ref(v_id), 'original_ref', transfer_ref(p_original),
                            'amount', v_orig.amount, 'balance', v_payee_balance,
                            'counterparty', v_payer.name, 'counterparty_msisdn', v_payer.msisdn)),
        (v_id, 'payee', v_payer.msisdn, v_payer.language, 'reversal_credited',
         jsonb_build_object('ref', transfer_ref(v_id), 'original_ref', transfer_ref(p_original),
                            'amount', v_orig.amount + v_fee, 'balance', v_payer_balance,
                            'counterparty', v_payee.name, 'counterparty_msisdn', v_payee.msisdn));
    RETURN QUERY SELECT 'ok'::text, v_id, v_orig.amount, v_fee;
END $$;
