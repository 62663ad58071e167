-- A customer asks for a send back (issue 23). Within a day of a send, the sender asks;
-- the amount is held on the recipient's wallet if it is still there, and the recipient
-- may dispute within a window. Undisputed, the sweeper runs the reversal of
-- `transfer_reverse` (at most once: its key is the original's); disputed, or already
-- spent, the request waits in an operator queue (approve = reverse, reject = release).
--
-- The hold is a transfer of its own (kind `reversal`, from the recipient to the sender,
-- key `reversal-hold:<original>`) that never posts: it is voided when the request ends,
-- and the reversal is the transfer `transfer_reverse` makes.
CREATE TABLE reversal_requests (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    original_id     bigint NOT NULL UNIQUE REFERENCES transfers (id),
    hold_id         bigint UNIQUE REFERENCES transfers (id),
    state           text NOT NULL CHECK (state IN ('held', 'queued', 'reversed', 'rejected')),
    -- Why it waits: the recipient disputed it, had spent the money, or a wallet was
    -- blocked when it was due (an operator decides); a merchant's consent (the merchant,
    -- or an operator, decides).
    queued_because  text CHECK (queued_because IN ('disputed', 'spent', 'blocked', 'merchant')),
    -- While held: when the reversal runs unless the recipient disputes.
    dispute_until   timestamptz,
    reversal_id     bigint REFERENCES transfers (id),
    -- Who ended it: `sweeper`, `recipient`, or the admin token's name.
    decided_by      text,
    note            text CHECK (length(note) <= 200),
    created_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    CHECK ((state IN ('held', 'queued')) = (resolved_at IS NULL)),
    CHECK ((state = 'queued') = (queued_because IS NOT NULL) OR state IN ('reversed', 'rejected')),
    CHECK ((state = 'reversed') = (reversal_id IS NOT NULL))
);
-- A party account as receipts name it: the name shown, and the phone told (NULL for
-- none: a biller), in its language.
CREATE FUNCTION account_party(p_account bigint, OUT name text, OUT msisdn text, OUT language text)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(c.first_name || ' ' || c.last_name, g.name, m.display_name, b.name, ''),
           coalesce(c.msisdn, gc.msisdn, m.notify_msisdn),
           coalesce(c.language, gc.language, m.language, 'en')
      FROM accounts a
      LEFT JOIN customers c ON c.id = a.customer_id AND a.kind = 'wallet'
      LEFT JOIN agents g ON g.float_account_id = a.id
      LEFT JOIN customers gc ON gc.id = g.customer_id
      LEFT JOIN merchant_settlement_shards ms ON ms.account_id = a.id
      LEFT JOIN merchants m ON m.id = ms.merchant_id
      LEFT JOIN biller_settlement_shards bs ON bs.account_id = a.id
      LEFT JOIN billers b ON b.id = coalesce(bs.biller_id, (SELECT x.id FROM billers x WHERE x.settlement_account_id = a.id))
     WHERE a.id = p_account
$$;

CREATE INDEX reversal_requests_due ON reversal_requests (dispute_until) WHERE state = 'held';
CREATE INDEX reversal_requests_queue ON reversal_requests (created_at) WHERE state = 'queued';
CREATE INDEX reversal_requests_hold ON reversal_requests (hold_id) WHERE state IN ('held', 'queued');

