-- Tamper-evident history: the event log and the admin audit trail are hash chains.
-- Each link is SHA-256 over the previous link's hash and its row's canonical text, so
-- changing, removing or reordering a row breaks every link after it;
-- `ussd-gateway audit verify` recomputes them from the rows and names the first that
-- does not match. The event log is sixteen chains, one per relay part, each extended
-- by the relay as it publishes the part's events (in the order one account's events
-- happened); the audit trail is one chain, extended as each row is written. Links
-- are append-only like the rows they vouch for.

CREATE TABLE chain_heads (
    chain  text PRIMARY KEY,
    link   bigint NOT NULL DEFAULT 0,
    hash   bytea NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'
);

CREATE TABLE chain_links (
    chain   text NOT NULL,
    link    bigint NOT NULL,
    -- The event's or audit row's id.
    row_id  bigint NOT NULL,
    hash    bytea NOT NULL,
    PRIMARY KEY (chain, link),
    UNIQUE (chain, row_id)
);

-- Where a chain resumes after its older rows were archived: the last archived link
-- and its hash (README, "Retention").
CREATE TABLE chain_checkpoints (
    chain        text NOT NULL,
    link         bigint NOT NULL,
    hash         bytea NOT NULL,
    archived_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain, link)
);

CREATE FUNCTION chain_links_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'chain links are append-only';
END $$;

CREATE TRIGGER chain_links_append_only BEFORE UPDATE OR DELETE ON chain_links
    FOR EACH ROW EXECUTE FUNCTION chain_links_append_only();

INSERT INTO chain_heads (chain) SELECT 'events:' || p FROM generate_series(0, 15) p;
INSERT INTO chain_heads (chain) VALUES ('audit');

-- The text a link hashes: the row's columns as a JSON array, so that no field's text
-- can pass for another's; `ussd-gateway audit verify` writes the same from the row's
-- columns (src/admin/chain.rs).
CREATE FUNCTION event_canonical(e events) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_array(e.id, e.type, e.subject, e.account_id, e.sequence,
                             (extract(epoch FROM e.time) * 1000000)::bigint, e.data)::text
$$;

CREATE FUNCTION audit_canonical(a admin_audit) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_array(a.id, (extract(epoch FROM a.at) * 1000000)::bigint, a.token_name, a.method,
                             a.route, a.target, a.status, a.detail)::text
$$;

-- Extends chain `p_chain` by `p_text` for row `p_row`, under the head's row lock.
CREATE FUNCTION chain_extend(p_chain text, p_row bigint, p_text text)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_link bigint;
    v_hash bytea;
BEGIN
    UPDATE chain_heads SET link = link + 1, hash = sha256(hash || convert_to(p_text, 'UTF8'))
     WHERE chain = p_chain
    RETURNING link, hash INTO v_link, v_hash;
    INSERT INTO chain_links (chain, link, row_id, hash) VALUES (p_chain, v_link, p_row, v_hash);
END $$;

-- The relay's published events of part `p_part`, in the order given.
CREATE FUNCTION chain_events(p_part smallint, p_ids bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_event events;
BEGIN
    FOR v_event IN SELECT e.* FROM unnest(p_ids) WITH ORDINALITY AS i(id, n) JOIN events e ON e.id = i.id ORDER BY i.n
    LOOP
        PERFORM chain_extend('events:' || p_part, v_event.id, event_canonical(v_event));
    END LOOP;
END $$;

CREATE FUNCTION admin_audit_chained() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM chain_extend('audit', NEW.id, audit_canonical(NEW));
    RETURN NULL;
END $$;

CREATE TRIGGER admin_audit_chained AFTER INSERT ON admin_audit
    FOR EACH ROW EXECUTE FUNCTION admin_audit_chained();

-- What was written before the chains: the audit trail in id order, the published
-- events per part in id order (those still waiting join their chain when published).
DO $$
DECLARE
    v_audit admin_audit;
    v_event events;
BEGIN
    FOR v_audit IN SELECT * FROM admin_audit ORDER BY id LOOP
        PERFORM chain_extend('audit', v_audit.id, audit_canonical(v_audit));
    END LOOP;
    FOR v_event IN SELECT e.* FROM events e WHERE NOT EXISTS (SELECT 1 FROM event_outbox o WHERE o.event_id = e.id)
                    ORDER BY e.id LOOP
        PERFORM chain_extend('events:' || (v_event.account_id % 16), v_event.id, event_canonical(v_event));
    END LOOP;
END $$;
