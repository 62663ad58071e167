-- A movement locks its accounts FOR NO KEY UPDATE, not FOR UPDATE. Both keep two
-- movements over one account apart, but FOR UPDATE also stops the key-share lock that a
-- foreign key check takes on the account. A transfer rejected before it locked anything
-- (no fee band for its amount, say) names both accounts, its checks took those locks one
-- by one in no set order, and with a movement holding one account and waiting for the
-- other the two deadlocked. An account's key never changes, so nothing needs that
-- protection.
CREATE OR REPLACE FUNCTION ledger_lock(p_a bigint, p_b bigint, p_c bigint DEFAULT NULL, p_also bigint DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_blocked bigint;
BEGIN
    SELECT count(*) FILTER (WHERE l.status <> 'active' AND l.id IN (p_a, p_b, p_c)) INTO v_blocked
      FROM (SELECT a.id, a.status FROM accounts a
             WHERE a.id IN (p_a, p_b, p_c, p_also) ORDER BY a.id FOR NO KEY UPDATE) l;
    RETURN v_blocked = 0;
END $$;
