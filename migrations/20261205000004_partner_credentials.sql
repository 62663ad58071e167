-- A biller's credentials (API key, HMAC signing secret, client certificate and key for
-- mutual TLS, its certificate authority): one JSON document, sealed by the data vault
-- for this row and column. Never returned by the admin API.
ALTER TABLE billers ADD COLUMN credentials_sealed bytea;
