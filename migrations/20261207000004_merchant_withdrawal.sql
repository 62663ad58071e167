-- A merchant's owner takes the settlement to their wallet: one movement from the
-- merchant's settlement shards (the fullest first, as many as the amount needs) to the
-- owner's wallet, free. The transfer names the shard it took most from as its debit
-- account; every other shard it took from gets its `merchant.withdrawn` event here, in
-- its own sequence (the movement holds all their locks), so a consumer of any shard
-- sees every change to it.

-- What the payee had after a movement, for a replay to answer with where the payee is
-- the one asking (a withdrawal's owner).
ALTER TABLE transfers ADD COLUMN credit_balance_after bigint;

ALTER TABLE transfers DROP CONSTRAINT transfers_kind_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_kind_check
    CHECK (kind IN ('p2p', 'funding', 'reversal', 'cash_in', 'cash_out', 'float_transfer', 'bill', 'merchant',
                    'merchant_withdrawal'));

CREATE FUNCTION merchant_withdraw(p_key text, p_hash bytea, p_owner text, p_merchant bigint, p_amount bigint)
RETURNS TABLE (outcome text, transfer_id bigint, settlement_balance bigint, wallet_balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_owner record;
    v_merchant merchants%ROWTYPE;
    v_code text;
    v_shards bigint[];
    v_shard record;
    v_left bigint := p_amount;
    v_take bigint;
    v_most bigint;
    v_most_taken bigint := 0;
    v_taken jsonb := '{}';
    v_settlement bigint;
    v_wallet bigint;
BEGIN
    v_id := ledger_claim(p_key, p_hash, 'merchant_withdrawal', p_amount);
    IF v_id IS NULL THEN
        RETURN QUERY
            SELECT r.outcome, r.transfer_id, r.balance,
                   CASE WHEN r.outcome <> 'conflict'
                        THEN (SELECT t.credit_balance_after FROM transfers t WHERE t.id = r.transfer_id) END
              FROM ledger_replay(p_key, p_hash, 'merchant_withdrawal') r;
        RETURN;
    END IF;

    SELECT c.id AS customer, a.id AS account, c.language, t.max_balance INTO v_owner
      FROM customers c
      JOIN accounts a ON a.customer_id = c.id AND a.kind = 'wallet'
      JOIN kyc_tiers t ON t.tier = c.kyc_tier
     WHERE c.msisdn = p_owner;
    SELECT * INTO v_merchant FROM merchants m WHERE m.id = p_merchant;
    IF v_owner.account IS NULL THEN
        v_code := 'not_registered';
    ELSIF v_merchant.id IS NULL OR v_merchant.owner_id <> v_owner.customer THEN
        v_code := 'recipient_unknown';
    -- A suspended merchant's money stays where it is until an operator lifts it.
    ELSIF v_merchant.status <> 'active' THEN
        v_code := 'account_blocked';
    END IF;

    IF v_code IS NULL THEN
        -- Every shard and the wallet, in id order, as ledger_lock would.
        SELECT array_agg(s.account_id) INTO v_shards FROM merchant_settlement_shards s WHERE s.merchant_id = p_merchant;
        IF v_shards IS NULL THEN
            RAISE EXCEPTION 'merchant_withdraw: merchant % has no settlement accounts', p_merchant;
        END IF;
        PERFORM 1 FROM accounts a WHERE a.id = ANY (v_shards || v_owner.account) ORDER BY a.id FOR NO KEY UPDATE;
        IF EXISTS (SELECT 1 FROM accounts a WHERE a.id = ANY (v_shards || v_owner.account) AND a.status <> 'active') THEN
            v_code := 'account_blocked';
        ELSIF (SELECT a.balance FROM accounts a WHERE a.id = v_owner.account) + p_amount > v_owner.max_balance THEN
            v_code := 'limit_exceeded';
        ELSIF (SELECT coalesce(sum(a.balance - a.held), 0) FROM accounts a WHERE a.id = ANY (v_shards)) < p_amount THEN
            v_code := 'insufficient_funds';
        END IF;
    END IF;

    IF v_code IS NOT NULL THEN
        -- Someone else's merchant is not named: its accounts get no event of the refusal.
        RETURN QUERY SELECT ledger_reject(v_id, v_code,
                                          CASE WHEN v_code IN ('not_registered', 'recipient_unknown') THEN NULL
                                               ELSE v_merchant.settlement_account_id END,
                                          v_owner.account), v_id,
                            NULL::bigint, NULL::bigint;
        RETURN;
    END IF;

    FOR v_shard IN
        SELECT a.id, a.balance - a.held AS available FROM accounts a
         WHERE a.id = ANY (v_shards) AND a.balance - a.held > 0
         ORDER BY a.balance - a.held DESC, a.id
    LOOP
        EXIT WHEN v_left = 0;
        v_take := least(v_left, v_shard.available);
        UPDATE accounts a SET balance = a.balance - v_take WHERE a.id = v_shard.id;
        INSERT INTO entries (transfer_id, account_id, amount) VALUES (v_id, v_shard.id, -v_take);
        v_taken := v_taken || jsonb_build_object(v_shard.id::text, v_take);
        IF v_take > v_most_taken THEN
            v_most := v_shard.id;
            v_most_taken := v_take;
        END IF;
        v_left := v_left - v_take;
    END LOOP;
    IF v_left <> 0 THEN
        RAISE EXCEPTION 'merchant_withdraw: % of % not found in the shards it counted', v_left, p_amount;
    END IF;
    UPDATE accounts a SET balance = a.balance + p_amount WHERE a.id = v_owner.account RETURNING a.balance INTO v_wallet;
    INSERT INTO entries (transfer_id, account_id, amount) VALUES (v_id, v_owner.account, p_amount);
    -- What is left to move (no shard holds anything today, but this is what `balance` shows).
    SELECT sum(a.balance - a.held) INTO v_settlement FROM accounts a WHERE a.id = ANY (v_shards);
    -- `debit_balance_after` is the merchant's whole settlement, not the debit shard's:
    -- what the owner is told is left.
    UPDATE transfers t SET status = 'posted', debit_account_id = v_most, credit_account_id = v_owner.account,
           debit_balance_after = v_settlement, credit_balance_after = v_wallet
     WHERE t.id = v_id;
    -- The other shards' events; the movement's own (its debit shard, the wallet) come at commit.
    PERFORM ledger_events('merchant.withdrawn', v_id, t.key::bigint, NULL,
                          jsonb_build_object('kind', 'merchant_withdrawal', 'direction', 'debit',
                                             'amount', t.value::bigint, 'fee', 0,
                                             'counterparty', account_ref(v_owner.account),
                                             'merchant', merchant_ref(p_merchant)),
                          NULL)
       FROM jsonb_each_text(v_taken) t
      WHERE t.key::bigint <> v_most;
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
        (v_id, 'payee', p_owner, v_owner.language, 'merchant_withdrawn',
         jsonb_build_object('ref', transfer_ref(v_id), 'amount', p_amount, 'merchant', v_merchant.display_name,
                            'balance', v_wallet, 'settlement', v_settlement));
    RETURN QUERY SELECT 'ok'::text, v_id, v_settlement, v_wallet;
END $$;
