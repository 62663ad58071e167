-- The double-entry ledger: tiers and fee bands as data, immutable transfers,
-- append-only entries, daily usage, and the SMS receipt outbox.

-- Settings the ledger functions read (time zone of the "day" for daily limits, fee shards).
CREATE TABLE ledger_settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO ledger_settings (key, value) VALUES
    ('timezone', 'Africa/Nairobi'),
    ('fee_shards', '8');

-- KYC tiers and their limits, in minor units.
CREATE TABLE kyc_tiers (
    tier             smallint PRIMARY KEY,
    name             text NOT NULL,
    max_per_transfer bigint NOT NULL CHECK (max_per_transfer > 0),
    max_daily_debit  bigint NOT NULL CHECK (max_daily_debit > 0),
    max_balance      bigint NOT NULL CHECK (max_balance > 0)
);
-- Modelled on Kenyan mobile-money limits: KES 250,000 a transfer, 500,000 a day and
-- as balance for a fully verified customer; a lower tier for a phone-only registration.
INSERT INTO kyc_tiers VALUES
    (1, 'basic',      7000000, 14000000, 10000000),
    (2, 'verified',  25000000, 50000000, 50000000);

ALTER TABLE customers
    ADD COLUMN kyc_tier smallint NOT NULL DEFAULT 1 REFERENCES kyc_tiers (tier),
    -- AES-256-GCM(nonce || ciphertext) under the data key from configuration.
    ADD COLUMN national_id_enc bytea,
    -- HMAC-SHA-256 of the normalised ID under a key derived from the data key: lookups
    -- and uniqueness without storing the ID in clear.
    ADD COLUMN national_id_index bytea UNIQUE,
    ADD COLUMN pin_failures integer NOT NULL DEFAULT 0 CHECK (pin_failures >= 0),
    ADD COLUMN pin_locked_until timestamptz;

ALTER TABLE accounts
    ADD COLUMN name text,
    -- Hot system accounts (fee revenue) are split so that transfers do not queue on one row.
    ADD COLUMN shard smallint NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX accounts_system_shards ON accounts (kind, shard) WHERE customer_id IS NULL;

-- Fees by amount band (inclusive bounds, minor units).
CREATE TABLE fee_bands (
    kind       text NOT NULL CHECK (kind IN ('p2p')),
    min_amount bigint NOT NULL CHECK (min_amount > 0),
    max_amount bigint NOT NULL,
    fee        bigint NOT NULL CHECK (fee >= 0),
    PRIMARY KEY (kind, min_amount),
    CHECK (max_amount >= min_amount)
);
-- Send money to a registered user, modelled on a Kenyan tariff: free up to KES 100.
-- Bands are contiguous in minor units (KES 100.01 is in the second band), from KES 1
-- to the KES 250,000 ceiling; an amount outside every band is refused as over the limit.
INSERT INTO fee_bands (kind, min_amount, max_amount, fee) VALUES
    ('p2p',       100,     10000,     0),
    ('p2p',     10001,     50000,   700),
    ('p2p',     50001,    100000,  1300),
    ('p2p',    100001,    150000,  2300),
    ('p2p',    150001,    250000,  3300),
    ('p2p',    250001,    350000,  5300),
    ('p2p',    350001,    500000,  5700),
    ('p2p',    500001,    750000,  7800),
    ('p2p',    750001,   1000000,  9000),
    ('p2p',   1000001,   1500000, 10000),
    ('p2p',   1500001,   2000000, 10500),
    ('p2p',   2000001,  25000000, 10800);

CREATE TABLE transfers (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key  text NOT NULL UNIQUE,
    request_hash     bytea NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('p2p', 'funding', 'reversal')),
    status           text NOT NULL CHECK (status IN ('pending', 'posted', 'rejected')),
    reject_code      text,
    debit_account_id  bigint REFERENCES accounts (id),
    credit_account_id bigint REFERENCES accounts (id),
    amount           bigint NOT NULL CHECK (amount > 0),
    fee              bigint NOT NULL DEFAULT 0 CHECK (fee >= 0),
    reverses         bigint UNIQUE REFERENCES transfers (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'rejected') = (reject_code IS NOT NULL))
);
CREATE INDEX transfers_debit ON transfers (debit_account_id, id) WHERE status = 'posted';
CREATE INDEX transfers_credit ON transfers (credit_account_id, id) WHERE status = 'posted';

