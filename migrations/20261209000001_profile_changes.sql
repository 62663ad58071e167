-- Replicas keep customers' profiles (names, language) in memory (PROFILE_CACHE_MAX),
-- and drop one the moment it changes: every change to those fields, or a customer's
-- removal, is announced at commit on the channel `customer_profile`, with the number.
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

CREATE TRIGGER customers_profile_changed
    AFTER UPDATE OF msisdn, first_name, last_name, language OR DELETE ON customers
    FOR EACH ROW EXECUTE FUNCTION customers_profile_changed();
