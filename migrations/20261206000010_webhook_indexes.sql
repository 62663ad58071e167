-- An endpoint's pending deliveries in order, and its dead ones, each found without
-- walking everything ever delivered to it: the worker claims the first few pending of
-- each endpoint, and the admin API counts both.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_dead ON webhook_deliveries (webhook_id) WHERE status = 'dead';
