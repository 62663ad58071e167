-- Group posting: sends from concurrent hops posted by one call, in one transaction and
-- one commit, so the WAL flush every commit waits for is shared by the group instead of
-- paid by each send. Each send keeps its own idempotency key, request hash, outcome,
-- receipts and events exactly as when it is posted alone.
--
-- The body of a send after its key is claimed moves into `p2p_move`, which both
-- `transfer_p2p` and the group call.

-- Moves claimed transfer `p_id`: `p_amount` from `p_from`'s wallet to `p_to`'s, its fee
-- to revenue, receipts to both; or rejects it with a code. Nothing raised for a refusal.
-- A group passes what it looked up and locked already: the fee (`p_fee`, NULL to look
-- it up here) and the fee shard (`p_fee_account`, one for the group, so that groups do
-- not queue on all the shards at once).
CREATE FUNCTION p2p_move(p_id bigint, p_from text, p_to text, p_amount bigint,
                         p_fee_account bigint DEFAULT NULL, p_fee bigint DEFAULT NULL,
                         OUT outcome text, OUT fee bigint, OUT payer_balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
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

    IF v_code IS NULL AND p_fee IS NOT NULL THEN
        v_fee := p_fee;
    ELSIF v_code IS NULL THEN
        SELECT b.fee INTO v_fee FROM fee_bands b
         WHERE b.kind = 'p2p' AND p_amount BETWEEN b.min_amount AND b.max_amount;
        IF NOT FOUND THEN
            v_code := 'limit_exceeded';
        END IF;
    END IF;

    IF v_code IS NULL THEN
        IF v_fee > 0 THEN
            v_fee_account := coalesce(p_fee_account, ledger_fee_account(p_id));
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
        outcome := ledger_reject(p_id, v_code, v_payer_id, v_payee_id);
        fee := 0;
        RETURN;
    END IF;

    v_payee_balance := ledger_post(p_id, v_payer.id, v_payee.id, p_amount, v_payer_balance,
                                   p_fee => v_fee, p_fee_account => v_fee_account, p_spent => p_amount);
    INSERT INTO outbox (transfer_id, role, msisdn, language, template, data) VALUES
        (p_id, 'payer', p_from, v_payer.language, 'p2p_sent',
         jsonb_build_object('ref', transfer_ref(p_id), 'amount', p_amount, 'fee', v_fee,
                            'balance', v_payer_balance, 'counterparty',
                            v_payee.first_name || ' ' || v_payee.last_name, 'counterparty_msisdn', p_to)),
        (p_id, 'payee', p_to, v_payee.language, 'p2p_received',
         jsonb_build_object('ref', transfer_ref(p_id), 'amount', p_amount, 'balance', v_payee_balance,
                            'counterparty', v_payer.first_name || ' ' || v_payer.last_name,
                            'counterparty_msisdn', p_from));
    outcome := 'ok';
    fee := v_fee;
    payer_balance := v_payer_balance;
END $$;

-- Person to person, alone: claim the key (or replay what it left), then move.
CREATE OR REPLACE FUNCTION transfer_p2p(p_key text, p_hash bytea, p_from text, p_to text, p_amount bigint)
RETURNS TABLE (outcome text, transfer_id bigint, fee bigint, payer_balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_moved record;
BEGIN
    v_id := ledger_claim(p_key, p_hash, 'p2p', p_amount);
    IF v_id IS NULL THEN
        RETURN QUERY SELECT r.outcome, r.transfer_id, r.fee, r.balance FROM ledger_replay(p_key, p_hash, 'p2p') r;
        RETURN;
    END IF;
    v_moved := p2p_move(v_id, p_from, p_to, p_amount);
    RETURN QUERY SELECT v_moved.outcome, v_id, v_moved.fee, v_moved.payer_balance;
END $$;

-- A group of sends, item `i` being (p_keys[i], p_hashes[i], p_froms[i], p_tos[i],
-- p_amounts[i]), behind the payer's PIN where p_salts[i] is not NULL (checked as
-- `transfer_p2p_pinned` does; p_channels[i] names the hop's channel for a lockout's
-- event). One row per item, as `transfer_p2p_pinned` would have answered it alone.
--
-- The locks are taken in one order for every group and every lone send, so that groups
-- posted by several replicas at once never wait on each other in a circle: the PINs
-- (by number), then the keys (by key), then every account of the group (by id), before
-- anything moves, including every account a commit-time event will number. Every fee of a group goes to one fee
-- shard, the one its first transfer's id picks, locked only when some send of the group
-- pays a fee: a shard for each send would have every group lock most of the shards and
-- wait on every other. A lockout's event is written at the commit, as alone, naming
-- the channel of its own send (`ussd.channel_<customer>`), not the group's last.
--
-- A refusal refuses its own item; nothing is raised for one. A group that fails as a
-- whole (Postgres refused the statement) has changed nothing, and the caller posts its
-- items alone.
CREATE FUNCTION transfer_p2p_group(p_keys text[], p_hashes bytea[], p_froms text[], p_tos text[],
                                   p_amounts bigint[], p_salts bytea[], p_pins bytea[], p_channels text[],
                                   p_max_attempts integer, p_lock_secs double precision)
RETURNS TABLE (item integer, outcome text, transfer_id bigint, fee bigint, payer_balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    n integer := cardinality(p_keys);
    v_codes text[] := array_fill(NULL::text, ARRAY[n]);
    v_ids bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_fees bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_balances bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_claimed boolean[] := array_fill(false, ARRAY[n]);
    v_numbers text[] := '{}';
    v_accounts bigint[];
    -- The fee shard of the group's first transfer takes every fee of the group.
    v_fee_account bigint;
    v_fees_due boolean := false;
    v_fee bigint;
    v_pin text;
    v_customer bigint;
    v_moved record;
    v_replay record;
    i integer;
BEGIN
    FOR i IN SELECT s FROM generate_subscripts(p_keys, 1) s WHERE p_salts[s] IS NOT NULL ORDER BY p_froms[s], s LOOP
        SELECT c.outcome, c.customer_id INTO STRICT v_pin, v_customer
          FROM pin_check(p_froms[i], p_salts[i], p_pins[i], p_max_attempts, p_lock_secs) c;
        -- The first check of a customer that answers `pin_locked` is the one that
        -- locked the PIN, if this group did: its channel is the event's.
        IF v_pin = 'pin_locked' AND change_context('channel_' || v_customer) IS NULL THEN
            PERFORM set_config('ussd.channel_' || v_customer, p_channels[i], true);
            -- Its event numbers itself on the wallet at the commit: locked with the
            -- others now, in order, rather than alone and last.
            v_numbers := v_numbers || p_froms[i];
        END IF;
        IF v_pin <> 'ok' THEN
            v_codes[i] := v_pin;
        END IF;
    END LOOP;

    FOR i IN SELECT s FROM generate_subscripts(p_keys, 1) s WHERE v_codes[s] IS NULL ORDER BY p_keys[s], s LOOP
        v_ids[i] := ledger_claim(p_keys[i], p_hashes[i], 'p2p', p_amounts[i]);
        IF v_ids[i] IS NOT NULL THEN
            v_claimed[i] := true;
            v_fee_account := coalesce(v_fee_account, ledger_fee_account(v_ids[i]));
            SELECT b.fee INTO v_fee FROM fee_bands b
             WHERE b.kind = 'p2p' AND p_amounts[i] BETWEEN b.min_amount AND b.max_amount;
            IF FOUND THEN
                v_fees[i] := v_fee;
                v_fees_due := v_fees_due OR v_fee > 0;
                v_numbers := v_numbers || p_froms[i] || p_tos[i];
            ELSE
                -- Refused before it locks anything; its refusal's event numbers itself
                -- on the payer's wallet at the commit.
                v_numbers := v_numbers || p_froms[i];
            END IF;
        END IF;
    END LOOP;

    SELECT array_agg(a.id) INTO v_accounts
      FROM customers c JOIN accounts a ON a.customer_id = c.id AND a.kind = 'wallet'
     WHERE c.msisdn = ANY (v_numbers);
    IF v_fees_due THEN
        v_accounts := v_accounts || v_fee_account;
    END IF;
    PERFORM 1 FROM (SELECT a.id FROM accounts a WHERE a.id = ANY (v_accounts) ORDER BY a.id FOR NO KEY UPDATE) l;

    FOR i IN 1 .. n LOOP
        IF v_claimed[i] THEN
            v_moved := p2p_move(v_ids[i], p_froms[i], p_tos[i], p_amounts[i], v_fee_account, v_fees[i]);
            v_codes[i] := v_moved.outcome;
            v_fees[i] := v_moved.fee;
            v_balances[i] := v_moved.payer_balance;
        END IF;
    END LOOP;

    -- A key used before, perhaps by an earlier item of this very group: answered as
    -- that item was, now that it has been.
    FOR i IN 1 .. n LOOP
        IF v_codes[i] IS NULL THEN
            SELECT * INTO STRICT v_replay FROM ledger_replay(p_keys[i], p_hashes[i], 'p2p');
            v_codes[i] := v_replay.outcome;
            v_ids[i] := v_replay.transfer_id;
            v_fees[i] := v_replay.fee;
            v_balances[i] := v_replay.balance;
        END IF;
    END LOOP;

    RETURN QUERY SELECT s, v_codes[s], v_ids[s], coalesce(v_fees[s], 0), v_balances[s]
                   FROM generate_subscripts(p_keys, 1) s ORDER BY s;
END $$;

-- A lockout's event names the channel its own check set for its customer, and only
-- then the transaction's: a group checks the PINs of sends from several channels.
CREATE OR REPLACE FUNCTION customers_pin_events() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_was boolean := coalesce(OLD.pin_locked_until > now(), false);
    v_is boolean := coalesce(NEW.pin_locked_until > now(), false);
BEGIN
    IF v_is AND NOT v_was THEN
        PERFORM customer_event('pin.locked', NEW.id,
            jsonb_build_object('until', to_char(NEW.pin_locked_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                               'failures', NEW.pin_failures,
                               'channel', coalesce(change_context('channel_' || NEW.id), change_context('channel'))));
    ELSIF v_was AND NOT v_is THEN
        PERFORM customer_event('pin.unlocked', NEW.id,
            jsonb_build_object('by', coalesce(change_context('actor'), 'unknown')));
    END IF;
    RETURN NULL;
END $$;
