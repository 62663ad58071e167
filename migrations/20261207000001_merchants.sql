-- Merchants: Buy Goods (a till at a store's counter) and Paybill (a business number
-- and the customer's account with the business). A payment is one movement, posted at
-- once: the amount from the customer's wallet to the merchant's settlement account
-- (spread over `settlement_shards` accounts, as a biller's is: every payment at a busy
-- till would otherwise lock the one row), the fee to fee revenue from whoever its
-- fee payer says — the merchant for a till, the customer, the merchant or both halves
-- for a paybill. A merchant's fee is a band of its fee class: a fixed part plus a rate,
-- capped.

ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check
    CHECK (kind IN ('wallet', 'agent_float', 'agent_commission', 'biller_settlement', 'merchant_settlement',
                    'fee_revenue', 'suspense'));

-- Each merchant has settlement accounts of its own, shard by shard.
DROP INDEX accounts_system_shards;
CREATE UNIQUE INDEX accounts_system_shards ON accounts (kind, shard)
    WHERE customer_id IS NULL AND kind NOT IN ('biller_settlement', 'merchant_settlement');

ALTER TABLE transfers DROP CONSTRAINT transfers_kind_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_kind_check
    CHECK (kind IN ('p2p', 'funding', 'reversal', 'cash_in', 'cash_out', 'float_transfer', 'bill', 'merchant'));

CREATE TABLE merchant_fee_classes (
    class        text PRIMARY KEY CHECK (class ~ '^[a-z][a-z0-9_]{0,29}$'),
    description  text NOT NULL
);

-- A payment of `min_amount` to `max_amount` costs `fixed` plus `rate_bp` hundredths of
-- a percent of the amount (rounded down), at most `max_fee`. Where bands of a class
-- overlap, the one starting highest applies.
CREATE TABLE merchant_fee_bands (
    class       text NOT NULL REFERENCES merchant_fee_classes (class),
    min_amount  bigint NOT NULL CHECK (min_amount > 0),
    max_amount  bigint NOT NULL,
    fixed       bigint NOT NULL DEFAULT 0 CHECK (fixed >= 0),
    rate_bp     integer NOT NULL DEFAULT 0 CHECK (rate_bp BETWEEN 0 AND 10000),
    max_fee     bigint CHECK (max_fee >= 0),
    PRIMARY KEY (class, min_amount),
    CHECK (max_amount >= min_amount)
);

-- Modelled on Kenyan merchant tariffs: Buy Goods free to the merchant up to KES 100,
-- then 0.5% capped at KES 200; a paybill tariff of fixed charges by band.
INSERT INTO merchant_fee_classes (class, description) VALUES
    ('standard', 'free up to 100.00, then 0.5% capped at 200.00'),
    ('tariff', 'fixed charges by band, as for bills'),
    ('free', 'no charge (public services, charities)');
INSERT INTO merchant_fee_bands (class, min_amount, max_amount, fixed, rate_bp, max_fee) VALUES
    ('standard',       1,              10000,    0,  0, NULL),
    ('standard',   10001, 9000000000000000000,    0, 50, 20000),
    ('tariff',         1,              10000,    0,  0, NULL),
    ('tariff',     10001,              50000,  500,  0, NULL),
    ('tariff',     50001,             100000, 1000,  0, NULL),
    ('tariff',    100001,             250000, 2000,  0, NULL),
    ('tariff',    250001,             500000, 3400,  0, NULL),
    ('tariff',    500001,            1000000, 4800,  0, NULL),
    ('tariff',   1000001,            2000000, 6200,  0, NULL),
    ('tariff',   2000001,            5000000, 7200,  0, NULL),
    ('tariff',   5000001,           25000000, 8300,  0, NULL),
    ('free',           1, 9000000000000000000,    0,  0, NULL);

-- The fee of a payment of `p_amount` to a merchant of `p_class`; NULL when no band
-- takes the amount.
CREATE FUNCTION merchant_fee(p_class text, p_amount bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT least(b.fixed + floor(p_amount::numeric * b.rate_bp / 10000)::bigint, coalesce(b.max_fee, b.fixed + p_amount))
      FROM merchant_fee_bands b
     WHERE b.class = p_class AND p_amount BETWEEN b.min_amount AND b.max_amount
     ORDER BY b.min_amount DESC
     LIMIT 1
$$;

CREATE TABLE merchants (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind                   text NOT NULL CHECK (kind IN ('till', 'paybill')),
    -- What a paybill's customers type; a till merchant is paid at its tills' numbers.
    business_number        text UNIQUE CHECK (business_number ~ '^[0-9]{5,7}$'),
    legal_name             text NOT NULL CHECK (length(legal_name) BETWEEN 1 AND 100),
    -- What subscribers see before they pay, and on their receipts.
    display_name           text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 30),
    -- The customer whose wallet the settlement is withdrawn to.
    owner_id               bigint NOT NULL REFERENCES customers (id),
    -- Who is told of each payment, in which language.
    notify_msisdn          text NOT NULL CHECK (notify_msisdn ~ '^\+[1-9][0-9]{6,14}$'),
    language               text NOT NULL DEFAULT 'en' CHECK (language ~ '^[a-z]{2,3}$'),
    fee_class              text NOT NULL REFERENCES merchant_fee_classes (class),
    fee_payer              text NOT NULL CHECK (fee_payer IN ('customer', 'merchant', 'split')),
    -- A paybill's account numbers, as a regular expression matched whole (checked by
    -- the gateway, in Rust's syntax), and what customers are asked for.
    account_pattern        text,
    account_label          text CHECK (length(account_label) BETWEEN 1 AND 20),
    settlement_account_id  bigint NOT NULL UNIQUE REFERENCES accounts (id),
    status                 text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at             timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'paybill') = (business_number IS NOT NULL)),
    CHECK ((kind = 'paybill') = (account_pattern IS NOT NULL AND account_label IS NOT NULL)),
    -- Buy Goods costs the customer nothing.
    CHECK (kind = 'paybill' OR fee_payer = 'merchant')
);

