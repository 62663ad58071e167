-- One skeleton for every movement. Each movement function used to spell out the same
-- steps: claim the idempotency key or replay what it left, lock the accounts in id
-- order, check statuses and the day's limit, debit only what is available, reject with
-- a code, post balanced entries, count the day's usage. The steps are functions here,
-- and every movement function is re-created on them, with the same behaviour.
--
-- Each call of a step costs a snapshot and a function frame, so the steps are few and
-- coarse (a transfer on the hot path makes five: claim, lock, limit, debit, post), take
-- scalars rather than arrays, and are called as expressions (`v := step(...)`,
-- `IF step(...)`) rather than through PERFORM or SELECT ... FROM, which start an
-- executor each. What they cost against the functions they replaced is measured in
-- docs/performance.md.

-- Claims idempotency key `p_key` for a pending transfer of `p_kind`: its id, or NULL
-- when the key was used before (then `ledger_replay` answers as that call did).
CREATE FUNCTION ledger_claim(p_key text, p_hash bytea, p_kind text, p_amount bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO transfers (idempotency_key, request_hash, kind, status, amount)
    VALUES (p_key, p_hash, p_kind, 'pending', p_amount)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO v_id;
    RETURN v_id;
END $$;

-- What the transfer under a used key `p_key` answered: its outcome, fee and payer's
-- balance after; `conflict` when this request differs from the one that used the key.
CREATE FUNCTION ledger_replay(p_key text, p_hash bytea, p_kind text)
RETURNS TABLE (outcome text, transfer_id bigint, fee bigint, balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_prior transfers%ROWTYPE;
BEGIN
    SELECT * INTO STRICT v_prior FROM transfers t WHERE t.idempotency_key = p_key;
    IF v_prior.request_hash <> p_hash OR v_prior.kind <> p_kind THEN
        RETURN QUERY SELECT 'conflict'::text, v_prior.id, 0::bigint, NULL::bigint;
    ELSE
        RETURN QUERY SELECT coalesce(v_prior.reject_code, 'ok'), v_prior.id, v_prior.fee, v_prior.debit_balance_after;
    END IF;
END $$;

-- Locks the accounts of a movement in id order (NULLs skipped), so that two movements
-- over the same accounts never wait on each other in a circle; answers whether `p_a`,
-- `p_b` and `p_c` are active, as read under the lock (`p_also`, a fee revenue account,
-- is locked but not asked about). Scalars, not an array: an array parameter costs the
-- statement twice as much.
CREATE FUNCTION ledger_lock(p_a bigint, p_b bigint, p_c bigint DEFAULT NULL, p_also bigint DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_blocked bigint;
BEGIN
    SELECT count(*) FILTER (WHERE l.status <> 'active' AND l.id IN (p_a, p_b, p_c)) INTO v_blocked
      FROM (SELECT a.id, a.status FROM accounts a
             WHERE a.id IN (p_a, p_b, p_c, p_also) ORDER BY a.id FOR UPDATE) l;
    RETURN v_blocked = 0;
END $$;

-- The fee revenue account (one of `fee_shards`) that transfer `p_transfer` credits.
CREATE FUNCTION ledger_fee_account(p_transfer bigint)
RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_account bigint;
BEGIN
    SELECT a.id INTO STRICT v_account FROM accounts a
     WHERE a.kind = 'fee_revenue' AND a.customer_id IS NULL
       AND a.shard = p_transfer % (SELECT s.value::int FROM ledger_settings s WHERE s.key = 'fee_shards');
    RETURN v_account;
END $$;

-- Whether debiting `p_amount` from `p_account` breaks its tier: more than one transfer
-- may move, or more than the day allows once what it debited today (and `p_also`,
-- amounts counted beside it) is added.
CREATE FUNCTION ledger_over_limit(p_account bigint, p_amount bigint, p_max_per_transfer bigint,
                                  p_max_daily bigint, p_also bigint DEFAULT 0)
RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    -- The ledger's day, in its time zone: daily limits count from its midnight.
    v_day date := (now() AT TIME ZONE (SELECT s.value FROM ledger_settings s WHERE s.key = 'timezone'))::date;
BEGIN
    RETURN p_amount > p_max_per_transfer
        OR (SELECT coalesce(sum(u.debited), 0) FROM daily_usage u
             WHERE u.account_id = p_account AND u.day = v_day) + p_also + p_amount > p_max_daily;
END $$;

-- Takes `p_amount` from `p_account` if that much is available (not held): its balance
-- after, or NULL when it has not enough.
CREATE FUNCTION ledger_debit(p_account bigint, p_amount bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_balance bigint;
BEGIN
    UPDATE accounts a SET balance = a.balance - p_amount
     WHERE a.id = p_account AND a.balance - a.held >= p_amount
    RETURNING a.balance INTO v_balance;
    RETURN v_balance;
END $$;

-- Holds `p_amount` on `p_account` if that much is available: whether it could.
CREATE FUNCTION ledger_hold_funds(p_account bigint, p_amount bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts a SET held = a.held + p_amount
     WHERE a.id = p_account AND a.balance - a.held >= p_amount;
    RETURN FOUND;
END $$;

-- Takes the money held for transfer `p_transfer` from its account, resolving the hold
-- as posted: the account's balance after. The money is there by construction: every
-- other debit leaves `held` alone.
CREATE FUNCTION ledger_take_hold(p_transfer bigint, OUT amount bigint, OUT balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_hold holds%ROWTYPE;
BEGIN
    UPDATE holds h SET resolution = 'posted', resolved_at = now()
     WHERE h.transfer_id = p_transfer AND h.resolution IS NULL
    RETURNING * INTO STRICT v_hold;
    amount := v_hold.amount;
    UPDATE accounts a SET balance = a.balance - v_hold.amount, held = a.held - v_hold.amount
     WHERE a.id = v_hold.account_id
    RETURNING a.balance INTO balance;
END $$;

-- Posts `p_amount` of transfer `p_transfer` from `p_from` (already debited) to `p_to`:
-- the pair of entries, and `p_to`'s balance after. Nothing for a zero amount.
CREATE FUNCTION ledger_credit(p_transfer bigint, p_from bigint, p_to bigint, p_amount bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_balance bigint;
BEGIN
    UPDATE accounts a SET balance = a.balance + p_amount WHERE a.id = p_to RETURNING a.balance INTO v_balance;
    IF p_amount <> 0 THEN
        INSERT INTO entries (transfer_id, account_id, amount)
        VALUES (p_transfer, p_from, -p_amount), (p_transfer, p_to, p_amount);
    END IF;
    RETURN v_balance;
END $$;

-- Moves `p_amount` of transfer `p_transfer` from `p_from` to `p_to`, both balances and
-- the entries, for a leg whose payer was not debited up front (money from funding, a
-- fee refunded by a reversal): `p_to`'s balance after.
CREATE FUNCTION ledger_leg(p_transfer bigint, p_from bigint, p_to bigint, p_amount bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts a SET balance = a.balance - p_amount WHERE a.id = p_from;
    RETURN ledger_credit(p_transfer, p_from, p_to, p_amount);
END $$;

-- Rejects claimed transfer `p_transfer` with `p_code`, naming the accounts it was
-- between; answers the code.
CREATE FUNCTION ledger_reject(p_transfer bigint, p_code text, p_debit bigint, p_credit bigint)
RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE transfers t SET status = 'rejected', reject_code = p_code,
           debit_account_id = p_debit, credit_account_id = p_credit
     WHERE t.id = p_transfer;
    RETURN p_code;
END $$;

-- Posts transfer `p_transfer`, whose payer was debited already (`p_balance` after):
-- `p_amount` to the payee; `p_fee` to revenue, from the payer unless `p_fee_from` pays
-- it (a biller); `p_commission` out of the fee to the agent. Balanced entries for each
-- leg, the transfer marked posted, and `p_spent` (NULL: nothing, an agent's float has
-- no day's limit) counted against the payer's day. The payee's balance after. One call
-- for all of it: a movement is a handful of these steps, and each call has its cost.
CREATE FUNCTION ledger_post(p_transfer bigint, p_payer bigint, p_payee bigint, p_amount bigint, p_balance bigint,
                            p_fee bigint DEFAULT 0, p_fee_account bigint DEFAULT NULL,
                            p_commission bigint DEFAULT 0, p_commission_account bigint DEFAULT NULL,
                            p_spent bigint DEFAULT NULL, p_fee_from bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_payee_balance bigint;
BEGIN
    UPDATE accounts a SET balance = a.balance + p_amount WHERE a.id = p_payee RETURNING a.balance INTO v_payee_balance;
    INSERT INTO entries (transfer_id, account_id, amount)
    VALUES (p_transfer, p_payer, -p_amount), (p_transfer, p_payee, p_amount);
    IF p_fee > 0 THEN
        IF p_fee_from IS NOT NULL THEN
            UPDATE accounts a SET balance = a.balance - p_fee WHERE a.id = p_fee_from;
        END IF;
        UPDATE accounts a SET balance = a.balance + (p_fee - p_commission) WHERE a.id = p_fee_account;
        INSERT INTO entries (transfer_id, account_id, amount)
        VALUES (p_transfer, coalesce(p_fee_from, p_payer), -p_fee), (p_transfer, p_fee_account, p_fee);
    END IF;
    IF p_commission > 0 THEN
        UPDATE accounts a SET balance = a.balance + p_commission WHERE a.id = p_commission_account;
        INSERT INTO entries (transfer_id, account_id, amount)
        VALUES (p_transfer, p_fee_account, -p_commission), (p_transfer, p_commission_account, p_commission);
    END IF;
    UPDATE transfers t SET status = 'posted', fee = p_fee, commission = p_commission,
           debit_account_id = p_payer, credit_account_id = p_payee, debit_balance_after = p_balance
     WHERE t.id = p_transfer;
    IF p_spent IS NOT NULL THEN
        INSERT INTO daily_usage AS u (account_id, day, debited)
        VALUES (p_payer, (now() AT TIME ZONE (SELECT s.value FROM ledger_settings s WHERE s.key = 'timezone'))::date, p_spent)
        ON CONFLICT (account_id, day) DO UPDATE SET debited = u.debited + excluded.debited;
    END IF;
    RETURN v_payee_balance;
END $$;

-- Person to person.
CREATE OR REPLACE FUNCTION transfer_p2p(p_key text, p_hash bytea, p_from text, p_to text, p_amount bigint)
RETURNS TABLE (outcome text, transfer_id bigint, fee bigint, payer_balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_party record;
    v_payer record;
    v_payee record;
    -- The loop may assign neither record: their ids are kept apart.
    v_payer_id bigint;
    v_payee_id bigint;
    v_fee bigint;
    v_fee_account bigint;
    v_code text;
    v_payer_balance bigint;
    v_payee_balance bigint;
BEGIN
    v_id := ledger_claim(p_key, p_hash, 'p2p', p_amount);
    IF v_id IS NULL THEN
        RETURN QUERY SELECT r.outcome, r.transfer_id, r.fee, r.balance FROM ledger_replay(p_key, p_hash, 'p2p') r;
        RETURN;
    END IF;

    -- Both parties in one statement.
    FOR v_party IN
        SELECT c.msisdn, a.id, c.first_name, c.last_name, c.language,
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
            v_fee_account := ledger_fee_account(v_id);
        END IF;
        IF NOT ledger_lock(v_payer.id, v_payee.id, p_also => v_fee_account) THEN
            v_code := 'account_blocked';
        ELSIF ledger_over_limit(v_payer.id, p_amount, v_payer.max_per_transfer, v_payer.max_daily_debit)
           OR (SELECT a.balance FROM accounts a WHERE a.id = v_payee.id) + p_amount > v_payee.max_balance THEN
            v_code := 'limit_exceeded';
        ELSE
            v_payer_balance := ledger_debit(v_payer.id, p_amount + v_fee);
            IF v_payer_balance IS NULL THEN
                v_code := 'insufficient_funds';
            END IF;
        END IF;
    END IF;

    IF v_code IS NOT NULL THEN
        RETURN QUERY SELECT ledger_reject(v_id, v_code, v_payer_id, v_payee_id), v_id, 0::bigint, NULL::bigint;
        RETURN;
    END IF;

    v_payee_balance := ledger_post(v_id, v_payer.id, v_payee.id, p_amount, v_payer_balance,
                                   p_fee => v_fee, p_fee_account => v_fee_account, p_spent => p_amount);
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

-- Cash in: the agent's float to a customer's wallet.
CREATE OR REPLACE FUNCTION agent_cash_in(p_key text, p_hash bytea, p_agent text, p_to text, p_amount bigint)
RETURNS TABLE (outcome text, transfer_id bigint, float_balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_agent record;
    v_payee record;
    v_code text;
    v_float_balance bigint;
    v_payee_balance bigint;
BEGIN
    v_id := ledger_claim(p_key, p_hash, 'cash_in', p_amount);
    IF v_id IS NULL THEN
        RETURN QUERY SELECT r.outcome, r.transfer_id, r.balance FROM ledger_replay(p_key, p_hash, 'cash_in') r;
        RETURN;
    END IF;

    SELECT g.float_account_id AS account, g.agent_number, g.name, g.status, c.msisdn, c.language
      INTO v_agent
      FROM agents g JOIN customers c ON c.id = g.customer_id WHERE c.msisdn = p_agent;
    SELECT a.id AS account, c.msisdn, c.language, c.first_name || ' ' || c.last_name AS name,
           t.max_balance
      INTO v_payee
      FROM customers c
      JOIN accounts a ON a.customer_id = c.id AND a.kind = 'wallet'
      JOIN kyc_tiers t ON t.tier = c.kyc_tier
     WHERE c.msisdn = p_to;
    IF v_agent.account IS NULL THEN
        v_code := 'not_registered';
    ELSIF v_payee.account IS NULL THEN
        v_code := 'recipient_unknown';
    ELSIF p_to = p_agent THEN
        -- An agent's own deposits go through another agent.
        v_code := 'same_account';
    END IF;

    IF v_code IS NULL THEN
        IF NOT ledger_lock(v_agent.account, v_payee.account) OR v_agent.status <> 'active' THEN
            v_code := 'account_blocked';
        ELSIF (SELECT a.balance FROM accounts a WHERE a.id = v_payee.account) + p_amount > v_payee.max_balance THEN
            v_code := 'limit_exceeded';
        ELSE
            v_float_balance := ledger_debit(v_agent.account, p_amount);
            IF v_float_balance IS NULL THEN
                v_code := 'insufficient_funds';
            END IF;
        END IF;
    END IF;

    IF v_code IS NOT NULL THEN
        RETURN QUERY SELECT ledger_reject(v_id, v_code, v_agent.account, v_payee.account), v_id, NULL::bigint;
        RETURN;
    END IF;

    v_payee_balance := ledger_post(v_id, v_agent.account, v_payee.account, p_amount, v_float_balance);
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
        (v_id, 'payer', p_agent, v_agent.language, 'cash_in_given',
         jsonb_build_object('ref', transfer_ref(v_id), 'amount', p_amount, 'balance', v_float_balance,
                            'counterparty', v_payee.name, 'counterparty_msisdn', p_to)),
        (v_id, 'payee', p_to, v_payee.language, 'cash_in_received',
         jsonb_build_object('ref', transfer_ref(v_id), 'amount', p_amount, 'balance', v_payee_balance,
                            'agent', v_agent.name, 'agent_number', v_agent.agent_number));
    RETURN QUERY SELECT 'ok'::text, v_id, v_float_balance;
END $$;

-- The withdrawal fee and the agent's commission on `p_amount`: both NULL when the
-- amount is outside the bands (or the commission would exceed the fee).
CREATE FUNCTION cash_out_fees(p_amount bigint, OUT fee bigint, OUT commission bigint)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT b.fee INTO fee FROM fee_bands b
     WHERE b.kind = 'withdrawal' AND p_amount BETWEEN b.min_amount AND b.max_amount;
    SELECT b.commission INTO commission FROM commission_bands b
     WHERE b.kind = 'withdrawal' AND p_amount BETWEEN b.min_amount AND b.max_amount;
    IF fee IS NULL OR commission IS NULL OR commission > fee THEN
        fee := NULL;
        commission := NULL;
    END IF;
END $$;

-- Cash out at an agent's store, asked by the customer.
CREATE OR REPLACE FUNCTION agent_cash_out(p_key text, p_hash bytea, p_from text, p_agent text, p_store text,
                                          p_amount bigint)
RETURNS TABLE (outcome text, transfer_id bigint, fee bigint, payer_balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_payer record;
    v_agent record;
    v_fees record;
    v_fee_account bigint;
    v_code text;
    v_payer_balance bigint;
    v_float_balance bigint;
BEGIN
    v_id := ledger_claim(p_key, p_hash, 'cash_out', p_amount);
    IF v_id IS NULL THEN
        RETURN QUERY SELECT r.outcome, r.transfer_id, r.fee, r.balance FROM ledger_replay(p_key, p_hash, 'cash_out') r;
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
        v_fees := cash_out_fees(p_amount);
        IF v_fees.fee IS NULL THEN
            v_code := 'limit_exceeded';
        END IF;
    END IF;

    IF v_code IS NULL THEN
        v_fee_account := ledger_fee_account(v_id);
        IF NOT ledger_lock(v_payer.account, v_agent.account, v_agent.commission_account, v_fee_account)
           OR v_agent.status <> 'active' THEN
            v_code := 'account_blocked';
        ELSIF ledger_over_limit(v_payer.account, p_amount, v_payer.max_per_transfer, v_payer.max_daily_debit) THEN
            v_code := 'limit_exceeded';
        ELSE
            v_payer_balance := ledger_debit(v_payer.account, p_amount + v_fees.fee);
            IF v_payer_balance IS NULL THEN
                v_code := 'insufficient_funds';
            END IF;
        END IF;
    END IF;

    IF v_code IS NOT NULL THEN
        RETURN QUERY SELECT ledger_reject(v_id, v_code, v_payer.account, v_agent.account), v_id, 0::bigint, NULL::bigint;
        RETURN;
    END IF;

    v_float_balance := ledger_post(v_id, v_payer.account, v_agent.account, p_amount, v_payer_balance,
                                   p_fee => v_fees.fee, p_fee_account => v_fee_account,
                                   p_commission => v_fees.commission,
                                   p_commission_account => v_agent.commission_account, p_spent => p_amount);
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
        (v_id, 'payer', p_from, v_payer.language, 'cash_out_withdrawn',
         jsonb_build_object('ref', transfer_ref(v_id), 'amount', p_amount, 'fee', v_fees.fee,
                            'balance', v_payer_balance, 'agent', v_agent.name,
                            'agent_number', v_agent.agent_number, 'store', v_agent.store)),
        (v_id, 'payee', v_agent.msisdn, v_agent.language, 'cash_out_paid',
         jsonb_build_object('ref', transfer_ref(v_id), 'amount', p_amount, 'balance', v_float_balance,
                            'commission', v_fees.commission, 'counterparty', v_payer.name,
                            'counterparty_msisdn', p_from));
    RETURN QUERY SELECT 'ok'::text, v_id, v_fees.fee, v_payer_balance;
END $$;

-- One agent's float to another's.
CREATE OR REPLACE FUNCTION agent_float_transfer(p_key text, p_hash bytea, p_from text, p_to_agent text,
                                                p_amount bigint)
RETURNS TABLE (outcome text, transfer_id bigint, float_balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_from record;
    v_to record;
    v_code text;
    v_from_balance bigint;
    v_to_balance bigint;
BEGIN
    v_id := ledger_claim(p_key, p_hash, 'float_transfer', p_amount);
    IF v_id IS NULL THEN
        RETURN QUERY SELECT r.outcome, r.transfer_id, r.balance FROM ledger_replay(p_key, p_hash, 'float_transfer') r;
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
        IF NOT ledger_lock(v_from.account, v_to.account) OR v_from.status <> 'active' OR v_to.status <> 'active' THEN
            v_code := 'account_blocked';
        ELSE
            v_from_balance := ledger_debit(v_from.account, p_amount);
            IF v_from_balance IS NULL THEN
                v_code := 'insufficient_funds';
            END IF;
        END IF;
    END IF;

    IF v_code IS NOT NULL THEN
        RETURN QUERY SELECT ledger_reject(v_id, v_code, v_from.account, v_to.account), v_id, NULL::bigint;
        RETURN;
    END IF;

    v_to_balance := ledger_post(v_id, v_from.account, v_to.account, p_amount, v_from_balance);
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
        (v_id, 'payer', v_from.msisdn, v_from.language, 'float_sent',
         jsonb_build_object('ref', transfer_ref(v_id), 'amount', p_amount, 'balance', v_from_balance,
                            'agent', v_to.name, 'agent_number', v_to.agent_number)),
        (v_id, 'payee', v_to.msisdn, v_to.language, 'float_received',
         jsonb_build_object('ref', transfer_ref(v_id), 'amount', p_amount, 'balance', v_to_balance,
                            'agent', v_from.name, 'agent_number', v_from.agent_number));
    RETURN QUERY SELECT 'ok'::text, v_id, v_from_balance;
END $$;

-- The agent asks a customer to approve a withdrawal: the amount and fee are held.
CREATE OR REPLACE FUNCTION agent_cash_out_request(p_key text, p_hash bytea, p_agent text, p_store text,
                                                  p_customer text, p_amount bigint, p_ttl_secs integer,
                                                  p_dial text)
RETURNS TABLE (outcome text, transfer_id bigint, fee bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_agent record;
    v_payer record;
    v_fees record;
    v_code text;
BEGIN
    v_id := ledger_claim(p_key, p_hash, 'cash_out', p_amount);
    IF v_id IS NULL THEN
        RETURN QUERY SELECT r.outcome, r.transfer_id, r.fee FROM ledger_replay(p_key, p_hash, 'cash_out') r;
        RETURN;
    END IF;

    SELECT g.float_account_id AS account, g.commission_account_id AS commission_account, g.customer_id,
           g.agent_number, g.name, g.status, s.store_number, s.name AS store
      INTO v_agent
      FROM agents g
      JOIN customers c ON c.id = g.customer_id
      LEFT JOIN agent_stores s ON s.agent_id = g.id AND s.store_number = p_store
     WHERE c.msisdn = p_agent;
    SELECT a.id AS account, c.id AS customer_id, c.language, t.max_per_transfer, t.max_daily_debit
      INTO v_payer
      FROM customers c
      JOIN accounts a ON a.customer_id = c.id AND a.kind = 'wallet'
      JOIN kyc_tiers t ON t.tier = c.kyc_tier
     WHERE c.msisdn = p_customer;
    IF v_agent.account IS NULL THEN
        v_code := 'not_registered';
    ELSIF v_agent.store_number IS NULL THEN
        v_code := 'store_unknown';
    ELSIF v_payer.account IS NULL THEN
        v_code := 'recipient_unknown';
    ELSIF v_payer.customer_id = v_agent.customer_id THEN
        v_code := 'same_account';
    END IF;

    IF v_code IS NULL THEN
        v_fees := cash_out_fees(p_amount);
        IF v_fees.fee IS NULL THEN
            v_code := 'limit_exceeded';
        END IF;
    END IF;

    IF v_code IS NULL THEN
        IF NOT ledger_lock(v_payer.account, v_agent.account) OR v_agent.status <> 'active' THEN
            v_code := 'account_blocked';
        ELSIF ledger_over_limit(v_payer.account, p_amount, v_payer.max_per_transfer, v_payer.max_daily_debit) THEN
            v_code := 'limit_exceeded';
        ELSIF NOT ledger_hold_funds(v_payer.account, p_amount + v_fees.fee) THEN
            v_code := 'insufficient_funds';
        END IF;
    END IF;

    IF v_code IS NOT NULL THEN
        RETURN QUERY SELECT ledger_reject(v_id, v_code, v_payer.account, v_agent.account), v_id, 0::bigint;
        RETURN;
    END IF;

    UPDATE transfers t SET status = 'held', fee = v_fees.fee, commission = v_fees.commission,
           debit_account_id = v_payer.account, credit_account_id = v_agent.account,
           store_number = v_agent.store_number
     WHERE t.id = v_id;
    INSERT INTO holds (transfer_id, account_id, amount, expires_at)
    VALUES (v_id, v_payer.account, p_amount + v_fees.fee, now() + make_interval(secs => p_ttl_secs));
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
        (v_id, 'request', p_customer, v_payer.language, 'cash_out_request',
         jsonb_build_object('ref', transfer_ref(v_id), 'amount', p_amount, 'fee', v_fees.fee,
                            'agent', v_agent.name, 'agent_number', v_agent.agent_number,
                            'store', v_agent.store, 'dial', p_dial,
                            'minutes', ceil(p_ttl_secs / 60.0)::int));
    RETURN QUERY SELECT 'ok'::text, v_id, v_fees.fee;
END $$;

-- The customer approves or declines the agent's request; exactly once.
CREATE OR REPLACE FUNCTION cash_out_decide(p_transfer bigint, p_customer text, p_approve boolean)
RETURNS TABLE (outcome text, transfer_id bigint, fee bigint, payer_balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_hold holds%ROWTYPE;
    v_t transfers%ROWTYPE;
    v_payer record;
    v_agent record;
    v_fee_account bigint;
    v_code text;
    v_taken record;
    v_float_balance bigint;
BEGIN
    SELECT h.* INTO v_hold
      FROM holds h
      JOIN accounts a ON a.id = h.account_id
      JOIN customers c ON c.id = a.customer_id
     WHERE h.transfer_id = p_transfer AND c.msisdn = p_customer
       FOR UPDATE OF h;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::bigint, 0::bigint, NULL::bigint;
        RETURN;
    END IF;
    SELECT * INTO STRICT v_t FROM transfers t WHERE t.id = p_transfer;
    IF v_t.kind <> 'cash_out' THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::bigint, 0::bigint, NULL::bigint;
        RETURN;
    END IF;
    IF v_hold.resolution IS NOT NULL THEN
        RETURN QUERY SELECT CASE v_hold.resolution WHEN 'posted' THEN 'ok' WHEN 'voided' THEN 'declined'
                                                   WHEN 'expired' THEN 'expired' ELSE v_t.reject_code END,
                            v_t.id, v_t.fee, v_t.debit_balance_after;
        RETURN;
    END IF;
    IF v_hold.expires_at <= now() THEN
        PERFORM hold_release(v_t.id, 'expired', NULL);
        PERFORM cash_out_tell_agent(v_t.id, 'cash_out_expired');
        RETURN QUERY SELECT 'expired'::text, v_t.id, v_t.fee, NULL::bigint;
        RETURN;
    END IF;
    IF NOT p_approve THEN
        PERFORM hold_release(v_t.id, 'voided', NULL);
        PERFORM cash_out_tell_agent(v_t.id, 'cash_out_declined');
        RETURN QUERY SELECT 'declined'::text, v_t.id, v_t.fee, NULL::bigint;
        RETURN;
    END IF;

    SELECT c.msisdn, c.language, c.first_name || ' ' || c.last_name AS name,
           t.max_per_transfer, t.max_daily_debit
      INTO STRICT v_payer
      FROM accounts a
      JOIN customers c ON c.id = a.customer_id
      JOIN kyc_tiers t ON t.tier = c.kyc_tier
     WHERE a.id = v_t.debit_account_id;
    SELECT g.commission_account_id AS commission_account, g.agent_number, g.name, g.status,
           s.name AS store, c.msisdn, c.language
      INTO STRICT v_agent
      FROM agents g
      JOIN customers c ON c.id = g.customer_id
      JOIN agent_stores s ON s.store_number = v_t.store_number
     WHERE g.float_account_id = v_t.credit_account_id;
    v_fee_account := ledger_fee_account(v_t.id);
    IF NOT ledger_lock(v_t.debit_account_id, v_t.credit_account_id, v_agent.commission_account, v_fee_account)
       OR v_agent.status <> 'active' THEN
        v_code := 'account_blocked';
    ELSIF ledger_over_limit(v_t.debit_account_id, v_t.amount, v_payer.max_per_transfer, v_payer.max_daily_debit) THEN
        v_code := 'limit_exceeded';
    END IF;
    IF v_code IS NOT NULL THEN
        PERFORM hold_release(v_t.id, 'rejected', v_code);
        RETURN QUERY SELECT v_code, v_t.id, 0::bigint, NULL::bigint;
        RETURN;
    END IF;

    v_taken := ledger_take_hold(v_t.id);
    v_float_balance := ledger_post(v_t.id, v_t.debit_account_id, v_t.credit_account_id, v_t.amount, v_taken.balance,
                                   p_fee => v_t.fee, p_fee_account => v_fee_account, p_commission => v_t.commission,
                                   p_commission_account => v_agent.commission_account, p_spent => v_t.amount);
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
        (v_t.id, 'payer', v_payer.msisdn, v_payer.language, 'cash_out_withdrawn',
         jsonb_build_object('ref', transfer_ref(v_t.id), 'amount', v_t.amount, 'fee', v_t.fee,
                            'balance', v_taken.balance, 'agent', v_agent.name,
                            'agent_number', v_agent.agent_number, 'store', v_agent.store)),
        (v_t.id, 'payee', v_agent.msisdn, v_agent.language, 'cash_out_paid',
         jsonb_build_object('ref', transfer_ref(v_t.id), 'amount', v_t.amount, 'balance', v_float_balance,
                            'commission', v_t.commission, 'counterparty', v_payer.name,
                            'counterparty_msisdn', v_payer.msisdn));
    RETURN QUERY SELECT 'ok'::text, v_t.id, v_t.fee, v_taken.balance;
END $$;

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

    IF v_code IS NULL THEN
        SELECT b.fee INTO v_fee FROM fee_bands b
         WHERE b.kind = 'bill' AND p_amount BETWEEN b.min_amount AND b.max_amount;
        IF v_fee IS NULL OR (v_biller.fee_payer = 'biller' AND v_fee >= p_amount) THEN
            v_code := 'limit_exceeded';
        END IF;
        v_hold := p_amount + CASE WHEN v_biller.fee_payer = 'customer' THEN v_fee ELSE 0 END;
    END IF;

    IF v_code IS NULL THEN
        IF NOT ledger_lock(v_payer.account, v_biller.settlement_account_id) THEN
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
        RETURN QUERY SELECT ledger_reject(v_id, v_code, v_payer.account, v_biller.settlement_account_id), v_id,
                            0::bigint;
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

-- A bill the biller answered: paid posts the held money, refused gives it back.
CREATE OR REPLACE FUNCTION bill_settle(p_transfer bigint, p_paid boolean, p_biller_ref text, p_token text,
                                       p_reason text)
RETURNS TABLE (state text, payer_balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_pay bill_payments%ROWTYPE;
    v_t transfers%ROWTYPE;
    v_biller billers%ROWTYPE;
    v_payer record;
    v_fee_account bigint;
    v_taken record;
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

    PERFORM 1 FROM holds h WHERE h.transfer_id = p_transfer FOR UPDATE;
    v_fee_account := ledger_fee_account(p_transfer);
    PERFORM ledger_lock(v_t.debit_account_id, v_t.credit_account_id, p_also => v_fee_account);
    -- Paid is paid: the biller has the money, so limits and statuses checked at the hold stand.
    v_taken := ledger_take_hold(p_transfer);
    -- The fee comes from whoever paid it when the money was held (the hold says: on
    -- top of the amount, or not), whatever the biller's setting is now.
    PERFORM ledger_post(p_transfer, v_t.debit_account_id, v_t.credit_account_id, v_t.amount, v_taken.balance,
                        p_fee => v_t.fee, p_fee_account => v_fee_account, p_spent => v_t.amount,
                        p_fee_from => CASE WHEN v_taken.amount > v_t.amount THEN NULL ELSE v_t.credit_account_id END);
    UPDATE bill_payments p SET state = 'paid', biller_ref = p_biller_ref, token = p_token, resolved_at = now()
     WHERE p.transfer_id = p_transfer;
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
        (p_transfer, 'payer', v_payer.msisdn, v_payer.language, 'bill_paid',
         jsonb_build_object('ref', transfer_ref(p_transfer), 'amount', v_t.amount,
                            'fee', v_taken.amount - v_t.amount,
                            'balance', v_taken.balance, 'biller', v_biller.name,
                            'account', v_pay.account_number, 'biller_ref', coalesce(p_biller_ref, ''),
                            'token', p_token));
    RETURN QUERY SELECT 'paid'::text, v_taken.balance;
END $$;

-- Money into an account from the funding suspense account (demo data, top-ups).
CREATE OR REPLACE FUNCTION ledger_fund(p_key text, p_account bigint, p_amount bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_funding bigint;
BEGIN
    SELECT a.id INTO STRICT v_funding FROM accounts a WHERE a.kind = 'suspense' AND a.name = 'funding';
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

-- Reverses a posted person-to-person transfer (an operator's decision): what the payee
-- still has comes back, with the fee if asked; once per original.
CREATE OR REPLACE FUNCTION transfer_reverse(p_original bigint, p_refund_fee boolean, p_reason text)
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
    PERFORM ledger_lock(v_orig.debit_account_id, v_orig.credit_account_id, p_also => v_fee_account);
    -- Only what the payee still has can come back.
    v_payee_balance := ledger_debit(v_orig.credit_account_id, v_orig.amount);
    IF v_payee_balance IS NULL THEN
        RETURN QUERY SELECT 'insufficient_funds'::text, NULL::bigint, 0::bigint, 0::bigint;
        RETURN;
    END IF;
    INSERT INTO transfers (idempotency_key, request_hash, kind, status, debit_account_id,
                           credit_account_id, amount, reverses, reason, debit_balance_after)
    VALUES (v_key, sha256(convert_to(v_key, 'UTF8')), 'reversal', 'posted',
            v_orig.credit_account_id, v_orig.debit_account_id, v_orig.amount, p_original,
            p_reason, v_payee_balance)
    RETURNING id INTO v_id;
    v_payer_balance := ledger_credit(v_id, v_orig.credit_account_id, v_orig.debit_account_id, v_orig.amount);
    IF v_fee > 0 THEN
        v_payer_balance := ledger_leg(v_id, v_fee_account, v_orig.debit_account_id, v_fee);
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
