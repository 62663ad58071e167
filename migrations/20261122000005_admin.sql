-- The admin API's credentials and its audit trail.

-- Bearer tokens: only a SHA-256 of each is kept (a token is 32 random bytes, so a
-- fast hash is enough), with the scopes it grants. Revoked tokens stay for the trail.
CREATE TABLE admin_tokens (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    token_hash  bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    scopes      text[] NOT NULL CHECK (cardinality(scopes) > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Every admin call, refused ones included: who (the token's name, or none), what
-- (method, route, the resource it named) and how it ended. Append-only.
CREATE TABLE admin_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    token_name  text,
    method      text NOT NULL,
    route       text NOT NULL,
    target      text,
    status      smallint NOT NULL,
    detail      jsonb
);
CREATE INDEX admin_audit_at ON admin_audit (at);

CREATE FUNCTION admin_audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'admin_audit is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER admin_audit_append_only BEFORE UPDATE OR DELETE ON admin_audit
    FOR EACH ROW EXECUTE FUNCTION admin_audit_is_append_only();