-- A merchant as the admin API and events name it (`MC0000002A`), written as transfer
-- references are.
CREATE FUNCTION merchant_ref(id bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'MC' || CASE WHEN id < 4294967296 THEN lpad(upper(to_hex(id)), 8, '0')
                                                 ELSE upper(to_hex(id)) END $$;

CREATE TABLE merchant_stores (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id    bigint NOT NULL REFERENCES merchants (id),
    store_number   text NOT NULL CHECK (store_number ~ '^[0-9]{1,7}$'),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 30),
    -- Told of the payments at this store's tills instead of the merchant's number.
    notify_msisdn  text CHECK (notify_msisdn ~ '^\+[1-9][0-9]{6,14}$'),
    UNIQUE (merchant_id, store_number)
);

-- A till: one counter of a store.
CREATE TABLE merchant_tills (
    till_number  text PRIMARY KEY CHECK (till_number ~ '^[0-9]{5,7}$'),
    store_id     bigint NOT NULL REFERENCES merchant_stores (id)
);
CREATE INDEX merchant_tills_store ON merchant_tills (store_id);

-- What each payment was for: the merchant's statement, its confirmations.
CREATE TABLE merchant_payments (
    transfer_id        bigint PRIMARY KEY REFERENCES transfers (id),
    merchant_id        bigint NOT NULL REFERENCES merchants (id),
    till_number        text REFERENCES merchant_tills (till_number),
    account_reference  text,
    CHECK ((till_number IS NULL) <> (account_reference IS NULL))
);
CREATE INDEX merchant_payments_merchant ON merchant_payments (merchant_id, transfer_id DESC);

-- A merchant's settlement accounts by shard; shard 0 is `merchants.settlement_account_id`.
CREATE TABLE merchant_settlement_shards (
    merchant_id  bigint NOT NULL REFERENCES merchants (id),
    shard        smallint NOT NULL CHECK (shard >= 0),
    account_id   bigint NOT NULL UNIQUE REFERENCES accounts (id),
    PRIMARY KEY (merchant_id, shard)
);

