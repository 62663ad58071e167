-- A subscriber whose money op ran on past the hop was told that an SMS would follow.
-- A movement's own receipts tell a success; a refusal (a wrong PIN, too little money)
-- writes none, so the gateway queues a notice instead: one per op, keyed by the op's
-- idempotency key.
ALTER TABLE outbox
    ADD COLUMN op_key text UNIQUE,
    DROP CONSTRAINT outbox_has_a_cause,
    ADD CONSTRAINT outbox_has_a_cause
        CHECK (transfer_id IS NOT NULL OR inbound_id IS NOT NULL OR op_key IS NOT NULL OR NOT transactional);
