-- Replicas keep customers' profiles (names, language) in memory (PROFILE_CACHE_MAX),
-- and drop one the moment it changes: every change to those fields, and a customer's
-- removal, is announced at commit on the channel `customer_profile` with the number.
-- (The ledger refuses TRUNCATE: entries cannot be truncated.)
CREATE FUNCTION customers_profile_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('customer_profile', OLD.msisdn);
    IF TG_OP = 'UPDATE' AND NEW.msisdn <> OLD.msisdn THEN
        PERFORM pg_notify('customer_profile', NEW.msisdn);
    END IF;
    RETURN NULL;
END
$$;

-- On what changed, not on what a statement named: an update that rewrites a name with
-- itself says nothing, and a change made by another trigger is still announced.
CREATE TRIGGER customers_profile_changed AFTER UPDATE ON customers FOR EACH ROW
    WHEN (OLD.msisdn IS DISTINCT FROM NEW.msisdn
          OR OLD.first_name IS DISTINCT FROM NEW.first_name
          OR OLD.last_name IS DISTINCT FROM NEW.last_name
          OR OLD.language IS DISTINCT FROM NEW.language)
    EXECUTE FUNCTION customers_profile_changed();

CREATE TRIGGER customers_profile_removed AFTER DELETE ON customers FOR EACH ROW
    EXECUTE FUNCTION customers_profile_changed();