-- A short public reference for receipts and statements.
CREATE FUNCTION transfer_ref(id bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'TX' || lpad(upper(to_hex(id)), 8, '0') $$;

CREATE TABLE entries (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transfer_id bigint NOT NULL REFERENCES transfers (id),
    account_id  bigint NOT NULL REFERENCES accounts (id),
    amount      bigint NOT NULL CHECK (amount <> 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX entries_account ON entries (account_id, id);
CREATE INDEX entries_transfer ON entries (transfer_id);

-- Entries are append-only: the database itself refuses to change or remove one.
CREATE FUNCTION refuse_entry_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION refuse_entry_change();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_entry_change();

CREATE TABLE daily_usage (
    account_id bigint NOT NULL REFERENCES accounts (id),
    day        date NOT NULL,
    debited    bigint NOT NULL CHECK (debited >= 0),
    PRIMARY KEY (account_id, day)
);

-- SMS receipts, written in the same transaction as the movement; one per party.
CREATE TABLE outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transfer_id bigint NOT NULL REFERENCES transfers (id),
    role        text NOT NULL CHECK (role IN ('payer', 'payee')),
    msisdn      text NOT NULL,
    language    text NOT NULL,
    template    text NOT NULL,
    data        jsonb NOT NULL,
    status      text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'sent', 'delivered', 'failed', 'expired', 'rejected', 'dead')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (transfer_id, role)
);
CREATE INDEX outbox_queued ON outbox (id) WHERE status = 'queued';

-- System accounts: the funding source for deposits (may go negative: it mirrors money
-- held outside the ledger) and the fee revenue shards.
INSERT INTO accounts (kind, name, currency, allow_negative, shard)
    VALUES ('suspense', 'funding', 'KES', true, 0);
INSERT INTO accounts (kind, name, currency, shard)
    SELECT 'fee_revenue', 'fees', 'KES', s FROM generate_series(0, 7) AS s;

ALTER TABLE transfers ADD COLUMN debit_balance_after bigint;

-- Moves money from the funding account to `p_account` (demo seeding, float top-ups).
-- Idempotent by key; no limits and no receipts.
CREATE FUNCTION ledger_fund(p_key text, p_account bigint, p_amount bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_funding bigint;
BEGIN
    SELECT id INTO STRICT v_funding FROM accounts WHERE kind = 'suspense' AND name = 'funding';
    INSERT INTO transfers (idempotency_key, request_hash, kind, status, debit_account_id,
                           credit_account_id, amount)
    VALUES (p_key, sha256(convert_to(p_account || ':' || p_amount, 'UTF8')), 'funding', 'posted',
            v_funding, p_account, p_amount)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT id INTO STRICT v_id FROM transfers WHERE idempotency_key = p_key;
        RETURN v_id;
    END IF;
    PERFORM 1 FROM accounts WHERE id IN (v_funding, p_account) ORDER BY id FOR UPDATE;
    UPDATE accounts SET balance = balance - p_amount WHERE id = v_funding;
    UPDATE accounts SET balance = balance + p_amount WHERE id = p_account;
    INSERT INTO entries (transfer_id, account_id, amount)
    VALUES (v_id, v_funding, -p_amount), (v_id, p_account, p_amount);
    RETURN v_id;
END $$;

-- Send money between two customers' wallets, in one transaction and one round trip.
--
-- 1. The transfer row is inserted by idempotency key first: a repeat with the same
--    request hash gets the stored outcome (rejections included), a different hash gets
--    'conflict'. A concurrent duplicate waits on the key until the first commits.
-- 2. The legs (payer, payee, fee shard) are locked in ascending id order, so transfers
--    cannot deadlock each other.
-- 3. Tier limits (per transfer, daily debit, payee's maximum balance) are checked under
--    those locks; the debit itself is conditional on available funds.
-- 4. Entries sum to zero; one receipt per party goes to the outbox.
CREATE FUNCTION transfer_p2p(p_key text, p_hash bytea, p_from text, p_to text, p_amount bigint)
RETURNS TABLE (outcome text, transfer_id bigint, fee bigint, payer_balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_prior transfers%ROWTYPE;
    v_party record;
    v_payer record;
    v_payee record;
    v_payer_id bigint;
    v_payee_id bigint;
    v_fee bigint;
    v_fee_account bigint;
    v_day date;
    v_used bigint;
    v_payer_balance bigint;
    v_payee_balance bigint;
    v_code text;
BEGIN
    INSERT INTO transfers (idempotency_key, request_hash, kind, status, amount)
    VALUES (p_key, p_hash, 'p2p', 'pending', p_amount)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT * INTO STRICT v_prior FROM transfers WHERE idempotency_key = p_key;
        IF v_prior.request_hash <> p_hash OR v_prior.kind <> 'p2p' THEN
            RETURN QUERY SELECT 'conflict'::text, v_prior.id, 0::bigint, NULL::bigint;
        ELSE
            RETURN QUERY SELECT coalesce(v_prior.reject_code, 'ok'), v_prior.id, v_prior.fee,
                                v_prior.debit_balance_after;
        END IF;
        RETURN;
    END IF;

    -- Both parties in one statement.
    FOR v_party IN
        SELECT c.msisdn, a.id, a.status, c.first_name, c.last_name, c.language,
               t.max_per_transfer, t.max_daily_debit, t.max_balance
          FROM customers c
          JOIN accounts a ON a.customer_id = c.id AND a.kind = 'wallet'
          JOIN kyc_tiers t ON t.tier = c.kyc_tier
         WHERE c.msisdn IN (p_from, p_to)
    LOOP
        IF v_party.msisdn = p_from THEN
            v_payer := v_party;
            v_payer_id := v_party.id;
        END IF;
        IF v_party.msisdn = p_to THEN
            v_payee := v_party;
            v_payee_id := v_party.id;
        END IF;
    END LOOP;
    IF v_payer_id IS NULL THEN
        v_code := 'not_registered';
    ELSIF v_payee_id IS NULL THEN
        v_code := 'recipient_unknown';
    ELSIF v_payee_id = v_payer_id THEN
        v_code := 'same_account';
    END IF;

    IF v_code IS NULL THEN
        SELECT b.fee INTO v_fee FROM fee_bands b
         WHERE b.kind = 'p2p' AND p_amount BETWEEN b.min_amount AND b.max_amount;
        IF NOT FOUND THEN
            v_code := 'limit_exceeded';
        END IF;
    END IF;

    IF v_code IS NULL THEN
        IF v_fee > 0 THEN
            SELECT a.id INTO STRICT v_fee_account FROM accounts a
             WHERE a.kind = 'fee_revenue' AND a.customer_id IS NULL
               AND a.shard = v_id % (SELECT value::int FROM ledger_settings WHERE key = 'fee_shards');
        END IF;
        PERFORM 1 FROM accounts a
         WHERE a.id IN (v_payer.id, v_payee.id, v_fee_account)
         ORDER BY a.id
           FOR UPDATE;
        -- Statuses are read again under the lock.
        IF EXISTS (SELECT 1 FROM accounts a WHERE a.id IN (v_payer.id, v_payee.id) AND a.status <> 'active') THEN
            v_code := 'account_blocked';
        END IF;
    END IF;

    IF v_code IS NULL THEN
        v_day := (now() AT TIME ZONE (SELECT value FROM ledger_settings WHERE key = 'timezone'))::date;
        SELECT coalesce(sum(u.debited), 0) INTO v_used FROM daily_usage u
         WHERE u.account_id = v_payer.id AND u.day = v_day;
        IF p_amount > v_payer.max_per_transfer OR v_used + p_amount > v_payer.max_daily_debit
           OR (SELECT a.balance FROM accounts a WHERE a.id = v_payee.id) + p_amount > v_payee.max_balance THEN
            v_code := 'limit_exceeded';
        END IF;
    END IF;

    IF v_code IS NULL THEN
        UPDATE accounts a SET balance = a.balance - (p_amount + v_fee)
         WHERE a.id = v_payer.id AND a.balance - a.held >= p_amount + v_fee
        RETURNING a.balance INTO v_payer_balance;
        IF NOT FOUND THEN
            v_code := 'insufficient_funds';
        END IF;
    END IF;

    IF v_code IS NOT NULL THEN
        UPDATE transfers t SET status = 'rejected', reject_code = v_code,
               debit_account_id = v_payer_id, credit_account_id = v_payee_id
         WHERE t.id = v_id;
        RETURN QUERY SELECT v_code, v_id, 0::bigint, NULL::bigint;
        RETURN;
    END IF;

    UPDATE accounts a SET balance = a.balance + p_amount WHERE a.id = v_payee.id
    RETURNING a.balance INTO v_payee_balance;
    INSERT INTO entries (transfer_id, account_id, amount)
    VALUES (v_id, v_payer.id, -p_amount), (v_id, v_payee.id, p_amount);
    IF v_fee > 0 THEN
        UPDATE accounts a SET balance = a.balance + v_fee WHERE a.id = v_fee_account;
        INSERT INTO entries (transfer_id, account_id, amount)
        VALUES (v_id, v_payer.id, -v_fee), (v_id, v_fee_account, v_fee);
    END IF;
    INSERT INTO daily_usage AS u (account_id, day, debited) VALUES (v_payer.id, v_day, p_amount)
    ON CONFLICT (account_id, day) DO UPDATE SET debited = u.debited + excluded.debited;
    UPDATE transfers t SET status = 'posted', fee = v_fee, debit_account_id = v_payer.id,
           credit_account_id = v_payee.id, debit_balance_after = v_payer_balance
     WHERE t.id = v_id;
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
        (v_id, 'payer', p_from, v_payer.language, 'p2p_sent',
         jsonb_build_object('ref', transfer_ref(v_id), 'amount', p_amount, 'fee', v_fee,
                            'balance', v_payer_balance, 'counterparty',
                            v_payee.first_name || ' ' || v_payee.last_name, 'counterparty_msisdn', p_to)),
        (v_id, 'payee', p_to, v_payee.language, 'p2p_received',
         jsonb_build_object('ref', transfer_ref(v_id), 'amount', p_amount, 'balance', v_payee_balance,
                            'counterparty', v_payer.first_name || ' ' || v_payer.last_name,
                            'counterparty_msisdn', p_from));
    RETURN QUERY SELECT 'ok'::text, v_id, v_fee, v_payer_balance;
END $$;
