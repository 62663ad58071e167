-- Cash-out started by the customer at an agent's store: the customer's wallet pays the
-- amount to the agent's float (the agent hands over cash) and a withdrawal fee by band
-- to fee revenue, of which the agent earns a commission by band.

ALTER TABLE fee_bands DROP CONSTRAINT fee_bands_kind_check;
ALTER TABLE fee_bands ADD CONSTRAINT fee_bands_kind_check CHECK (kind IN ('p2p', 'withdrawal'));

-- Withdrawal fees, modelled on a Kenyan tariff: KES 50 to 250,000 at an agent.
INSERT INTO fee_bands (kind, min_amount, max_amount, fee) VALUES
    ('withdrawal',     5000,    10000,  1100),
    ('withdrawal',    10001,   250000,  2900),
    ('withdrawal',   250001,   350000,  5200),
    ('withdrawal',   350001,   500000,  6900),
    ('withdrawal',   500001,   750000,  8700),
    ('withdrawal',   750001,  1000000, 11500),
    ('withdrawal',  1000001,  1500000, 16700),
    ('withdrawal',  1500001,  2000000, 18500),
    ('withdrawal',  2000001,  3500000, 19700),
    ('withdrawal',  3500001,  5000000, 27800),
    ('withdrawal',  5000001, 25000000, 30900);

-- What the agent earns of each withdrawal fee, by the same bands (never more than the fee).
CREATE TABLE commission_bands (
    kind       text NOT NULL CHECK (kind IN ('withdrawal')),
    min_amount bigint NOT NULL CHECK (min_amount > 0),
    max_amount bigint NOT NULL,
    commission bigint NOT NULL CHECK (commission >= 0),
    PRIMARY KEY (kind, min_amount),
    CHECK (max_amount >= min_amount)
);
INSERT INTO commission_bands (kind, min_amount, max_amount, commission)
    SELECT 'withdrawal', min_amount, max_amount, fee * 2 / 5 FROM fee_bands WHERE kind = 'withdrawal';

ALTER TABLE transfers DROP CONSTRAINT transfers_kind_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_kind_check
    CHECK (kind IN ('p2p', 'funding', 'reversal', 'cash_in', 'cash_out'));
-- The commission a transfer paid its agent, beside the fee it charged.
ALTER TABLE transfers ADD COLUMN commission bigint NOT NULL DEFAULT 0 CHECK (commission >= 0);

