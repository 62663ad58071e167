-- The worker applies recent delivery reports that raced with its record of a send.
CREATE INDEX sms_delivery_reports_recent ON sms_delivery_reports (received_at);
