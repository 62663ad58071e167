-- Cash-out started by the agent, approved by the customer. The agent asks; the amount
-- and the fee are held on the customer's wallet (two-phase: `accounts.held` grows, the
-- balance does not move); the customer approves with their PIN (post) or declines
-- (void) from "My approvals"; a request nobody answers expires (the hold sweeper).
-- Holds are general: anything that must wait for a second party holds the same way.

ALTER TABLE transfers DROP CONSTRAINT transfers_status_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_status_check
    CHECK (status IN ('pending', 'held', 'posted', 'rejected', 'voided', 'expired'));
-- The store a cash-out was paid at (agent-started ones need it again when posted).
ALTER TABLE transfers ADD COLUMN store_number text REFERENCES agent_stores (store_number);

-- A transfer's hold on its debit account. `accounts.held` is the sum of the open ones
-- (`resolution IS NULL`); each is resolved exactly once, under a lock on its row.
CREATE TABLE holds (
    transfer_id  bigint PRIMARY KEY REFERENCES transfers (id),
    account_id   bigint NOT NULL REFERENCES accounts (id),
    amount       bigint NOT NULL CHECK (amount > 0),
    expires_at   timestamptz NOT NULL,
    resolution   text CHECK (resolution IN ('posted', 'voided', 'expired', 'rejected')),
    resolved_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((resolution IS NULL) = (resolved_at IS NULL))
);
CREATE INDEX holds_open ON holds (expires_at) WHERE resolution IS NULL;
CREATE INDEX holds_open_account ON holds (account_id, transfer_id) WHERE resolution IS NULL;

-- Besides the receipts (payer, payee): the request a customer is asked to approve, and
-- the agent told that a request was declined or expired.
ALTER TABLE outbox
    DROP CONSTRAINT outbox_role_check,
    ADD CONSTRAINT outbox_role_check CHECK (role IN ('payer', 'payee', 'reply', 'request', 'outcome'));

-- Releases the open hold of transfer `p_transfer` without posting it: the held amount
-- returns to the account's available balance and the transfer takes the resolution as
-- its status (`rejected` with `p_code`). The caller holds the lock on the hold's row.
CREATE FUNCTION hold_release(p_transfer bigint, p_resolution text, p_code text)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_hold holds%ROWTYPE;
BEGIN
    UPDATE holds h SET resolution = p_resolution, resolved_at = now()
     WHERE h.transfer_id = p_transfer AND h.resolution IS NULL
    RETURNING * INTO STRICT v_hold;
    UPDATE accounts a SET held = a.held - v_hold.amount WHERE a.id = v_hold.account_id;
    UPDATE transfers t SET status = p_resolution, reject_code = p_code WHERE t.id = p_transfer;
END $$;

-- Tells the agent behind cash-out `p_transfer` that the customer declined it or let it
-- expire: the one `outcome` message of the transfer.
CREATE FUNCTION cash_out_tell_agent(p_transfer bigint, p_template text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data)
    SELECT t.id, 'outcome', ac.msisdn, ac.language, p_template,
           jsonb_build_object('ref', transfer_ref(t.id), 'amount', t.amount,
                              'counterparty', cc.first_name || ' ' || cc.last_name,
                              'counterparty_msisdn', cc.msisdn)
      FROM transfers t
      JOIN accounts fl ON fl.id = t.credit_account_id
      JOIN agents g ON g.float_account_id = fl.id
      JOIN customers ac ON ac.id = g.customer_id
      JOIN accounts w ON w.id = t.debit_account_id
      JOIN customers cc ON cc.id = w.customer_id
     WHERE t.id = p_transfer;
END $$;

-- The agent on phone `p_agent`, at its store `p_store`, asks customer `p_customer` to
-- approve a withdrawal of `p_amount`: the amount and the withdrawal fee are held on the
-- wallet for `p_ttl_secs`, and the customer gets an SMS saying to dial `p_dial` to
-- approve. Idempotent by key like transfer_p2p. Tier limits are checked now and again
-- on approval.
CREATE FUNCTION agent_cash_out_request(p_key text, p_hash bytea, p_agent text, p_store text,
                                       p_customer text, p_amount bigint, p_ttl_secs integer, p_dial text)
