-- Envelope encryption: the data keys personal data is sealed with, each kept wrapped
-- by a key-encryption key named by `kek_id` (from DATA_KEYS, or a KMS). The newest row
-- seals new values; older ones still open what they sealed. `ussd-gateway keys rotate`
-- re-wraps every row under a new key-encryption key and adds a new data key.
CREATE TABLE data_keys (
    id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kek_id       text NOT NULL CHECK (kek_id ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
    wrapped      bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    rewrapped_at timestamptz
);

-- A data key is never deleted while values may be sealed under it.
CREATE FUNCTION data_keys_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'data keys are never deleted: values sealed under them would be lost';
END $$;
CREATE TRIGGER data_keys_keep BEFORE DELETE ON data_keys FOR EACH ROW EXECUTE FUNCTION data_keys_keep();
