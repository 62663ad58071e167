-- Promises of an SMS. A subscriber told "We are processing your request; you will
-- receive an SMS" is owed exactly one message saying what happened, whatever crashes in
-- between. The hop writes the promise down before it answers; whoever keeps it (the
-- process that runs the op when the op ends, or any replica's sweeper once it is due)
-- finds out what became of the op by its idempotency key and, in one transaction,
-- either lets the movement's own receipt stand or queues a notice.
CREATE TABLE op_promises (
    op_key        text PRIMARY KEY,
    op            text NOT NULL,
    -- Where the op's outcome is found: a transfer of this kind under `op_key`, or
    -- ('hold') the decision on the hold of transfer `request`.
    movement      text NOT NULL,
    request       bigint,
    -- Whether the movement's own receipts reach the dialler while it is held (an
    -- agent's cash-out request tells only the customer until it is decided).
    held_tells    boolean NOT NULL,
    msisdn        text NOT NULL,
    language      text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Left to the process running the op until then; any sweeper keeps it after.
    due_at        timestamptz NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    kept_at       timestamptz,
    kept_by       text CHECK (kept_by IN ('receipt', 'notice')),
    CHECK ((kept_at IS NULL) = (kept_by IS NULL)),
    CHECK ((movement = 'hold') = (request IS NOT NULL))
);
CREATE INDEX op_promises_due ON op_promises (due_at) WHERE kept_at IS NULL;

-- A key the keeper closed: a transfer row under it says the op never arrived (or was
-- refused before its movement began), so a statement still on its way meets the key
-- taken by another request and moves nothing. No request hashes to the empty string.
ALTER TABLE transfers
    DROP CONSTRAINT transfers_amount_check,
    ADD CONSTRAINT transfers_amount_check
        CHECK (amount > 0 OR (status = 'rejected' AND request_hash = ''::bytea));

-- Decisions on holds carry no transfer of their own: a key the keeper closed is fenced
-- here, and a decision under a fenced key does nothing.
CREATE TABLE op_fences (
    op_key    text PRIMARY KEY,
    fenced_at timestamptz NOT NULL DEFAULT now()
);

-- cash_out_decide under the op's idempotency key: the hold's row is locked first, then
-- the fence is read, so a decision and the keeper cannot both act.
CREATE FUNCTION cash_out_decide_keyed(p_key text, p_transfer bigint, p_customer text, p_approve boolean)
RETURNS TABLE (outcome text, transfer_id bigint, fee bigint, payer_balance bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM holds h WHERE h.transfer_id = p_transfer FOR UPDATE;
    IF EXISTS (SELECT 1 FROM op_fences f WHERE f.op_key = p_key) THEN
        RETURN QUERY SELECT 'not_arrived'::text, p_transfer, 0::bigint, NULL::bigint;
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM cash_out_decide(p_transfer, p_customer, p_approve);
END $$;

-- Keeps the promise under `p_key`, once. `p_hint` is the op's outcome when the process
-- that ran it knows it (a refusal made before any row was written: a wrong PIN). Returns
-- 'receipt' (the movement's own SMS tells the dialler), 'notice' (one was queued),
-- 'kept' (already), 'busy' (another keeper has it) or 'none' (no such promise). Waits at
-- most a second for a statement still running under the key; past that it fails, and
-- the caller tries again later.
CREATE FUNCTION op_promise_keep(p_key text, p_hint text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_p op_promises%ROWTYPE;
    v_t transfers%ROWTYPE;
    v_hold holds%ROWTYPE;
    v_reason text;
    v_template text := 'not_completed';
BEGIN
    SELECT * INTO v_p FROM op_promises p WHERE p.op_key = p_key FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN CASE WHEN EXISTS (SELECT 1 FROM op_promises p WHERE p.op_key = p_key) THEN 'busy' ELSE 'none' END;
    END IF;
    IF v_p.kept_at IS NOT NULL THEN
        RETURN 'kept';
    END IF;
    PERFORM set_config('lock_timeout', '1s', true);

    IF v_p.movement = 'hold' THEN
        SELECT * INTO v_hold FROM holds h WHERE h.transfer_id = v_p.request FOR UPDATE;
        SELECT * INTO v_t FROM transfers t WHERE t.id = v_p.request;
        IF v_hold.transfer_id IS NULL THEN
            -- No such request: the decision found nothing to decide.
            v_reason := 'expired';
        ELSIF v_hold.resolution IS NULL THEN
            INSERT INTO op_fences (op_key) VALUES (p_key) ON CONFLICT DO NOTHING;
            v_reason := coalesce(p_hint, 'not_arrived');
        ELSIF v_hold.resolution = 'posted' THEN
            v_reason := NULL;
        ELSIF v_hold.resolution = 'rejected' THEN
            v_reason := v_t.reject_code;
        ELSE
            v_reason := 'expired';
        END IF;
    ELSE
        -- Waits for a statement that inserted the key and has not committed yet; a
        -- statement that has not reached the key meets this row instead.
        INSERT INTO transfers (idempotency_key, request_hash, kind, status, reject_code, amount)
        VALUES (p_key, ''::bytea, v_p.movement, 'rejected', coalesce(p_hint, 'not_arrived'), 0)
        ON CONFLICT (idempotency_key) DO NOTHING;
        SELECT * INTO STRICT v_t FROM transfers t WHERE t.idempotency_key = p_key;
        IF v_t.status = 'rejected' THEN
            v_reason := v_t.reject_code;
        ELSIF v_t.status = 'held' AND NOT v_p.held_tells THEN
            v_template := 'completed';
        ELSE
            -- Posted, voided or expired: the movement's receipt or outcome message; a
            -- held bill: its receipt follows when the biller answers.
            v_reason := NULL;
        END IF;
    END IF;

    IF v_reason IS NULL AND v_template = 'not_completed' THEN
        UPDATE op_promises p SET kept_at = now(), kept_by = 'receipt' WHERE p.op_key = p_key;
        RETURN 'receipt';
    END IF;
    INSERT INTO outbox (op_key, role, msisdn, language, template, data)
    VALUES (p_key, 'outcome', v_p.msisdn, v_p.language, v_template,
            CASE v_template WHEN 'completed' THEN jsonb_build_object('op', v_p.op, 'ref', transfer_ref(v_t.id))
                            ELSE jsonb_build_object('outcome', v_reason) END)
    ON CONFLICT (op_key) DO NOTHING;
    UPDATE op_promises p SET kept_at = now(), kept_by = 'notice' WHERE p.op_key = p_key;
    RETURN 'notice';
END $$;

-- Messages from subscribers are answered by a worker, not inside the provider's
-- callback: the callback stores the message (its text sealed under the data key, and
-- erased once answered) and acknowledges at once. A claim is a lease on the row
-- (`next_attempt_at`); a message that fails too often is dead-lettered with its reason.
-- Messages stored before this version kept no text to be answered with. One the
-- callback left unanswered long ago is closed; a recent one is dead-lettered by the
-- answerer (its sender told to check before trying again) once the callback that
-- stored it can no longer be answering it.
UPDATE sms_inbound SET answered_at = now() WHERE answered_at IS NULL AND received_at < now() - interval '1 hour';
ALTER TABLE sms_inbound
    ADD COLUMN text_sealed     bytea,
    ADD COLUMN attempts        integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN last_error      text,
    ADD COLUMN dead_at         timestamptz,
    ADD COLUMN handled         text;
CREATE INDEX sms_inbound_waiting ON sms_inbound (msisdn, id) WHERE answered_at IS NULL AND dead_at IS NULL;
