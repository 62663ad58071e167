-- Agents: a registered customer whose phone serves a shop, with a float account (the
-- e-money it sells for cash) and a commission account, and the stores it trades from.
-- Cash-in moves float to a customer's wallet, in one transaction, with a receipt to each.

CREATE TABLE agents (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id            bigint NOT NULL UNIQUE REFERENCES customers (id),
    agent_number           text NOT NULL UNIQUE CHECK (agent_number ~ '^[0-9]{5,7}$'),
    name                   text NOT NULL CHECK (length(name) BETWEEN 1 AND 40),
    float_account_id       bigint NOT NULL UNIQUE REFERENCES accounts (id),
    commission_account_id  bigint NOT NULL UNIQUE REFERENCES accounts (id),
    status                 text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agent_stores (
    store_number  text PRIMARY KEY CHECK (store_number ~ '^[0-9]{3,7}$'),
    agent_id      bigint NOT NULL REFERENCES agents (id),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 40),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_stores_agent ON agent_stores (agent_id);

ALTER TABLE transfers DROP CONSTRAINT transfers_kind_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_kind_check
    CHECK (kind IN ('p2p', 'funding', 'reversal', 'cash_in'));

-- An agent's float to a customer's wallet. Idempotent by key like transfer_p2p; the
-- customer's tier caps their balance; the float is debited only if it holds the amount.
CREATE FUNCTION agent_cash_in(p_key text, p_hash bytea, p_agent text, p_to text, p_amount bigint)
RETURNS TABLE (outcome text, transfer_id bigint, float_balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_prior transfers%ROWTYPE;
    v_agent record;
    v_payee record;
    v_code text;
    v_float_balance bigint;
    v_payee_balance bigint;
BEGIN
    INSERT INTO transfers (idempotency_key, request_hash, kind, status, amount)
    VALUES (p_key, p_hash, 'cash_in', 'pending', p_amount)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT * INTO STRICT v_prior FROM transfers WHERE idempotency_key = p_key;
        IF v_prior.request_hash <> p_hash OR v_prior.kind <> 'cash_in' THEN
            RETURN QUERY SELECT 'conflict'::text, v_prior.id, NULL::bigint;
        ELSE
            RETURN QUERY SELECT coalesce(v_prior.reject_code, 'ok'), v_prior.id, v_prior.debit_balance_after;
        END IF;
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
        PERFORM 1 FROM accounts a WHERE a.id IN (v_agent.account, v_payee.account) ORDER BY a.id FOR UPDATE;
        IF v_agent.status <> 'active'
           OR EXISTS (SELECT 1 FROM accounts a WHERE a.id IN (v_agent.account, v_payee.account) AND a.status <> 'active') THEN
            v_code := 'account_blocked';
        ELSIF (SELECT a.balance FROM accounts a WHERE a.id = v_payee.account) + p_amount > v_payee.max_balance THEN
            v_code := 'limit_exceeded';
        END IF;
    END IF;

    IF v_code IS NULL THEN
        UPDATE accounts a SET balance = a.balance - p_amount
         WHERE a.id = v_agent.account AND a.balance - a.held >= p_amount
        RETURNING a.balance INTO v_float_balance;
        IF NOT FOUND THEN
            v_code := 'insufficient_funds';
        END IF;
    END IF;

    IF v_code IS NOT NULL THEN
        UPDATE transfers t SET status = 'rejected', reject_code = v_code,
               debit_account_id = v_agent.account, credit_account_id = v_payee.account
         WHERE t.id = v_id;
        RETURN QUERY SELECT v_code, v_id, NULL::bigint;
        RETURN;
    END IF;

    UPDATE accounts a SET balance = a.balance + p_amount WHERE a.id = v_payee.account
    RETURNING a.balance INTO v_payee_balance;
    INSERT INTO entries (transfer_id, account_id, amount)
    VALUES (v_id, v_agent.account, -p_amount), (v_id, v_payee.account, p_amount);
    UPDATE transfers t SET status = 'posted', debit_account_id = v_agent.account,
           credit_account_id = v_payee.account, debit_balance_after = v_float_balance
     WHERE t.id = v_id;
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
        (v_id, 'payer', p_agent, v_agent.language, 'cash_in_given',
         jsonb_build_object('ref', transfer_ref(v_id), 'amount', p_amount, 'balance', v_float_balance,
                            'counterparty', v_payee.name, 'counterparty_msisdn', p_to)),
        (v_id, 'payee', p_to, v_payee.language, 'cash_in_received',
         jsonb_build_object('ref', transfer_ref(v_id), 'amount', p_amount, 'balance', v_payee_balance,
                            'agent', v_agent.name, 'agent_number', v_agent.agent_number));
    RETURN QUERY SELECT 'ok'::text, v_id, v_float_balance;
END $$;