-- Why a hold was given back, for its event: a reversal request's hold says so in its
-- transfer's reason (`reversed`, `declined`); others by how they ended.
CREATE FUNCTION hold_reason(p_status text, p_reason text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_reason IN ('reversed', 'declined') THEN p_reason
                WHEN p_status = 'voided' THEN 'declined' ELSE 'expired' END
$$;

-- As before, but a reversal request's released hold says why (`reversed` or
-- `declined`), and a refund's debit from a merchant's shard is what that shard gave.
CREATE OR REPLACE FUNCTION transfers_events() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_type text;
    v_debited bigint;
    v_credited bigint;
    -- What a merchant payment's events carry beside the rest.
    v_merchant jsonb := '{}';
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = NEW.status THEN
        RETURN NULL;
    END IF;
    IF NEW.status = 'posted' THEN
        v_type := CASE NEW.kind
            WHEN 'p2p' THEN 'transfer.posted'
            WHEN 'reversal' THEN 'transfer.reversed'
            WHEN 'cash_in' THEN 'cash_in.posted'
            WHEN 'cash_out' THEN 'cash_out.posted'
            WHEN 'float_transfer' THEN 'float.moved'
            WHEN 'bill' THEN 'bill.paid'
            WHEN 'merchant_withdrawal' THEN 'merchant.withdrawn'
            WHEN 'funding' THEN 'account.funded'
            ELSE NEW.kind || '.posted' END;
        IF NEW.kind = 'merchant' THEN
            SELECT jsonb_strip_nulls(jsonb_build_object(
                       'merchant', merchant_ref(m.id),
                       'business_number', m.business_number, 'till', p.till_number,
                       'account_reference', p.account_reference,
                       'customer', jsonb_build_object('name', c.first_name || ' ' || c.last_name,
                                                      'msisdn', masked(c.msisdn))))
              INTO v_merchant
              FROM merchant_payments p
              JOIN merchants m ON m.id = p.merchant_id
              JOIN accounts a ON a.id = NEW.debit_account_id
              JOIN customers c ON c.id = a.customer_id
             WHERE p.transfer_id = NEW.id;
        ELSIF NEW.kind = 'merchant_withdrawal' THEN
            SELECT jsonb_build_object('merchant', merchant_ref(s.merchant_id)) INTO v_merchant
              FROM merchant_settlement_shards s WHERE s.account_id = NEW.debit_account_id;
        END IF;
        SELECT coalesce(sum(e.amount) FILTER (WHERE e.account_id = NEW.debit_account_id), 0),
               coalesce(sum(e.amount) FILTER (WHERE e.account_id = NEW.credit_account_id), 0)
          INTO v_debited, v_credited
          FROM entries e WHERE e.transfer_id = NEW.id;
        -- A withdrawal takes the amount from several shards: the debit shard's event says
        -- what it gave (the others have events of their own).
        PERFORM ledger_events(v_type, NEW.id, NEW.debit_account_id, NEW.credit_account_id,
            -- Money taken from a merchant's shards: what this one gave (a refund takes from
            -- any of them, as a withdrawal does).
            CASE WHEN NEW.kind = 'merchant_withdrawal'
                      OR (NEW.kind = 'reversal'
                          AND EXISTS (SELECT 1 FROM merchant_settlement_shards s WHERE s.account_id = NEW.debit_account_id))
                 THEN jsonb_build_object('kind', NEW.kind, 'direction', 'debit', 'amount', -v_debited, 'fee', 0,
                                         'counterparty', account_ref(NEW.credit_account_id))
                 ELSE jsonb_build_object('kind', NEW.kind, 'direction', 'debit', 'amount', NEW.amount,
                                         'fee', -v_debited - NEW.amount,
                                         'counterparty', account_ref(NEW.credit_account_id)) END
              || coalesce(v_merchant, '{}'),
            jsonb_build_object('kind', NEW.kind, 'direction', 'credit', 'amount', NEW.amount,
                               'fee', NEW.amount - v_credited, 'counterparty', account_ref(NEW.debit_account_id))
              || coalesce(v_merchant, '{}'));
    ELSIF NEW.status = 'held' AND NEW.debit_account_id IS NOT NULL THEN
        v_type := CASE NEW.kind WHEN 'bill' THEN 'bill.pending' ELSE 'hold.placed' END;
        PERFORM ledger_events(v_type, NEW.id, NEW.debit_account_id, NULL,
            jsonb_build_object('kind', NEW.kind, 'amount', NEW.amount, 'fee', coalesce(NEW.fee, 0),
                               'counterparty', account_ref(NEW.credit_account_id)),
            NULL);
    ELSIF NEW.status IN ('voided', 'expired') AND NEW.debit_account_id IS NOT NULL THEN
        v_type := CASE WHEN NEW.kind = 'bill' THEN 'bill.refused'
                       WHEN NEW.status = 'voided' THEN 'hold.released' ELSE 'hold.expired' END;
        PERFORM ledger_events(v_type, NEW.id, NEW.debit_account_id, NULL,
            jsonb_build_object('kind', NEW.kind, 'amount', NEW.amount,
                               'reason', hold_reason(NEW.status, CASE WHEN NEW.kind = 'reversal' THEN NEW.reason END)),
            NULL);
    ELSIF NEW.status = 'rejected' AND NEW.debit_account_id IS NOT NULL THEN
        v_type := CASE NEW.kind
            WHEN 'p2p' THEN 'transfer.rejected'
            WHEN 'float_transfer' THEN 'float.rejected'
            WHEN 'bill' THEN 'bill.refused'
            WHEN 'merchant_withdrawal' THEN 'merchant.withdrawal_rejected'
            ELSE NEW.kind || '.rejected' END;
        PERFORM ledger_events(v_type, NEW.id, NEW.debit_account_id, NULL,
            jsonb_build_object('kind', NEW.kind, 'amount', NEW.amount, 'reason', coalesce(NEW.reject_code, 'rejected')),
            NULL);
    END IF;
    RETURN NULL;
