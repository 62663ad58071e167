-- The PIN check where the hash lives, so that a transfer and the check of its PIN are
-- one round trip. The gateway keeps each number's salt from its last check and sends
-- the keyed hash of the entered PIN (the pepper never leaves the gateway, the PIN never
-- reaches the database). A salt that changed since (a new PIN, perhaps set through
-- another replica) answers `stale_salt` without counting a failure; the gateway reads
-- the salt again and asks once more.

-- Outcomes: ok, pin_invalid, pin_locked (now or already), not_registered, stale_salt.
-- A wrong PIN is counted in one statement, so concurrent wrong PINs all count; an
-- expired lock starts a new count. Comparing the hashes with `=` leaks nothing useful:
-- without the pepper nobody can aim at a chosen hash prefix.
CREATE FUNCTION pin_check(p_msisdn text, p_salt bytea, p_hash bytea,
                          p_max_attempts integer, p_lock_secs double precision)
RETURNS TABLE (outcome text, customer_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    c record;
    v_locked boolean;
BEGIN
    SELECT id, pin_salt, pin_hash, pin_failures, pin_locked_until INTO c
      FROM customers WHERE msisdn = p_msisdn;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_registered'::text, NULL::bigint;
        RETURN;
    END IF;
    IF c.pin_locked_until > now() THEN
        RETURN QUERY SELECT 'pin_locked'::text, c.id;
        RETURN;
    END IF;
    IF c.pin_salt <> p_salt THEN
        RETURN QUERY SELECT 'stale_salt'::text, c.id;
        RETURN;
    END IF;
    IF c.pin_hash = p_hash THEN
        IF c.pin_failures > 0 OR c.pin_locked_until IS NOT NULL THEN
            UPDATE customers SET pin_failures = 0, pin_locked_until = NULL WHERE id = c.id;
        END IF;
        RETURN QUERY SELECT 'ok'::text, c.id;
        RETURN;
    END IF;
    UPDATE customers u
       SET pin_failures = CASE WHEN u.pin_locked_until <= now() THEN 1 ELSE u.pin_failures + 1 END,
           pin_locked_until = CASE
               WHEN (CASE WHEN u.pin_locked_until <= now() THEN 1 ELSE u.pin_failures + 1 END) >= p_max_attempts
               THEN now() + make_interval(secs => p_lock_secs)
           END
     WHERE u.id = c.id
 RETURNING u.pin_locked_until IS NOT NULL INTO v_locked;
    RETURN QUERY SELECT CASE WHEN v_locked THEN 'pin_locked' ELSE 'pin_invalid' END, c.id;
END $$;

-- transfer_p2p behind the payer's PIN, in one transaction: a refused PIN answers its
-- outcome with no transfer (and no transfer row, so the key stays free for a retry).
CREATE FUNCTION transfer_p2p_pinned(p_key text, p_hash bytea, p_from text, p_to text, p_amount bigint,
                                    p_pin_salt bytea, p_pin_hash bytea,
                                    p_max_attempts integer, p_lock_secs double precision)
RETURNS TABLE (outcome text, transfer_id bigint, fee bigint, payer_balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_pin text;
BEGIN
    SELECT c.outcome INTO STRICT v_pin
      FROM pin_check(p_from, p_pin_salt, p_pin_hash, p_max_attempts, p_lock_secs) c;
    IF v_pin <> 'ok' THEN
        RETURN QUERY SELECT v_pin, NULL::bigint, 0::bigint, NULL::bigint;
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM transfer_p2p(p_key, p_hash, p_from, p_to, p_amount);
END $$;
