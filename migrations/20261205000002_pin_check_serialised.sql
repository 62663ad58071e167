-- Concurrent PIN checks of one customer are taken one at a time. Without a lock, forty
-- guesses released at once all read the count before any had added to it, so more
-- than `p_max_attempts` were compared before the lock came down, and a right one among
-- them reset the count. Each check now takes a lock on the customer first: it sees the
-- count and lock the previous one left, so at most `p_max_attempts` wrong PINs are ever
-- compared before the lockout. An advisory lock, not the row's: a right PIN writes
-- nothing, and locking the row would make every check a write with its own WAL flush
-- (pgbench on this function alone: 16,100 checks/s unlocked, 9,000 with the row
-- locked, 15,000 with this lock). The check is otherwise unchanged.
CREATE OR REPLACE FUNCTION pin_check(p_msisdn text, p_salt bytea, p_hash bytea,
                                     p_max_attempts integer, p_lock_secs double precision)
RETURNS TABLE (outcome text, customer_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    c record;
    v_locked boolean;
BEGIN
    SELECT id INTO c FROM customers WHERE msisdn = p_msisdn;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_registered'::text, NULL::bigint;
        RETURN;
    END IF;
    -- Held until the check's transaction ends (a transfer's, when the check is part of
    -- it); the row is read again under it, so the count is the one the last check left.
    PERFORM pg_advisory_xact_lock(hashtext('pin_check'), hashint8(c.id));
    SELECT id, pin_salt, pin_hash, pin_failures, pin_locked_until INTO c
      FROM customers WHERE id = c.id;
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
