-- Bill payment. A catalogue of billers (each with a settlement account and how to reach
-- it), and payments that hold the customer's money until the biller answers: paid →
-- posted to the settlement account; rejected → voided; no answer → the payment stays
-- pending and the reconciler asks the biller until it is resolved. A bill's hold never
-- expires on its own: only the biller's answer may release it.

ALTER TABLE fee_bands DROP CONSTRAINT fee_bands_kind_check;
ALTER TABLE fee_bands ADD CONSTRAINT fee_bands_kind_check CHECK (kind IN ('p2p', 'withdrawal', 'bill'));
-- Bill-pay charges, modelled on a Kenyan paybill tariff: free up to KES 100.
INSERT INTO fee_bands (kind, min_amount, max_amount, fee) VALUES
    ('bill',      100,     10000,     0),
    ('bill',    10001,     50000,   500),
    ('bill',    50001,    100000,  1000),
    ('bill',   100001,    250000,  2000),
    ('bill',   250001,    500000,  3400),
    ('bill',   500001,   1000000,  4800),
    ('bill',  1000001,   2000000,  6200),
    ('bill',  2000001,   5000000,  7200),
    ('bill',  5000001,  25000000,  8300);

ALTER TABLE transfers DROP CONSTRAINT transfers_kind_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_kind_check
    CHECK (kind IN ('p2p', 'funding', 'reversal', 'cash_in', 'cash_out', 'float_transfer', 'bill'));

-- One settlement account per biller: the uniqueness of system accounts' shards does
-- not apply to them.
DROP INDEX accounts_system_shards;
CREATE UNIQUE INDEX accounts_system_shards ON accounts (kind, shard)
    WHERE customer_id IS NULL AND kind <> 'biller_settlement';

CREATE TABLE billers (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code                   text NOT NULL UNIQUE CHECK (code ~ '^[A-Z][A-Z0-9]{1,11}$'),
    name                   text NOT NULL CHECK (length(name) BETWEEN 1 AND 30),
    -- The account numbers the biller issues, as a regular expression matched whole.
    account_pattern        text NOT NULL,
    -- What the subscriber is asked for: "meter number".
    account_label          text NOT NULL CHECK (length(account_label) BETWEEN 1 AND 30),
    -- Who pays the bill-pay fee: the customer on top of the amount, or the biller out of it.
    fee_payer              text NOT NULL CHECK (fee_payer IN ('customer', 'biller')),
    settlement_account_id  bigint NOT NULL UNIQUE REFERENCES accounts (id),
    -- The biller's API (the protocol in src/bills/client.rs).
    base_url               text NOT NULL CHECK (base_url ~ '^https?://'),
    timeout_ms             integer NOT NULL DEFAULT 3000 CHECK (timeout_ms BETWEEN 100 AND 30000),
    status                 text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bill_payments (
    transfer_id     bigint PRIMARY KEY REFERENCES transfers (id),
    biller_id       bigint NOT NULL REFERENCES billers (id),
    account_number  text NOT NULL,
    -- The account holder's name as the biller gave it when the number was checked.
    holder          text NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'paid', 'rejected')),
    biller_ref      text,
    -- What the subscriber needs from the biller (a prepaid electricity token).
    token           text,
    reason          text,
    -- Reconciliation: how often the biller was asked, and when next (also the lease a
    -- reconciler holds while it asks).
    checks          integer NOT NULL DEFAULT 0,
    next_check_at   timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    CHECK ((state = 'pending') = (resolved_at IS NULL))
);
CREATE INDEX bill_payments_due ON bill_payments (next_check_at) WHERE state = 'pending';

-- Customer `p_from` pays `p_amount` to `p_account` at biller `p_biller`: the amount (and
-- the fee when the customer pays it) is held, and the payment is pending until
-- `bill_settle`. Idempotent by key like transfer_p2p; tier limits as for a transfer.
CREATE FUNCTION bill_hold(p_key text, p_hash bytea, p_from text, p_biller text, p_account text,
                          p_holder text, p_amount bigint)
