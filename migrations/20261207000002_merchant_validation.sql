-- A paybill may ask its own server about each payment before the customer confirms:
-- `validation_url` gets the business number, account and amount, signed with the
-- merchant's secret as webhook deliveries are (Standard Webhooks), and accepts or
-- rejects with a reason; when it does not answer within `validation_timeout_ms`,
-- `validation_default` applies. The secret is sealed under the data key, bound to
-- the merchant's row.

ALTER TABLE merchants
    ADD COLUMN validation_url           text CHECK (validation_url ~ '^https?://'),
    ADD COLUMN validation_default       text NOT NULL DEFAULT 'accept' CHECK (validation_default IN ('accept', 'reject')),
    ADD COLUMN validation_timeout_ms    integer NOT NULL DEFAULT 2000 CHECK (validation_timeout_ms BETWEEN 100 AND 5000),
    ADD COLUMN validation_secret_sealed bytea,
    ADD CONSTRAINT merchants_validation_paybill CHECK (validation_url IS NULL OR kind = 'paybill'),
    ADD CONSTRAINT merchants_validation_secret CHECK (validation_url IS NULL OR validation_secret_sealed IS NOT NULL);
