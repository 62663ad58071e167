-- Feature flags: a product switched on or off, or for a share of subscribers, without a
-- deploy. Every replica polls the sum of the revisions and the number of rows
-- (src/flags) and reloads the table when either moved: every insert takes a new
-- revision, and so does every update.
CREATE SEQUENCE flag_revisions;

CREATE TABLE flags (
    name         text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,39}$'),
    description  text NOT NULL DEFAULT '',
    enabled      boolean NOT NULL,
    -- The share of subscribers it is on for, in percent (a stable hash of the flag's
    -- name and the number decides); NULL: everyone.
    rollout      smallint CHECK (rollout BETWEEN 0 AND 100),
    -- E.164 numbers and channel names always in or out (out wins) while enabled.
    numbers_in   text[] NOT NULL DEFAULT '{}',
    numbers_out  text[] NOT NULL DEFAULT '{}',
    channels_in  text[] NOT NULL DEFAULT '{}',
    channels_out text[] NOT NULL DEFAULT '{}',
    revision     bigint NOT NULL DEFAULT nextval('flag_revisions'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION flags_revised() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.revision := nextval('flag_revisions');
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER flags_revised BEFORE UPDATE ON flags FOR EACH ROW EXECUTE FUNCTION flags_revised();