-- Settlement accounts are parties: each numbers its events.
CREATE OR REPLACE FUNCTION ledger_events(p_type text, p_transfer bigint, p_debit bigint, p_credit bigint,
                                         p_debit_data jsonb, p_credit_data jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH numbered AS (
        UPDATE accounts a SET event_seq = a.event_seq + 1
         WHERE a.id IN (p_debit, p_credit)
           AND a.kind IN ('wallet', 'agent_float', 'biller_settlement', 'merchant_settlement')
        RETURNING a.id, a.event_seq, a.currency),
    written AS (
        INSERT INTO events (type, subject, account_id, sequence, data)
        SELECT p_type, transfer_ref(p_transfer), n.id, n.event_seq,
               CASE WHEN n.id = p_debit THEN p_debit_data ELSE p_credit_data END
                 || jsonb_build_object('transfer', transfer_ref(p_transfer), 'account', account_ref(n.id),
                                       'currency', n.currency)
          FROM numbered n
         ORDER BY n.id <> p_debit
        RETURNING id, account_id)
    INSERT INTO event_outbox (event_id, part)
    SELECT w.id, (w.account_id % 16)::smallint FROM written w;
END $$;

-- Opens the settlement shards merchants lack, as `settlement_shards_open` does for
-- billers (it calls this); returns how many it opened.
CREATE FUNCTION merchant_shards_open(p_shards int) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_opened int;
BEGIN
    INSERT INTO merchant_settlement_shards (merchant_id, shard, account_id)
    SELECT m.id, 0, m.settlement_account_id FROM merchants m
    ON CONFLICT DO NOTHING;
    WITH missing AS (
        SELECT m.id AS merchant_id, s.shard, a.currency
          FROM merchants m
          JOIN accounts a ON a.id = m.settlement_account_id
         CROSS JOIN generate_series(1, p_shards - 1) AS s (shard)
         WHERE NOT EXISTS (SELECT 1 FROM merchant_settlement_shards x WHERE x.merchant_id = m.id AND x.shard = s.shard)
    ), opened AS (
        INSERT INTO accounts (kind, currency, name, shard)
        SELECT 'merchant_settlement', m.currency, 'merchant ' || m.merchant_id, m.shard FROM missing m
        RETURNING id, name, shard
    )
    INSERT INTO merchant_settlement_shards (merchant_id, shard, account_id)
    SELECT m.merchant_id, o.shard, o.id FROM opened o JOIN missing m ON 'merchant ' || m.merchant_id = o.name AND m.shard = o.shard;
    GET DIAGNOSTICS v_opened = ROW_COUNT;
    RETURN v_opened;
END $$;

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
    RETURN v_opened + merchant_shards_open(v_shards);
END $$;

-- A merchant onboarded later gets its shards at once, under the lock that makes a
-- raised count and its new accounts one change.
CREATE FUNCTION merchants_open_shards() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM settlement_shards_open();
    RETURN NULL;
END $$;

CREATE TRIGGER merchants_open_shards AFTER INSERT ON merchants
    FOR EACH STATEMENT EXECUTE FUNCTION merchants_open_shards();

-- Who a payment goes to: the merchant behind till `p_number` (`p_kind` 'till') or
-- business number `p_number` ('paybill'), with the store a till is at and the number
-- told of payments there. No row when there is none.
CREATE FUNCTION merchant_target(p_kind text, p_number text)
RETURNS TABLE (merchant_id bigint, display_name text, store text, status text, fee_class text, fee_payer text,
               settlement_account_id bigint, owner_id bigint, notify_msisdn text, language text)
LANGUAGE sql STABLE AS $$
    SELECT m.id, m.display_name, s.name, m.status, m.fee_class, m.fee_payer, m.settlement_account_id, m.owner_id,
           coalesce(s.notify_msisdn, m.notify_msisdn), m.language
      FROM merchant_tills t
      JOIN merchant_stores s ON s.id = t.store_id
      JOIN merchants m ON m.id = s.merchant_id
     WHERE p_kind = 'till' AND t.till_number = p_number
    UNION ALL
    SELECT m.id, m.display_name, NULL, m.status, m.fee_class, m.fee_payer, m.settlement_account_id, m.owner_id,
           m.notify_msisdn, m.language
      FROM merchants m
     WHERE p_kind = 'paybill' AND m.kind = 'paybill' AND m.business_number = p_number
$$;

-- The part of fee `p_fee` the customer pays on top of the amount, by `p_payer`; the
-- merchant pays the rest out of it (half each, the odd minor unit the merchant's).
CREATE FUNCTION merchant_customer_fee(p_payer text, p_fee bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_payer WHEN 'customer' THEN p_fee WHEN 'split' THEN p_fee / 2 ELSE 0 END
$$;

-- Pays merchant `p_number` (a till, or a paybill with the customer's account
-- `p_account` there) `p_amount` from `p_from`'s wallet: one movement, a receipt to the
-- customer and one to the number the merchant is told at. `fee` in the answer is what
-- the customer paid. `p_account_ok`: whether the account has the paybill's pattern
-- (checked by the caller, in the pattern's own syntax); refused under the key, so a
-- replay answers as the first call did whatever the pattern is by then.
CREATE FUNCTION merchant_pay(p_key text, p_hash bytea, p_from text, p_kind text, p_number text,
                             p_account text, p_amount bigint, p_account_ok boolean)
RETURNS TABLE (outcome text, transfer_id bigint, fee bigint, payer_balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_payer record;
    v_m record;
    v_code text;
    v_fee bigint;
    v_customer_fee bigint := 0;
    v_settle bigint;
    v_fee_account bigint;
    v_payer_balance bigint;
BEGIN
    v_id := ledger_claim(p_key, p_hash, 'merchant', p_amount);
    IF v_id IS NULL THEN
        -- The customer's fee is what their entries took beyond the amount.
        RETURN QUERY
            SELECT r.outcome, r.transfer_id,
                   CASE WHEN r.outcome = 'ok'
                        THEN (SELECT -sum(e.amount)::bigint - t.amount FROM transfers t
                                JOIN entries e ON e.transfer_id = t.id AND e.account_id = t.debit_account_id
                               WHERE t.id = r.transfer_id GROUP BY t.amount)
                        ELSE 0::bigint END,
                   r.balance
              FROM ledger_replay(p_key, p_hash, 'merchant') r;
        RETURN;
    END IF;

    SELECT c.id AS customer, a.id AS account, c.first_name || ' ' || c.last_name AS name, c.language,
           t.max_per_transfer, t.max_daily_debit
      INTO v_payer
      FROM customers c
      JOIN accounts a ON a.customer_id = c.id AND a.kind = 'wallet'
      JOIN kyc_tiers t ON t.tier = c.kyc_tier
     WHERE c.msisdn = p_from;
    SELECT * INTO v_m FROM merchant_target(p_kind, p_number);
    IF v_payer.account IS NULL THEN
        v_code := 'not_registered';
    ELSIF v_m.merchant_id IS NULL THEN
        v_code := 'recipient_unknown';
    ELSIF v_m.status <> 'active' THEN
        v_code := 'account_blocked';
    ELSIF v_m.owner_id = v_payer.customer THEN
        v_code := 'same_account';
    ELSIF NOT p_account_ok THEN
        v_code := 'account_invalid';
    END IF;

    -- The merchant's settlement shard this payment credits (shard 0 until the others open).
    SELECT coalesce((SELECT s.account_id FROM merchant_settlement_shards s
                      WHERE s.merchant_id = v_m.merchant_id
                        AND s.shard = v_id % (SELECT x.value::int FROM ledger_settings x WHERE x.key = 'settlement_shards')),
                    v_m.settlement_account_id)
      INTO v_settle;

    IF v_code IS NULL THEN
        v_fee := merchant_fee(v_m.fee_class, p_amount);
        v_customer_fee := merchant_customer_fee(v_m.fee_payer, v_fee);
        -- A merchant's part of the fee comes out of the amount, so it must be less.
        IF v_fee IS NULL OR v_fee - v_customer_fee >= p_amount THEN
            v_code := 'limit_exceeded';
        END IF;
    END IF;

    IF v_code IS NULL THEN
        IF v_fee > 0 THEN
            v_fee_account := ledger_fee_account(v_id);
        END IF;
        IF NOT ledger_lock(v_payer.account, v_settle, p_also => v_fee_account) THEN
            v_code := 'account_blocked';
        ELSIF ledger_over_limit(v_payer.account, p_amount, v_payer.max_per_transfer, v_payer.max_daily_debit) THEN
            v_code := 'limit_exceeded';
        ELSE
            v_payer_balance := ledger_debit(v_payer.account, p_amount + v_customer_fee);
            IF v_payer_balance IS NULL THEN
                v_code := 'insufficient_funds';
            END IF;
        END IF;
    END IF;

    IF v_code IS NOT NULL THEN
        RETURN QUERY SELECT ledger_reject(v_id, v_code, v_payer.account, v_settle), v_id, 0::bigint, NULL::bigint;
        RETURN;
    END IF;

    PERFORM ledger_post(v_id, v_payer.account, v_settle, p_amount, v_payer_balance,
                        p_fee => v_customer_fee, p_fee_account => v_fee_account, p_spent => p_amount);
    IF v_fee > v_customer_fee THEN
        PERFORM ledger_leg(v_id, v_settle, v_fee_account, v_fee - v_customer_fee);
        UPDATE transfers t SET fee = v_fee WHERE t.id = v_id;
    END IF;
    INSERT INTO merchant_payments (transfer_id, merchant_id, till_number, account_reference)
    VALUES (v_id, v_m.merchant_id, CASE WHEN p_kind = 'till' THEN p_number END,
            CASE WHEN p_kind = 'paybill' THEN p_account END);
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
        (v_id, 'payer', p_from, v_payer.language, p_kind || '_paid',
         jsonb_build_object('ref', transfer_ref(v_id), 'amount', p_amount, 'fee', v_customer_fee,
                            'balance', v_payer_balance, 'merchant', v_m.display_name,
                            'number', p_number, 'account', coalesce(p_account, ''))),
        (v_id, 'payee', v_m.notify_msisdn, v_m.language, p_kind || '_received',
         jsonb_build_object('ref', transfer_ref(v_id), 'amount', p_amount, 'fee', v_fee - v_customer_fee,
                            'counterparty', v_payer.name, 'counterparty_msisdn', masked(p_from),
                            'number', p_number, 'account', coalesce(p_account, '')));
    RETURN QUERY SELECT 'ok'::text, v_id, v_customer_fee, v_payer_balance;
END $$;
