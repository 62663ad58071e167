-- Hot accounts: every bill payment to one biller credited (and locked) its one
-- settlement account, and every funding movement debited the one funding account, so
-- each serialised all movements of its kind. Both are spread over `settlement_shards`
-- accounts (a setting, SETTLEMENT_SHARDS, as fee revenue is over `fee_shards`); a
-- payment's shard is its transfer id modulo the count, a funding's a hash of its key.
-- A biller's settlement balance is the sum of its shards.

INSERT INTO ledger_settings (key, value) VALUES ('settlement_shards', '8');

-- A biller's settlement accounts by shard; shard 0 is `billers.settlement_account_id`.
CREATE TABLE biller_settlement_shards (
    biller_id  bigint NOT NULL REFERENCES billers (id),
    shard      smallint NOT NULL CHECK (shard >= 0),
    account_id bigint NOT NULL UNIQUE REFERENCES accounts (id),
    PRIMARY KEY (biller_id, shard)
);

-- Sets the count (when given) and opens the shards billers and funding lack; returns
-- how many biller shards it opened.
CREATE OR REPLACE FUNCTION settlement_shards_open(p_shards smallint DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_shards int;
    v_opened int;
BEGIN
    -- Replicas starting at once with a raised count open the accounts one at a time.
    PERFORM pg_advisory_xact_lock(hashtext('settlement_shards_open'));
    IF p_shards IS NOT NULL THEN
        UPDATE ledger_settings SET value = p_shards::text WHERE key = 'settlement_shards';
    END IF;
    v_shards := (SELECT value::int FROM ledger_settings WHERE key = 'settlement_shards');
    INSERT INTO biller_settlement_shards (biller_id, shard, account_id)
    SELECT b.id, 0, b.settlement_account_id FROM billers b
    ON CONFLICT DO NOTHING;
    WITH missing AS (
        SELECT b.id AS biller_id, b.code, s.shard, a.currency
          FROM billers b
          JOIN accounts a ON a.id = b.settlement_account_id
         CROSS JOIN generate_series(1, v_shards - 1) AS s (shard)
         WHERE NOT EXISTS (SELECT 1 FROM biller_settlement_shards x WHERE x.biller_id = b.id AND x.shard = s.shard)
    ), opened AS (
        INSERT INTO accounts (kind, currency, name, shard)
        SELECT 'biller_settlement', m.currency, 'biller ' || m.code, m.shard FROM missing m
        RETURNING id, name, shard
    )
    INSERT INTO biller_settlement_shards (biller_id, shard, account_id)
    SELECT m.biller_id, o.shard, o.id FROM opened o JOIN missing m ON 'biller ' || m.code = o.name AND m.shard = o.shard;
    GET DIAGNOSTICS v_opened = ROW_COUNT;
    INSERT INTO accounts (kind, currency, name, allow_negative, shard)
    SELECT 'suspense', f.currency, 'funding', true, s
      FROM generate_series(1, v_shards - 1) AS s,
           (SELECT currency FROM accounts WHERE kind = 'suspense' AND name = 'funding' AND shard = 0) f
    ON CONFLICT DO NOTHING;
    RETURN v_opened;
END $$;

-- A biller registered later gets its shards at once.
CREATE OR REPLACE FUNCTION billers_open_shards() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM settlement_shards_open();
    RETURN NULL;
END $$;

CREATE TRIGGER billers_open_shards AFTER INSERT ON billers
    FOR EACH STATEMENT EXECUTE FUNCTION billers_open_shards();

SELECT settlement_shards_open();

-- A bill: the amount (and the fee the customer pays) held until the biller answers.
CREATE OR REPLACE FUNCTION bill_hold(p_key text, p_hash bytea, p_from text, p_biller text, p_account text,
                                     p_holder text, p_amount bigint)
RETURNS TABLE (outcome text, transfer_id bigint, fee bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_payer record;
    v_biller billers%ROWTYPE;
    v_fee bigint;
    v_hold bigint;
    v_code text;
    v_settle bigint;
BEGIN
    v_id := ledger_claim(p_key, p_hash, 'bill', p_amount);
    IF v_id IS NULL THEN
        RETURN QUERY SELECT r.outcome, r.transfer_id, r.fee FROM ledger_replay(p_key, p_hash, 'bill') r;
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

    -- The biller's settlement shard this payment credits (shard 0 until the others open).
    SELECT coalesce((SELECT s.account_id FROM biller_settlement_shards s
                      WHERE s.biller_id = v_biller.id
                        AND s.shard = v_id % (SELECT x.value::int FROM ledger_settings x WHERE x.key = 'settlement_shards')),
                    v_biller.settlement_account_id)
      INTO v_settle;

    IF v_code IS NULL THEN
        SELECT b.fee INTO v_fee FROM fee_bands b
         WHERE b.kind = 'bill' AND p_amount BETWEEN b.min_amount AND b.max_amount;
        IF v_fee IS NULL OR (v_biller.fee_payer = 'biller' AND v_fee >= p_amount) THEN
            v_code := 'limit_exceeded';
        END IF;
        v_hold := p_amount + CASE WHEN v_biller.fee_payer = 'customer' THEN v_fee ELSE 0 END;
    END IF;

    IF v_code IS NULL THEN
        IF NOT ledger_lock(v_payer.account, v_settle) THEN
            v_code := 'account_blocked';
        -- A paid bill posts whatever the limits say by then, so the day's limit counts
        -- the amounts still held as well as those posted (the account lock above keeps
        -- concurrent holds from each seeing room for themselves).
        ELSIF ledger_over_limit(v_payer.account, p_amount, v_payer.max_per_transfer, v_payer.max_daily_debit,
                                (SELECT coalesce(sum(t.amount), 0)::bigint FROM holds h JOIN transfers t ON t.id = h.transfer_id
                                  WHERE h.account_id = v_payer.account AND h.resolution IS NULL)) THEN
            v_code := 'limit_exceeded';
        ELSIF NOT ledger_hold_funds(v_payer.account, v_hold) THEN
            v_code := 'insufficient_funds';
        END IF;
    END IF;

    IF v_code IS NOT NULL THEN
        RETURN QUERY SELECT ledger_reject(v_id, v_code, v_payer.account, v_settle), v_id,
                            0::bigint;
        RETURN;
    END IF;

    UPDATE transfers t SET status = 'held', fee = v_fee,
           debit_account_id = v_payer.account, credit_account_id = v_settle
     WHERE t.id = v_id;
    INSERT INTO holds (transfer_id, account_id, amount, expires_at)
    VALUES (v_id, v_payer.account, v_hold, 'infinity');
    INSERT INTO bill_payments (transfer_id, biller_id, account_number, holder)
    VALUES (v_id, v_biller.id, p_account, p_holder);
    RETURN QUERY SELECT 'ok'::text, v_id, v_fee;
END $$;

-- Money into an account from the funding suspense account (demo data, top-ups).
CREATE OR REPLACE FUNCTION ledger_fund(p_key text, p_account bigint, p_amount bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_funding bigint;
BEGIN
    -- One of the funding shards, by the key (shard 0 until the others open).
    SELECT coalesce(
               (SELECT a.id FROM accounts a
                 WHERE a.kind = 'suspense' AND a.name = 'funding' AND a.customer_id IS NULL
                   AND a.shard = abs(hashtext(p_key)::bigint)
                                 % (SELECT x.value::int FROM ledger_settings x WHERE x.key = 'settlement_shards')),
               (SELECT a.id FROM accounts a
                 WHERE a.kind = 'suspense' AND a.name = 'funding' AND a.customer_id IS NULL AND a.shard = 0))
      INTO v_funding;
    IF v_funding IS NULL THEN
        RAISE EXCEPTION 'ledger_fund: there is no funding account';
    END IF;
    INSERT INTO transfers (idempotency_key, request_hash, kind, status, debit_account_id,
                           credit_account_id, amount)
    VALUES (p_key, sha256(convert_to(p_account || ':' || p_amount, 'UTF8')), 'funding', 'posted',
            v_funding, p_account, p_amount)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT t.id INTO STRICT v_id FROM transfers t WHERE t.idempotency_key = p_key;
        RETURN v_id;
    END IF;
    PERFORM ledger_lock(v_funding, p_account);
    PERFORM ledger_leg(v_id, v_funding, p_account, p_amount);
    RETURN v_id;
END $$;
