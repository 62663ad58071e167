-- One agent moves float to another (a super-agent restocking a shop, two shops of one
-- owner): float to float, no fee, a receipt to each.

ALTER TABLE transfers DROP CONSTRAINT transfers_kind_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_kind_check
    CHECK (kind IN ('p2p', 'funding', 'reversal', 'cash_in', 'cash_out', 'float_transfer'));

CREATE FUNCTION agent_float_transfer(p_key text, p_hash bytea, p_from text, p_to_agent text, p_amount bigint)
RETURNS TABLE (outcome text, transfer_id bigint, float_balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_prior transfers%ROWTYPE;
    v_from record;
    v_to record;
    v_code text;
    v_from_balance bigint;
    v_to_balance bigint;
BEGIN
    INSERT INTO transfers (idempotency_key, request_hash, kind, status, amount)
    VALUES (p_key, p_hash, 'float_transfer', 'pending', p_amount)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT * INTO STRICT v_prior FROM transfers WHERE idempotency_key = p_key;
        IF v_prior.request_hash <> p_hash OR v_prior.kind <> 'float_transfer' THEN
            RETURN QUERY SELECT 'conflict'::text, v_prior.id, NULL::bigint;
        ELSE
            RETURN QUERY SELECT coalesce(v_prior.reject_code, 'ok'), v_prior.id, v_prior.debit_balance_after;
        END IF;
        RETURN;
    END IF;

    SELECT g.float_account_id AS account, g.agent_number, g.name, g.status, c.msisdn, c.language
      INTO v_from
      FROM agents g JOIN customers c ON c.id = g.customer_id WHERE c.msisdn = p_from;
    SELECT g.float_account_id AS account, g.agent_number, g.name, g.status, c.msisdn, c.language
      INTO v_to
      FROM agents g JOIN customers c ON c.id = g.customer_id WHERE g.agent_number = p_to_agent;
    IF v_from.account IS NULL THEN
        v_code := 'not_agent';
    ELSIF v_to.account IS NULL THEN
        v_code := 'recipient_unknown';
    ELSIF v_to.account = v_from.account THEN
        v_code := 'same_account';
    END IF;

    IF v_code IS NULL THEN
        PERFORM 1 FROM accounts a WHERE a.id IN (v_from.account, v_to.account) ORDER BY a.id FOR UPDATE;
        IF v_from.status <> 'active' OR v_to.status <> 'active' OR EXISTS (
               SELECT 1 FROM accounts a WHERE a.id IN (v_from.account, v_to.account) AND a.status <> 'active') THEN
            v_code := 'account_blocked';
        END IF;
    END IF;

    IF v_code IS NULL THEN
        UPDATE accounts a SET balance = a.balance - p_amount
         WHERE a.id = v_from.account AND a.balance - a.held >= p_amount
        RETURNING a.balance INTO v_from_balance;
        IF NOT FOUND THEN
            v_code := 'insufficient_funds';
        END IF;
    END IF;

    IF v_code IS NOT NULL THEN
        UPDATE transfers t SET status = 'rejected', reject_code = v_code,
               debit_account_id = v_from.account, credit_account_id = v_to.account
         WHERE t.id = v_id;
        RETURN QUERY SELECT v_code, v_id, NULL::bigint;
        RETURN;
    END IF;

    UPDATE accounts a SET balance = a.balance + p_amount WHERE a.id = v_to.account
    RETURNING a.balance INTO v_to_balance;
    INSERT INTO entries (transfer_id, account_id, amount)
    VALUES (v_id, v_from.account, -p_amount), (v_id, v_to.account, p_amount);
    UPDATE transfers t SET status = 'posted', debit_account_id = v_from.account,
           credit_account_id = v_to.account, debit_balance_after = v_from_balance
     WHERE t.id = v_id;
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
        (v_id, 'payer', v_from.msisdn, v_from.language, 'float_sent',
         jsonb_build_object('ref', transfer_ref(v_id), 'amount', p_amount, 'balance', v_from_balance,
                            'agent', v_to.name, 'agent_number', v_to.agent_number)),
        (v_id, 'payee', v_to.msisdn, v_to.language, 'float_received',
         jsonb_build_object('ref', transfer_ref(v_id), 'amount', p_amount, 'balance', v_to_balance,
                            'agent', v_from.name, 'agent_number', v_from.agent_number));
    RETURN QUERY SELECT 'ok'::text, v_id, v_from_balance;
END $$;
