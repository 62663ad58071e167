-- An operator's reversal covers every movement between two parties (issue 23): a send,
-- a merchant payment, a cash-in or cash-out, a float transfer, a bill (once the biller
-- has refunded it). The payee gives the amount back to the payer — the fee stays where
-- it went, paid by whoever paid it, unless it is refunded: then every account's share
-- of the original goes back — and it is refused when an account it takes from no
-- longer has what it must give. A merchant gives back out of any of its settlement
-- shards, so its customer's refund (an operator's, or the merchant's own consent to a
-- reversal request) never fails on one shard's share. A merchant's withdrawal to its
-- owner is no payment between parties: not reversed.

-- What a party holds, as its receipt says: a merchant's settlement over its shards,
-- any other account's own balance.
CREATE FUNCTION party_balance(p_account bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT sum(a.balance)::bigint FROM merchant_settlement_shards s
                       JOIN merchant_settlement_shards o ON o.merchant_id = s.merchant_id
                       JOIN accounts a ON a.id = o.account_id
                      WHERE s.account_id = p_account),
                    (SELECT a.balance FROM accounts a WHERE a.id = p_account))
$$;

CREATE OR REPLACE FUNCTION transfer_reverse(p_original bigint, p_refund_fee boolean, p_reason text)
RETURNS TABLE (outcome text, transfer_id bigint, amount bigint, fee_refunded bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_key text := 'reversal:' || p_original;
    v_orig transfers%ROWTYPE;
    v_prior transfers%ROWTYPE;
    v_id bigint;
    v_accounts bigint[];
    v_moves bigint[];
    v_refunded bigint;
    v_short boolean;
    v_loser record;
    v_gainer record;
    -- A merchant payment's refund: the merchant's shards, and what they give back.
    v_shards bigint[] := '{}';
    v_owed bigint := 0;
    v_left bigint;
    v_shard record;
    v_take bigint;
    v_taken jsonb := '{}';
    v_most bigint;
    v_most_taken bigint := 0;
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
    IF v_orig.kind NOT IN ('p2p', 'merchant', 'cash_in', 'cash_out', 'float_transfer', 'bill')
       OR v_orig.status <> 'posted' THEN
        RETURN QUERY SELECT 'not_reversible'::text, NULL::bigint, 0::bigint, 0::bigint;
        RETURN;
    END IF;

    -- What each account gives back. The amount, from the payee to the payer: the fee
    -- stays where it went, paid by whoever paid it (the payer on top, a merchant or a
    -- biller out of the amount). Refunded, every account's net in the original goes
    -- back: the fee from revenue, an agent's commission from its account.
    IF p_refund_fee THEN
        SELECT array_agg(x.account_id ORDER BY x.account_id), array_agg(-x.net ORDER BY x.account_id)
          INTO v_accounts, v_moves
          FROM (SELECT e.account_id, sum(e.amount)::bigint AS net FROM entries e
                 WHERE e.transfer_id = p_original
                 GROUP BY e.account_id HAVING sum(e.amount) <> 0) x;
    ELSE
        SELECT array_agg(v.id ORDER BY v.id), array_agg(v.m ORDER BY v.id) INTO v_accounts, v_moves
          FROM (VALUES (v_orig.debit_account_id, v_orig.amount), (v_orig.credit_account_id, -v_orig.amount)) v(id, m);
    END IF;
    -- A merchant gives back out of any of its settlement shards (the fullest first, as
    -- its withdrawals take), not only the one the payment went to.
    IF v_orig.kind = 'merchant' THEN
        SELECT array_agg(s.account_id) INTO v_shards FROM merchant_settlement_shards s
         WHERE s.merchant_id = (SELECT p.merchant_id FROM merchant_payments p WHERE p.transfer_id = p_original);
        SELECT -u.m INTO v_owed FROM unnest(v_accounts, v_moves) AS u(id, m) WHERE u.id = v_orig.credit_account_id;
        SELECT array_agg(u.id ORDER BY u.id), array_agg(u.m ORDER BY u.id) INTO v_accounts, v_moves
          FROM unnest(v_accounts, v_moves) AS u(id, m) WHERE u.id <> v_orig.credit_account_id;
    END IF;

    -- Every account in id order, as every movement locks them; then what each must give.
    PERFORM 1 FROM accounts a WHERE a.id = ANY (v_accounts || v_shards) ORDER BY a.id FOR NO KEY UPDATE;
    SELECT coalesce(bool_or(a.balance - a.held < -u.m), false) INTO v_short
      FROM unnest(v_accounts, v_moves) AS u(id, m) JOIN accounts a ON a.id = u.id
     WHERE u.m < 0 AND NOT a.allow_negative;
    v_short := v_short OR v_owed > (SELECT coalesce(sum(a.balance - a.held), 0) FROM accounts a WHERE a.id = ANY (v_shards));
    IF v_short THEN
        RETURN QUERY SELECT 'insufficient_funds'::text, NULL::bigint, 0::bigint, 0::bigint;
        RETURN;
    END IF;
    -- What each of the merchant's shards gives, the fullest first; the one that gives
    -- most is the reversal's debit account.
    IF v_owed > 0 THEN
        v_left := v_owed;
        FOR v_shard IN
            SELECT a.id, a.balance - a.held AS available FROM accounts a
             WHERE a.id = ANY (v_shards) AND a.balance - a.held > 0
             ORDER BY a.balance - a.held DESC, a.id
        LOOP
            EXIT WHEN v_left = 0;
            v_take := least(v_left, v_shard.available);
            v_taken := v_taken || jsonb_build_object(v_shard.id::text, v_take);
            IF v_take > v_most_taken THEN
                v_most := v_shard.id;
                v_most_taken := v_take;
            END IF;
            v_left := v_left - v_take;
        END LOOP;
        v_orig.credit_account_id := v_most;
    END IF;

    INSERT INTO transfers (idempotency_key, request_hash, kind, status, debit_account_id,
                           credit_account_id, amount, reverses, reason)
    VALUES (v_key, sha256(convert_to(v_key, 'UTF8')), 'reversal', 'posted',
            v_orig.credit_account_id, v_orig.debit_account_id, v_orig.amount, p_original, p_reason)
    RETURNING id INTO v_id;
    UPDATE accounts a SET balance = a.balance + u.m
      FROM unnest(v_accounts, v_moves) AS u(id, m) WHERE a.id = u.id AND u.m <> 0;
    INSERT INTO entries (transfer_id, account_id, amount)
    SELECT v_id, u.id, u.m FROM unnest(v_accounts, v_moves) AS u(id, m) WHERE u.m <> 0;
    IF v_owed > 0 THEN
        UPDATE accounts a SET balance = a.balance - t.value::bigint FROM jsonb_each_text(v_taken) t WHERE a.id = t.key::bigint;
        INSERT INTO entries (transfer_id, account_id, amount)
        SELECT v_id, t.key::bigint, -t.value::bigint FROM jsonb_each_text(v_taken) t;
        -- The other shards' events; the movement's own (the shard that gave most, the
        -- customer) come at commit.
        PERFORM ledger_events('transfer.reversed', v_id, t.key::bigint, NULL,
                              jsonb_build_object('kind', 'reversal', 'direction', 'debit',
                                                 'amount', t.value::bigint, 'fee', 0,
                                                 'counterparty', account_ref(v_orig.debit_account_id)),
                              NULL)
           FROM jsonb_each_text(v_taken) t
          WHERE t.key::bigint <> v_most;
    END IF;
    UPDATE transfers t SET debit_balance_after = party_balance(v_orig.credit_account_id) WHERE t.id = v_id;
    -- What fee revenue gave back, as a repeated call reports it.
    SELECT coalesce(-sum(e.amount), 0)::bigint INTO v_refunded FROM entries e
      JOIN accounts a ON a.id = e.account_id AND a.kind = 'fee_revenue'
     WHERE e.transfer_id = v_id;

    -- A receipt to each party with a phone: the original payee gives back, the payer gets back.
    -- What the payee gave: a merchant's over its shards, else its own move.
    SELECT p.*, coalesce((SELECT sum(t.value::bigint) FROM jsonb_each_text(v_taken) t),
                         -(SELECT u.m FROM unnest(v_accounts, v_moves) AS u(id, m) WHERE u.id = v_orig.credit_account_id)) AS moved,
           party_balance(v_orig.credit_account_id) AS balance,
           -- A customer's number is shown to the other party; a business's phone is not.
           CASE WHEN (SELECT a.kind FROM accounts a WHERE a.id = v_orig.credit_account_id) = 'wallet'
                THEN p.msisdn ELSE '' END AS shown
      INTO v_loser FROM account_party(v_orig.credit_account_id) p;
    SELECT p.*, (SELECT u.m FROM unnest(v_accounts, v_moves) AS u(id, m) WHERE u.id = v_orig.debit_account_id) AS moved,
           party_balance(v_orig.debit_account_id) AS balance,
           CASE WHEN (SELECT a.kind FROM accounts a WHERE a.id = v_orig.debit_account_id) = 'wallet'
                THEN p.msisdn ELSE '' END AS shown
      INTO v_gainer FROM account_party(v_orig.debit_account_id) p;
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data)
    SELECT v_id, r.role, r.msisdn, r.language, r.template, r.data
      FROM (VALUES
            ('payer', v_loser.msisdn, v_loser.language, 'reversal_debited',
             jsonb_build_object('ref', transfer_ref(v_id), 'original_ref', transfer_ref(p_original),
                                'amount', coalesce(v_loser.moved, 0), 'balance', v_loser.balance,
                                'counterparty', v_gainer.name,
                                -- A merchant sees its customers' numbers masked, as on its payments.
                                'counterparty_msisdn', CASE WHEN v_gainer.shown <> '' AND EXISTS (
                                                                 SELECT 1 FROM merchant_settlement_shards s
                                                                  WHERE s.account_id = v_orig.credit_account_id)
                                                            THEN masked(v_gainer.shown) ELSE v_gainer.shown END))
            , ('payee', v_gainer.msisdn, v_gainer.language, 'reversal_credited',
             jsonb_build_object('ref', transfer_ref(v_id), 'original_ref', transfer_ref(p_original),
                                'amount', coalesce(v_gainer.moved, 0), 'balance', v_gainer.balance,
                                'counterparty', v_loser.name, 'counterparty_msisdn', v_loser.shown))
           ) AS r(role, msisdn, language, template, data)
     WHERE r.msisdn IS NOT NULL;
    RETURN QUERY SELECT 'ok'::text, v_id, v_orig.amount, v_refunded;
END $$;