RETURNS TABLE (outcome text, transfer_id bigint, fee bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_prior transfers%ROWTYPE;
    v_agent record;
    v_payer record;
    v_fee bigint;
    v_commission bigint;
    v_day date;
    v_used bigint;
    v_code text;
BEGIN
    INSERT INTO transfers (idempotency_key, request_hash, kind, status, amount)
    VALUES (p_key, p_hash, 'cash_out', 'pending', p_amount)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT * INTO STRICT v_prior FROM transfers WHERE idempotency_key = p_key;
        IF v_prior.request_hash <> p_hash OR v_prior.kind <> 'cash_out' THEN
            RETURN QUERY SELECT 'conflict'::text, v_prior.id, 0::bigint;
        ELSE
            RETURN QUERY SELECT coalesce(v_prior.reject_code, 'ok'), v_prior.id, v_prior.fee;
        END IF;
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
        SELECT b.fee INTO v_fee FROM fee_bands b
         WHERE b.kind = 'withdrawal' AND p_amount BETWEEN b.min_amount AND b.max_amount;
        SELECT b.commission INTO v_commission FROM commission_bands b
         WHERE b.kind = 'withdrawal' AND p_amount BETWEEN b.min_amount AND b.max_amount;
        IF v_fee IS NULL OR v_commission IS NULL OR v_commission > v_fee THEN
            v_code := 'limit_exceeded';
        END IF;
    END IF;

    IF v_code IS NULL THEN
        PERFORM 1 FROM accounts a WHERE a.id IN (v_payer.account, v_agent.account) ORDER BY a.id FOR UPDATE;
        IF v_agent.status <> 'active' OR EXISTS (
               SELECT 1 FROM accounts a WHERE a.id IN (v_payer.account, v_agent.account) AND a.status <> 'active') THEN
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
        UPDATE accounts a SET held = a.held + (p_amount + v_fee)
         WHERE a.id = v_payer.account AND a.balance - a.held >= p_amount + v_fee;
        IF NOT FOUND THEN
            v_code := 'insufficient_funds';
        END IF;
    END IF;

    IF v_code IS NOT NULL THEN
        UPDATE transfers t SET status = 'rejected', reject_code = v_code,
               debit_account_id = v_payer.account, credit_account_id = v_agent.account
         WHERE t.id = v_id;
        RETURN QUERY SELECT v_code, v_id, 0::bigint;
        RETURN;
    END IF;

    UPDATE transfers t SET status = 'held', fee = v_fee, commission = v_commission,
           debit_account_id = v_payer.account, credit_account_id = v_agent.account,
           store_number = v_agent.store_number
     WHERE t.id = v_id;
    INSERT INTO holds (transfer_id, account_id, amount, expires_at)
    VALUES (v_id, v_payer.account, p_amount + v_fee, now() + make_interval(secs => p_ttl_secs));
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
        (v_id, 'request', p_customer, v_payer.language, 'cash_out_request',
         jsonb_build_object('ref', transfer_ref(v_id), 'amount', p_amount, 'fee', v_fee,
                            'agent', v_agent.name, 'agent_number', v_agent.agent_number,
                            'store', v_agent.store, 'dial', p_dial,
                            'minutes', ceil(p_ttl_secs / 60.0)::int));
    RETURN QUERY SELECT 'ok'::text, v_id, v_fee;
END $$;

-- Customer `p_customer` approves (`p_approve`) or declines the agent's request
-- `p_transfer`. Exactly once, whatever races it: the hold's row is locked first, and a
-- resolved hold answers what became of it (`ok` for posted, `declined`, `expired`, or
-- the rejection). A request past its time expires here if the sweeper has not yet.
CREATE FUNCTION cash_out_decide(p_transfer bigint, p_customer text, p_approve boolean)
RETURNS TABLE (outcome text, transfer_id bigint, fee bigint, payer_balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_hold holds%ROWTYPE;
    v_t transfers%ROWTYPE;
    v_payer record;
    v_agent record;
    v_fee_account bigint;
    v_day date;
    v_used bigint;
    v_code text;
    v_payer_balance bigint;
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
    SELECT a.id INTO STRICT v_fee_account FROM accounts a
     WHERE a.kind = 'fee_revenue' AND a.customer_id IS NULL
       AND a.shard = v_t.id % (SELECT value::int FROM ledger_settings WHERE key = 'fee_shards');
    PERFORM 1 FROM accounts a
     WHERE a.id IN (v_t.debit_account_id, v_t.credit_account_id, v_agent.commission_account, v_fee_account)
     ORDER BY a.id
       FOR UPDATE;
    IF v_agent.status <> 'active' OR EXISTS (
           SELECT 1 FROM accounts a
            WHERE a.id IN (v_t.debit_account_id, v_t.credit_account_id, v_agent.commission_account)
              AND a.status <> 'active') THEN
        v_code := 'account_blocked';
    ELSE
        v_day := (now() AT TIME ZONE (SELECT value FROM ledger_settings WHERE key = 'timezone'))::date;
        SELECT coalesce(sum(u.debited), 0) INTO v_used FROM daily_usage u
         WHERE u.account_id = v_t.debit_account_id AND u.day = v_day;
        IF v_t.amount > v_payer.max_per_transfer OR v_used + v_t.amount > v_payer.max_daily_debit THEN
            v_code := 'limit_exceeded';
        END IF;
    END IF;
    IF v_code IS NOT NULL THEN
        PERFORM hold_release(v_t.id, 'rejected', v_code);
        RETURN QUERY SELECT v_code, v_t.id, 0::bigint, NULL::bigint;
        RETURN;
    END IF;

    -- The held amount is there by construction: every other debit leaves `held` alone.
    UPDATE holds h SET resolution = 'posted', resolved_at = now() WHERE h.transfer_id = v_t.id;
    UPDATE accounts a SET balance = a.balance - v_hold.amount, held = a.held - v_hold.amount
     WHERE a.id = v_t.debit_account_id
    RETURNING a.balance INTO v_payer_balance;
    UPDATE accounts a SET balance = a.balance + v_t.amount WHERE a.id = v_t.credit_account_id
    RETURNING a.balance INTO v_float_balance;
    UPDATE accounts a SET balance = a.balance + (v_t.fee - v_t.commission) WHERE a.id = v_fee_account;
    UPDATE accounts a SET balance = a.balance + v_t.commission WHERE a.id = v_agent.commission_account;
    INSERT INTO entries (transfer_id, account_id, amount)
    VALUES (v_t.id, v_t.debit_account_id, -v_t.amount), (v_t.id, v_t.credit_account_id, v_t.amount);
    IF v_t.fee > 0 THEN
        INSERT INTO entries (transfer_id, account_id, amount)
        VALUES (v_t.id, v_t.debit_account_id, -v_t.fee), (v_t.id, v_fee_account, v_t.fee);
    END IF;
    IF v_t.commission > 0 THEN
        INSERT INTO entries (transfer_id, account_id, amount)
        VALUES (v_t.id, v_fee_account, -v_t.commission), (v_t.id, v_agent.commission_account, v_t.commission);
    END IF;
    INSERT INTO daily_usage AS u (account_id, day, debited) VALUES (v_t.debit_account_id, v_day, v_t.amount)
    ON CONFLICT (account_id, day) DO UPDATE SET debited = u.debited + excluded.debited;
    UPDATE transfers t SET status = 'posted', debit_balance_after = v_payer_balance WHERE t.id = v_t.id;
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
        (v_t.id, 'payer', v_payer.msisdn, v_payer.language, 'cash_out_withdrawn',
         jsonb_build_object('ref', transfer_ref(v_t.id), 'amount', v_t.amount, 'fee', v_t.fee,
                            'balance', v_payer_balance, 'agent', v_agent.name,
                            'agent_number', v_agent.agent_number, 'store', v_agent.store)),
        (v_t.id, 'payee', v_agent.msisdn, v_agent.language, 'cash_out_paid',
         jsonb_build_object('ref', transfer_ref(v_t.id), 'amount', v_t.amount, 'balance', v_float_balance,
                            'commission', v_t.commission, 'counterparty', v_payer.name,
                            'counterparty_msisdn', v_payer.msisdn));
    RETURN QUERY SELECT 'ok'::text, v_t.id, v_t.fee, v_payer_balance;
END $$;

-- The hold sweeper: expires up to `p_limit` open holds past their time, oldest first,
-- skipping any a decision holds at this moment (it resolves them itself). Returns how
-- many it expired.
CREATE FUNCTION holds_expire(p_limit integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v record;
    v_n integer := 0;
BEGIN
    FOR v IN
        SELECT h.transfer_id, t.kind FROM holds h JOIN transfers t ON t.id = h.transfer_id
         WHERE h.resolution IS NULL AND h.expires_at <= now()
         ORDER BY h.expires_at
         LIMIT p_limit
           FOR UPDATE OF h SKIP LOCKED
    LOOP
        PERFORM hold_release(v.transfer_id, 'expired', NULL);
        IF v.kind = 'cash_out' THEN
            PERFORM cash_out_tell_agent(v.transfer_id, 'cash_out_expired');
        END IF;
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n;
END $$;