END $$;

-- The sender `p_from` asks for posted send `p_original` back, at most `p_within` after
-- it. Answers `ok` with the request's state (`held`: the amount is held on the
-- recipient's wallet until `until`; `queued`: it was spent), the same for a request
-- made before (a repeated hop), or `not_found` (not the caller's send, too old, not a
-- send, reversed already).
CREATE FUNCTION reversal_request(p_from text, p_original bigint, p_within interval, p_window interval,
                                 p_dial text)
RETURNS TABLE (outcome text, request_id bigint, state text, because text, amount bigint, until timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    v_orig transfers%ROWTYPE;
    v_payer record;
    v_payee record;
    v_request reversal_requests%ROWTYPE;
    v_hold bigint;
    v_key text := 'reversal-hold:' || p_original;
BEGIN
    SELECT * INTO v_orig FROM transfers t WHERE t.id = p_original FOR UPDATE;
    SELECT a.id AS account, c.msisdn, c.language, c.first_name || ' ' || c.last_name AS name INTO v_payer
      FROM customers c JOIN accounts a ON a.customer_id = c.id AND a.kind = 'wallet' WHERE c.msisdn = p_from;
    IF v_orig.id IS NULL OR v_payer.account IS NULL OR v_orig.debit_account_id <> v_payer.account THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::bigint, NULL::text, NULL::text, 0::bigint, NULL::timestamptz;
        RETURN;
    END IF;
    SELECT * INTO v_request FROM reversal_requests r WHERE r.original_id = p_original;
    IF FOUND THEN
        RETURN QUERY SELECT 'ok'::text, v_request.id, v_request.state, v_request.queued_because, v_orig.amount,
                            v_request.dispute_until;
        RETURN;
    END IF;
    IF v_orig.kind NOT IN ('p2p', 'merchant') OR v_orig.status <> 'posted' OR v_orig.created_at < now() - p_within
       OR EXISTS (SELECT 1 FROM transfers t WHERE t.reverses = p_original) THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::bigint, NULL::text, NULL::text, 0::bigint, NULL::timestamptz;
        RETURN;
    END IF;
    -- A merchant payment comes back only with the merchant's consent: nothing is held
    -- (its settlement is spread over shards); the merchant is asked.
    IF v_orig.kind = 'merchant' THEN
        -- The owner is asked: only the owner can refund, in the merchant menu.
        SELECT m.display_name, o.msisdn AS notify_msisdn, o.language INTO STRICT v_payee
          FROM merchant_payments p JOIN merchants m ON m.id = p.merchant_id JOIN customers o ON o.id = m.owner_id
         WHERE p.transfer_id = p_original;
        INSERT INTO reversal_requests (original_id, state, queued_because)
        VALUES (p_original, 'queued', 'merchant')
        RETURNING * INTO v_request;
        INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
            (p_original, 'outcome', v_payer.msisdn, v_payer.language, 'refund_requested',
             jsonb_build_object('ref', transfer_ref(p_original), 'amount', v_orig.amount,
                                'counterparty', v_payee.display_name, 'counterparty_msisdn', '')),
            (p_original, 'request', v_payee.notify_msisdn, v_payee.language, 'refund_asked',
             jsonb_build_object('ref', transfer_ref(p_original), 'amount', v_orig.amount,
                                'counterparty', v_payer.name, 'counterparty_msisdn', masked(v_payer.msisdn)));
        RETURN QUERY SELECT 'ok'::text, v_request.id, v_request.state, v_request.queued_because, v_orig.amount,
                            v_request.dispute_until;
        RETURN;
    END IF;
    SELECT a.id AS account, c.msisdn, c.language, c.first_name || ' ' || c.last_name AS name INTO STRICT v_payee
      FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE a.id = v_orig.credit_account_id;

    -- A blocked wallet's money moves only on an operator's word.
    IF NOT ledger_lock(v_payer.account, v_payee.account) THEN
        RETURN QUERY SELECT 'account_blocked'::text, NULL::bigint, NULL::text, NULL::text, 0::bigint,
                            NULL::timestamptz;
        RETURN;
    END IF;
    IF ledger_hold_funds(v_payee.account, v_orig.amount) THEN
        INSERT INTO transfers (idempotency_key, request_hash, kind, status, debit_account_id, credit_account_id,
                               amount, reason)
        VALUES (v_key, sha256(convert_to(v_key, 'UTF8')), 'reversal', 'held', v_payee.account, v_payer.account,
                v_orig.amount, 'asked back by the sender')
        RETURNING id INTO v_hold;
        INSERT INTO holds (transfer_id, account_id, amount, expires_at)
        VALUES (v_hold, v_payee.account, v_orig.amount, 'infinity');
        INSERT INTO reversal_requests (original_id, hold_id, state, dispute_until)
        VALUES (p_original, v_hold, 'held', now() + p_window)
        RETURNING * INTO v_request;
        INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
            (v_hold, 'request', v_payee.msisdn, v_payee.language, 'reversal_asked',
             jsonb_build_object('ref', transfer_ref(p_original), 'amount', v_orig.amount,
                                'counterparty', v_payer.name, 'counterparty_msisdn', v_payer.msisdn,
                                'dial', p_dial, 'hours', ceil(extract(epoch FROM p_window) / 3600)::int)),
            (v_hold, 'outcome', v_payer.msisdn, v_payer.language, 'reversal_held',
             jsonb_build_object('ref', transfer_ref(p_original), 'amount', v_orig.amount,
                                'counterparty', v_payee.name, 'counterparty_msisdn', v_payee.msisdn,
                                'hours', ceil(extract(epoch FROM p_window) / 3600)::int));
    ELSE
        INSERT INTO reversal_requests (original_id, state, queued_because)
        VALUES (p_original, 'queued', 'spent')
        RETURNING * INTO v_request;
        INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
            (p_original, 'outcome', v_payer.msisdn, v_payer.language, 'reversal_queued',
             jsonb_build_object('ref', transfer_ref(p_original), 'amount', v_orig.amount,
                                'counterparty', v_payee.name, 'counterparty_msisdn', v_payee.msisdn));
    END IF;
    RETURN QUERY SELECT 'ok'::text, v_request.id, v_request.state, v_request.queued_because, v_orig.amount,
                        v_request.dispute_until;
END $$;

-- Runs request `p_request`'s reversal: its hold released, and `transfer_reverse` (the
-- fee is not refunded: the sender's mistake). `by` is who decided: `sweeper` (only a
-- request still held past its window), `recipient`, or an operator. Answers the
-- request's state after (`reversed`; `queued` when the sweeper or the recipient finds a
-- wallet blocked: an operator decides), `insufficient_funds` (spent, and still not
-- there), or the state it was in and stays in.
CREATE FUNCTION reversal_run(p_request bigint, p_by text)
RETURNS TABLE (outcome text, reversal_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_request reversal_requests%ROWTYPE;
    v_orig transfers%ROWTYPE;
    v_done record;
    v_blocked boolean;
BEGIN
    SELECT * INTO STRICT v_request FROM reversal_requests r WHERE r.id = p_request FOR UPDATE;
    IF v_request.state NOT IN ('held', 'queued')
       -- Disputed since the sweeper listed it, or not yet due.
       OR (p_by = 'sweeper' AND (v_request.state <> 'held' OR v_request.dispute_until > now())) THEN
        RETURN QUERY SELECT v_request.state, v_request.reversal_id;
        RETURN;
    END IF;
    -- The original, then both wallets, as every movement locks them.
    SELECT * INTO STRICT v_orig FROM transfers t WHERE t.id = v_request.original_id FOR UPDATE;
    -- (A merchant's refund may take from any of its shards: all of them, in id order
    -- with the customer's wallet, as its withdrawals lock them.)
    IF v_orig.kind = 'merchant' THEN
        v_blocked := EXISTS (
            SELECT 1 FROM (SELECT a.status FROM accounts a
                            WHERE a.id = v_orig.debit_account_id
                               OR a.id IN (SELECT s.account_id FROM merchant_settlement_shards s
                                            JOIN merchant_payments p ON p.merchant_id = s.merchant_id
                                           WHERE p.transfer_id = v_orig.id)
                            ORDER BY a.id FOR NO KEY UPDATE) l
             WHERE l.status <> 'active');
    ELSE
        v_blocked := NOT ledger_lock(v_orig.debit_account_id, v_orig.credit_account_id);
    END IF;
    -- Money moves out of or into a blocked wallet only on an operator's word.
    IF v_blocked AND p_by IN ('sweeper', 'recipient', 'merchant') THEN
        UPDATE reversal_requests r SET state = 'queued', queued_because = 'blocked' WHERE r.id = p_request;
        RETURN QUERY SELECT 'queued'::text, NULL::bigint;
        RETURN;
    END IF;
    IF v_request.hold_id IS NOT NULL THEN
        PERFORM 1 FROM holds h WHERE h.transfer_id = v_request.hold_id FOR UPDATE;
        UPDATE transfers t SET reason = 'reversed' WHERE t.id = v_request.hold_id;
        PERFORM hold_release(v_request.hold_id, 'voided', NULL);
    END IF;
    SELECT * INTO STRICT v_done FROM transfer_reverse(v_request.original_id, false, 'asked back by the sender');
    IF v_done.outcome NOT IN ('ok', 'already_reversed') THEN
        -- Undo the release with the rest: the request stays as it was.
        RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'reversal_run: ' || v_done.outcome;
    END IF;
    UPDATE reversal_requests r SET state = 'reversed', reversal_id = v_done.transfer_id, decided_by = p_by,
           resolved_at = now()
     WHERE r.id = p_request;
    RETURN QUERY SELECT 'reversed'::text, v_done.transfer_id;
EXCEPTION WHEN SQLSTATE 'P0001' THEN
    IF SQLERRM LIKE 'reversal_run: %' THEN
        RETURN QUERY SELECT substr(SQLERRM, 15), NULL::bigint;
    ELSE
        RAISE;
    END IF;
END $$;

-- Ends request `p_request` without a reversal: the hold released, both told.
CREATE FUNCTION reversal_reject(p_request bigint, p_by text, p_note text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_request reversal_requests%ROWTYPE;
    v_reversal bigint;
    v_orig transfers%ROWTYPE;
    v_payer record;
    v_payee record;
BEGIN
    SELECT * INTO STRICT v_request FROM reversal_requests r WHERE r.id = p_request FOR UPDATE;
    IF v_request.state NOT IN ('held', 'queued') THEN
        RETURN v_request.state;
    END IF;
    SELECT * INTO STRICT v_orig FROM transfers t WHERE t.id = v_request.original_id FOR UPDATE;
    PERFORM ledger_lock(v_orig.debit_account_id, v_orig.credit_account_id);
    SELECT c.msisdn, c.language, c.first_name || ' ' || c.last_name AS name INTO STRICT v_payer
      FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE a.id = v_orig.debit_account_id;
    -- The payee: a customer, or a merchant (through the shard it was paid to).
    SELECT p.msisdn, p.language, p.name INTO STRICT v_payee FROM account_party(v_orig.credit_account_id) p;
    -- Reversed by an operator directly meanwhile: the request ends so, told nothing new.
    SELECT t.id INTO v_reversal FROM transfers t WHERE t.reverses = v_orig.id;
    IF v_reversal IS NOT NULL THEN
        IF v_request.hold_id IS NOT NULL THEN
            PERFORM 1 FROM holds h WHERE h.transfer_id = v_request.hold_id FOR UPDATE;
            UPDATE transfers t SET reason = 'reversed' WHERE t.id = v_request.hold_id;
            PERFORM hold_release(v_request.hold_id, 'voided', NULL);
        END IF;
        UPDATE reversal_requests r SET state = 'reversed', reversal_id = v_reversal, decided_by = p_by,
               resolved_at = now()
         WHERE r.id = p_request;
        RETURN 'reversed';
    END IF;
    IF v_request.hold_id IS NOT NULL THEN
        PERFORM 1 FROM holds h WHERE h.transfer_id = v_request.hold_id FOR UPDATE;
        UPDATE transfers t SET reason = 'declined' WHERE t.id = v_request.hold_id;
        PERFORM hold_release(v_request.hold_id, 'voided', NULL);
        INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
            (v_request.hold_id, 'payer', v_payee.msisdn, v_payee.language, 'reversal_released',
             jsonb_build_object('ref', transfer_ref(v_orig.id), 'amount', v_orig.amount,
                                'counterparty', v_payer.name, 'counterparty_msisdn', v_payer.msisdn)),
            (v_request.hold_id, 'payee', v_payer.msisdn, v_payer.language, 'reversal_rejected',
             jsonb_build_object('ref', transfer_ref(v_orig.id), 'amount', v_orig.amount,
                                'counterparty', v_payee.name, 'counterparty_msisdn', v_payee.msisdn));
    ELSE
        -- (A merchant's request was `request`: the merchant asked; the sender's answer is `reply`.)
        INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
            (v_orig.id, CASE WHEN v_request.queued_because = 'merchant' THEN 'reply' ELSE 'request' END,
             v_payer.msisdn, v_payer.language, 'reversal_rejected',
             jsonb_build_object('ref', transfer_ref(v_orig.id), 'amount', v_orig.amount,
                                'counterparty', v_payee.name,
                                'counterparty_msisdn', CASE WHEN v_request.queued_because = 'merchant' THEN ''
                                                            ELSE v_payee.msisdn END));
    END IF;
    UPDATE reversal_requests r SET state = 'rejected', decided_by = p_by, note = p_note, resolved_at = now()
     WHERE r.id = p_request;
    RETURN 'rejected';
END $$;

-- The recipient `p_from` disputes held request `p_request`: it goes to the operators'
-- queue, the hold staying, and the sender is told. Answers `queued`, or `not_found`.
CREATE FUNCTION reversal_dispute(p_from text, p_request bigint)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_request reversal_requests%ROWTYPE;
    v_orig transfers%ROWTYPE;
    v_payer record;
    v_payee record;
BEGIN
    SELECT * INTO v_request FROM reversal_requests r WHERE r.id = p_request FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'not_found';
    END IF;
    SELECT * INTO STRICT v_orig FROM transfers t WHERE t.id = v_request.original_id;
    SELECT c.msisdn, c.language, c.first_name || ' ' || c.last_name AS name INTO STRICT v_payee
      FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE a.id = v_orig.credit_account_id;
    IF v_payee.msisdn <> p_from THEN
        RETURN 'not_found';
    END IF;
    IF v_request.state = 'queued' THEN
        RETURN 'queued';
    ELSIF v_request.state <> 'held' OR v_request.dispute_until <= now() THEN
        -- Past the window the reversal is due: the sweeper runs it.
        RETURN 'not_found';
    END IF;
    SELECT c.msisdn, c.language, c.first_name || ' ' || c.last_name AS name INTO STRICT v_payer
      FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE a.id = v_orig.debit_account_id;
    UPDATE reversal_requests r SET state = 'queued', queued_because = 'disputed' WHERE r.id = p_request;
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
        (v_orig.id, 'outcome', v_payer.msisdn, v_payer.language, 'reversal_disputed',
         jsonb_build_object('ref', transfer_ref(v_orig.id), 'amount', v_orig.amount,
                            'counterparty', v_payee.name, 'counterparty_msisdn', v_payee.msisdn));
    RETURN 'queued';
END $$;