-- The customer `p_from` withdraws `p_amount` at store `p_store` of agent `p_agent`.
-- Idempotent by key like transfer_p2p; the customer's tier limits apply as to a
-- transfer; legs locked in ascending id order.
CREATE FUNCTION agent_cash_out(p_key text, p_hash bytea, p_from text, p_agent text, p_store text, p_amount bigint)
RETURNS TABLE (outcome text, transfer_id bigint, fee bigint, payer_balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_prior transfers%ROWTYPE;
    v_payer record;
    v_agent record;
    v_fee bigint;
    v_commission bigint;
    v_fee_account bigint;
    v_day date;
    v_used bigint;
    v_code text;
    v_payer_balance bigint;
    v_float_balance bigint;
BEGIN
    INSERT INTO transfers (idempotency_key, request_hash, kind, status, amount)
    VALUES (p_key, p_hash, 'cash_out', 'pending', p_amount)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT * INTO STRICT v_prior FROM transfers WHERE idempotency_key = p_key;
        IF v_prior.request_hash <> p_hash OR v_prior.kind <> 'cash_out' THEN
            RETURN QUERY SELECT 'conflict'::text, v_prior.id, 0::bigint, NULL::bigint;
        ELSE
            RETURN QUERY SELECT coalesce(v_prior.reject_code, 'ok'), v_prior.id, v_prior.fee,
                                v_prior.debit_balance_after;
        END IF;
        RETURN;
    END IF;

    SELECT a.id AS account, c.id AS customer_id, c.language, c.first_name || ' ' || c.last_name AS name,
           t.max_per_transfer, t.max_daily_debit
      INTO v_payer
      FROM customers c
      JOIN accounts a ON a.customer_id = c.id AND a.kind = 'wallet'
      JOIN kyc_tiers t ON t.tier = c.kyc_tier
     WHERE c.msisdn = p_from;
    SELECT g.float_account_id AS account, g.commission_account_id AS commission_account, g.customer_id,
           g.agent_number, g.name, g.status, s.name AS store, c.msisdn, c.language
      INTO v_agent
      FROM agents g
      JOIN agent_stores s ON s.agent_id = g.id AND s.store_number = p_store
      JOIN customers c ON c.id = g.customer_id
     WHERE g.agent_number = p_agent;
    IF v_payer.account IS NULL THEN
        v_code := 'not_registered';
    ELSIF v_agent.account IS NULL THEN
        v_code := 'recipient_unknown';
    ELSIF v_agent.customer_id = v_payer.customer_id THEN
        v_code := 'same_account';
    END IF;

    IF v_code IS NULL THEN
        SELECT b.fee INTO v_fee FROM fee_bands b
         WHERE b.kind = 'withdrawal' AND p_amount BETWEEN b.min_amount AND b.max_amount;
        SELECT b.commission INTO v_commission FROM commission_bands b
         WHERE b.kind = 'withdrawal' AND p_amount BETWEEN b.min_amount AND b.max_amount;
        IF v_fee IS NULL OR v_commission IS NULL OR v_commission > v_fee THEN
            v_code := 'limit_exceeded';
        END IF;
    END IF;

    IF v_code IS NULL THEN
        SELECT a.id INTO STRICT v_fee_account FROM accounts a
         WHERE a.kind = 'fee_revenue' AND a.customer_id IS NULL
           AND a.shard = v_id % (SELECT value::int FROM ledger_settings WHERE key = 'fee_shards');
        PERFORM 1 FROM accounts a
         WHERE a.id IN (v_payer.account, v_agent.account, v_agent.commission_account, v_fee_account)
         ORDER BY a.id
           FOR UPDATE;
        IF v_agent.status <> 'active' OR EXISTS (
               SELECT 1 FROM accounts a WHERE a.id IN (v_payer.account, v_agent.account, v_agent.commission_account)
                  AND a.status <> 'active') THEN
            v_code := 'account_blocked';
        END IF;
    END IF;

    IF v_code IS NULL THEN
        v_day := (now() AT TIME ZONE (SELECT value FROM ledger_settings WHERE key = 'timezone'))::date;
        SELECT coalesce(sum(u.debited), 0) INTO v_used FROM daily_usage u
         WHERE u.account_id = v_payer.account AND u.day = v_day;
        IF p_amount > v_payer.max_per_transfer OR v_used + p_amount > v_payer.max_daily_debit THEN
            v_code := 'limit_exceeded';
        END IF;
    END IF;

    IF v_code IS NULL THEN
        UPDATE accounts a SET balance = a.balance - (p_amount + v_fee)
         WHERE a.id = v_payer.account AND a.balance - a.held >= p_amount + v_fee
        RETURNING a.balance INTO v_payer_balance;
        IF NOT FOUND THEN
            v_code := 'insufficient_funds';
        END IF;
    END IF;

    IF v_code IS NOT NULL THEN
        UPDATE transfers t SET status = 'rejected', reject_code = v_code,
               debit_account_id = v_payer.account, credit_account_id = v_agent.account
         WHERE t.id = v_id;
        RETURN QUERY SELECT v_code, v_id, 0::bigint, NULL::bigint;
        RETURN;
    END IF;

    UPDATE accounts a SET balance = a.balance + p_amount WHERE a.id = v_agent.account
    RETURNING a.balance INTO v_float_balance;
    UPDATE accounts a SET balance = a.balance + (v_fee - v_commission) WHERE a.id = v_fee_account;
    UPDATE accounts a SET balance = a.balance + v_commission WHERE a.id = v_agent.commission_account;
    INSERT INTO entries (transfer_id, account_id, amount)
    VALUES (v_id, v_payer.account, -p_amount), (v_id, v_agent.account, p_amount);
    IF v_fee > 0 THEN
        INSERT INTO entries (transfer_id, account_id, amount)
        VALUES (v_id, v_payer.account, -v_fee), (v_id, v_fee_account, v_fee);
    END IF;
    IF v_commission > 0 THEN
        INSERT INTO entries (transfer_id, account_id, amount)
        VALUES (v_id, v_fee_account, -v_commission), (v_id, v_agent.commission_account, v_commission);
    END IF;
    INSERT INTO daily_usage AS u (account_id, day, debited) VALUES (v_payer.account, v_day, p_amount)
    ON CONFLICT (account_id, day) DO UPDATE SET debited = u.debited + excluded.debited;
    UPDATE transfers t SET status = 'posted', fee = v_fee, commission = v_commission,
           debit_account_id = v_payer.account, credit_account_id = v_agent.account,
           debit_balance_after = v_payer_balance
     WHERE t.id = v_id;
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
        (v_id, 'payer', p_from, v_payer.language, 'cash_out_withdrawn',
         jsonb_build_object('ref', transfer_ref(v_id), 'amount', p_amount, 'fee', v_fee,
                            'balance', v_payer_balance, 'agent', v_agent.name,
                            'agent_number', v_agent.agent_number, 'store', v_agent.store)),
        (v_id, 'payee', v_agent.msisdn, v_agent.language, 'cash_out_paid',
         jsonb_build_object('ref', transfer_ref(v_id), 'amount', p_amount, 'balance', v_float_balance,
                            'commission', v_commission, 'counterparty', v_payer.name,
                            'counterparty_msisdn', p_from));
    RETURN QUERY SELECT 'ok'::text, v_id, v_fee, v_payer_balance;
END $$;
