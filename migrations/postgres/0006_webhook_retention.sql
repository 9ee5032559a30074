-- Retention of finished webhook deliveries (webhooks.delivery_retention):
-- the oldest delivered or failed rows first; pending rows are never deleted.
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (updated_at) WHERE status <> 'pending';
