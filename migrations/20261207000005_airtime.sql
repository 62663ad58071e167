-- Airtime (issue 23). An airtime provider is a biller of category `airtime`: a top-up
-- is held, sent to the provider, posted or voided on its answer and reconciled when
-- it does not answer, by the steps that pay bills, with the provider's own protocol
-- (money::bills::client), fee bands and receipts. The number topped up is the
-- payment's account number, in E.164.
ALTER TABLE billers
    ADD COLUMN category text NOT NULL DEFAULT 'bill' CHECK (category IN ('bill', 'airtime')),
    -- The amounts a menu offers to pick (airtime bundles), in minor units.
    ADD COLUMN offer_amounts bigint[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(offer_amounts) <= 8 AND 0 < ALL (offer_amounts)),
    -- Airtime costs the customer its face value: a fee, if the bands give one, is the
    -- provider's commission, out of the amount.
    ADD CONSTRAINT billers_airtime_fee CHECK (category = 'bill' OR fee_payer = 'biller');

-- One airtime provider serves the menus at a time.
CREATE UNIQUE INDEX billers_one_airtime ON billers (category) WHERE category = 'airtime' AND status = 'active';

ALTER TABLE fee_bands DROP CONSTRAINT fee_bands_kind_check;
ALTER TABLE fee_bands ADD CONSTRAINT fee_bands_kind_check CHECK (kind IN ('p2p', 'withdrawal', 'bill', 'airtime'));
-- KES 5 to 10,000 of airtime, free.
INSERT INTO fee_bands (kind, min_amount, max_amount, fee) VALUES ('airtime', 500, 1000000, 0);

-- As before, with the fee bands of the biller's category, and the day's limit not
-- counting holds for sends asked back (migration 20261207000006).
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
         WHERE b.kind = v_biller.category AND p_amount BETWEEN b.min_amount AND b.max_amount;
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
                                -- (Not a hold for a send asked back: that is no spending of the owner's.)
                                (SELECT coalesce(sum(t.amount), 0)::bigint FROM holds h JOIN transfers t ON t.id = h.transfer_id
                                  WHERE h.account_id = v_payer.account AND h.resolution IS NULL AND t.kind <> 'reversal')) THEN
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

-- As before, with the airtime receipts for an airtime provider's top-ups.
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
            (p_transfer, 'payer', v_payer.msisdn, v_payer.language, CASE v_biller.category WHEN 'airtime' THEN 'airtime_refused' ELSE 'bill_rejected' END,
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
        (p_transfer, 'payer', v_payer.msisdn, v_payer.language, CASE v_biller.category WHEN 'airtime' THEN 'airtime_bought' ELSE 'bill_paid' END,
         jsonb_build_object('ref', transfer_ref(p_transfer), 'amount', v_t.amount,
                            'fee', v_taken.amount - v_t.amount,
                            'balance', v_taken.balance, 'biller', v_biller.name,
                            'account', v_pay.account_number, 'biller_ref', coalesce(p_biller_ref, ''),
                            'token', p_token));
    RETURN QUERY SELECT 'paid'::text, v_taken.balance;
END $$;