RETURNS TABLE (outcome text, transfer_id bigint, fee bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_prior transfers%ROWTYPE;
    v_payer record;
    v_biller billers%ROWTYPE;
    v_fee bigint;
    v_hold bigint;
    v_day date;
    v_used bigint;
    v_code text;
BEGIN
    INSERT INTO transfers (idempotency_key, request_hash, kind, status, amount)
    VALUES (p_key, p_hash, 'bill', 'pending', p_amount)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT * INTO STRICT v_prior FROM transfers WHERE idempotency_key = p_key;
        IF v_prior.request_hash <> p_hash OR v_prior.kind <> 'bill' THEN
            RETURN QUERY SELECT 'conflict'::text, v_prior.id, 0::bigint;
        ELSE
            RETURN QUERY SELECT coalesce(v_prior.reject_code, 'ok'), v_prior.id, v_prior.fee;
        END IF;
        RETURN;
    END IF;

    SELECT a.id AS account, t.max_per_transfer, t.max_daily_debit
      INTO v_payer
      FROM customers c
      JOIN accounts a ON a.customer_id = c.id AND a.kind = 'wallet'
      JOIN kyc_tiers t ON t.tier = c.kyc_tier
     WHERE c.msisdn = p_from;
    SELECT * INTO v_biller FROM billers b WHERE b.code = p_biller;
    IF v_payer.account IS NULL THEN
        v_code := 'not_registered';
    ELSIF v_biller.id IS NULL THEN
        v_code := 'recipient_unknown';
    ELSIF v_biller.status <> 'active' THEN
        v_code := 'account_blocked';
    END IF;

    IF v_code IS NULL THEN
        SELECT b.fee INTO v_fee FROM fee_bands b
         WHERE b.kind = 'bill' AND p_amount BETWEEN b.min_amount AND b.max_amount;
        IF v_fee IS NULL OR (v_biller.fee_payer = 'biller' AND v_fee >= p_amount) THEN
            v_code := 'limit_exceeded';
        END IF;
        v_hold := p_amount + CASE WHEN v_biller.fee_payer = 'customer' THEN v_fee ELSE 0 END;
    END IF;

    IF v_code IS NULL THEN
        PERFORM 1 FROM accounts a WHERE a.id IN (v_payer.account, v_biller.settlement_account_id)
         ORDER BY a.id FOR UPDATE;
        IF EXISTS (SELECT 1 FROM accounts a WHERE a.id IN (v_payer.account, v_biller.settlement_account_id)
                      AND a.status <> 'active') THEN
            v_code := 'account_blocked';
        END IF;
    END IF;

    IF v_code IS NULL THEN
        -- A paid bill posts whatever the limits say by then, so the day's limit counts
        -- the amounts still held as well as those posted (the account lock above
        -- keeps concurrent holds from each seeing room for themselves).
        v_day := (now() AT TIME ZONE (SELECT value FROM ledger_settings WHERE key = 'timezone'))::date;
        SELECT coalesce(sum(u.debited), 0) INTO v_used FROM daily_usage u
         WHERE u.account_id = v_payer.account AND u.day = v_day;
        v_used := v_used + (SELECT coalesce(sum(t.amount), 0) FROM holds h JOIN transfers t ON t.id = h.transfer_id
                             WHERE h.account_id = v_payer.account AND h.resolution IS NULL);
        IF p_amount > v_payer.max_per_transfer OR v_used + p_amount > v_payer.max_daily_debit THEN
            v_code := 'limit_exceeded';
        END IF;
    END IF;

    IF v_code IS NULL THEN
        UPDATE accounts a SET held = a.held + v_hold
         WHERE a.id = v_payer.account AND a.balance - a.held >= v_hold;
        IF NOT FOUND THEN
            v_code := 'insufficient_funds';
        END IF;
    END IF;

    IF v_code IS NOT NULL THEN
        UPDATE transfers t SET status = 'rejected', reject_code = v_code,
               debit_account_id = v_payer.account, credit_account_id = v_biller.settlement_account_id
         WHERE t.id = v_id;
        RETURN QUERY SELECT v_code, v_id, 0::bigint;
        RETURN;
    END IF;

    UPDATE transfers t SET status = 'held', fee = v_fee,
           debit_account_id = v_payer.account, credit_account_id = v_biller.settlement_account_id
     WHERE t.id = v_id;
    INSERT INTO holds (transfer_id, account_id, amount, expires_at)
    VALUES (v_id, v_payer.account, v_hold, 'infinity');
    INSERT INTO bill_payments (transfer_id, biller_id, account_number, holder)
    VALUES (v_id, v_biller.id, p_account, p_holder);
    RETURN QUERY SELECT 'ok'::text, v_id, v_fee;
END $$;

-- The biller's answer about payment `p_transfer`: paid (`p_paid`, with its reference and
-- token) posts the held money — the amount to the settlement account less the fee when
-- the biller pays it, the fee to fee revenue — and sends the receipt; rejected voids the
-- hold and tells the customer why. Exactly once: a settled payment answers its state.
CREATE FUNCTION bill_settle(p_transfer bigint, p_paid boolean, p_biller_ref text, p_token text, p_reason text)
RETURNS TABLE (state text, payer_balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_pay bill_payments%ROWTYPE;
    v_t transfers%ROWTYPE;
    v_hold holds%ROWTYPE;
    v_biller billers%ROWTYPE;
    v_payer record;
    v_fee_account bigint;
    v_fee_from bigint;
    v_day date;
    v_payer_balance bigint;
BEGIN
    SELECT * INTO v_pay FROM bill_payments p WHERE p.transfer_id = p_transfer FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'bill_settle: no payment %', p_transfer;
    END IF;
    SELECT * INTO STRICT v_t FROM transfers t WHERE t.id = p_transfer;
    IF v_pay.state <> 'pending' THEN
        RETURN QUERY SELECT v_pay.state, v_t.debit_balance_after;
        RETURN;
    END IF;
    SELECT * INTO STRICT v_biller FROM billers b WHERE b.id = v_pay.biller_id;
    SELECT c.msisdn, c.language INTO STRICT v_payer
      FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE a.id = v_t.debit_account_id;

    IF NOT p_paid THEN
        PERFORM 1 FROM holds h WHERE h.transfer_id = p_transfer FOR UPDATE;
        PERFORM hold_release(p_transfer, 'voided', NULL);
        UPDATE bill_payments p SET state = 'rejected', reason = p_reason, resolved_at = now()
         WHERE p.transfer_id = p_transfer;
        INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
            (p_transfer, 'payer', v_payer.msisdn, v_payer.language, 'bill_rejected',
             jsonb_build_object('ref', transfer_ref(p_transfer), 'amount', v_t.amount,
                                'biller', v_biller.name, 'account', v_pay.account_number,
                                'reason', coalesce(p_reason, '')));
        RETURN QUERY SELECT 'rejected'::text, NULL::bigint;
        RETURN;
    END IF;

    SELECT * INTO STRICT v_hold FROM holds h WHERE h.transfer_id = p_transfer FOR UPDATE;
    SELECT a.id INTO STRICT v_fee_account FROM accounts a
     WHERE a.kind = 'fee_revenue' AND a.customer_id IS NULL
       AND a.shard = p_transfer % (SELECT value::int FROM ledger_settings WHERE key = 'fee_shards');
    PERFORM 1 FROM accounts a WHERE a.id IN (v_t.debit_account_id, v_t.credit_account_id, v_fee_account)
     ORDER BY a.id FOR UPDATE;
    -- Paid is paid: the biller has the money, so limits and statuses checked at the hold stand.
    UPDATE holds h SET resolution = 'posted', resolved_at = now() WHERE h.transfer_id = p_transfer;
    UPDATE accounts a SET balance = a.balance - v_hold.amount, held = a.held - v_hold.amount
     WHERE a.id = v_t.debit_account_id
    RETURNING a.balance INTO v_payer_balance;
    -- The fee comes from whoever paid it when the money was held (the hold says: on
    -- top of the amount, or not), whatever the biller's setting is now.
    v_fee_from := CASE WHEN v_hold.amount > v_t.amount THEN v_t.debit_account_id ELSE v_t.credit_account_id END;
    UPDATE accounts a SET balance = a.balance + v_t.amount - CASE WHEN v_fee_from = a.id THEN v_t.fee ELSE 0 END
     WHERE a.id = v_t.credit_account_id;
    UPDATE accounts a SET balance = a.balance + v_t.fee WHERE a.id = v_fee_account;
    INSERT INTO entries (transfer_id, account_id, amount)
    VALUES (p_transfer, v_t.debit_account_id, -v_t.amount), (p_transfer, v_t.credit_account_id, v_t.amount);
    IF v_t.fee > 0 THEN
        INSERT INTO entries (transfer_id, account_id, amount)
        VALUES (p_transfer, v_fee_from, -v_t.fee), (p_transfer, v_fee_account, v_t.fee);
    END IF;
    v_day := (now() AT TIME ZONE (SELECT value FROM ledger_settings WHERE key = 'timezone'))::date;
    INSERT INTO daily_usage AS u (account_id, day, debited) VALUES (v_t.debit_account_id, v_day, v_t.amount)
    ON CONFLICT (account_id, day) DO UPDATE SET debited = u.debited + excluded.debited;
    UPDATE transfers t SET status = 'posted', debit_balance_after = v_payer_balance WHERE t.id = p_transfer;
    UPDATE bill_payments p SET state = 'paid', biller_ref = p_biller_ref, token = p_token, resolved_at = now()
     WHERE p.transfer_id = p_transfer;
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
        (p_transfer, 'payer', v_payer.msisdn, v_payer.language, 'bill_paid',
         jsonb_build_object('ref', transfer_ref(p_transfer), 'amount', v_t.amount,
                            'fee', v_hold.amount - v_t.amount,
                            'balance', v_payer_balance, 'biller', v_biller.name,
                            'account', v_pay.account_number, 'biller_ref', coalesce(p_biller_ref, ''),
                            'token', p_token));
    RETURN QUERY SELECT 'paid'::text, v_payer_balance;
END $$;
