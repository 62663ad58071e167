-- Customers and their accounts. Money is bigint minor units, never a float.

CREATE TABLE customers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    msisdn      text NOT NULL UNIQUE CHECK (msisdn ~ '^\+[1-9][0-9]{6,14}$'),
    first_name  text NOT NULL CHECK (length(first_name) BETWEEN 1 AND 60),
    last_name   text NOT NULL CHECK (length(last_name) BETWEEN 1 AND 60),
    language    text NOT NULL DEFAULT 'en' CHECK (language ~ '^[a-z]{2,3}$'),
    -- HMAC-SHA-256(pepper, salt || pin): the pepper lives in configuration, not here.
    pin_salt    bytea NOT NULL CHECK (length(pin_salt) = 16),
    pin_hash    bytea NOT NULL CHECK (length(pin_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE accounts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id     bigint REFERENCES customers (id),
    kind            text NOT NULL CHECK (kind IN ('wallet', 'agent_float', 'agent_commission',
                                                   'biller_settlement', 'fee_revenue', 'suspense')),
    currency        char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'blocked', 'closed')),
    balance         bigint NOT NULL DEFAULT 0,
    held            bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
    allow_negative  boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (allow_negative OR balance >= 0),
    CHECK (kind <> 'wallet' OR customer_id IS NOT NULL)
);

CREATE UNIQUE INDEX accounts_one_wallet_per_customer ON accounts (customer_id) WHERE kind = 'wallet';
