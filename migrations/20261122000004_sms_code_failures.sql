-- Wrong one-time codes per number, across SMS conversations: a conversation allows
-- three, and this caps the day's total, so that guessing a six-digit code is
-- impossible rather than slow. A number over the cap cannot confirm movements by SMS
-- until the day is out; USSD with the PIN is unaffected, so that a sender who fakes a
-- subscriber's number cannot lock them out of their wallet.
CREATE TABLE sms_code_failures (
    msisdn   text PRIMARY KEY,
    failures integer NOT NULL CHECK (failures > 0),
    since    timestamptz NOT NULL DEFAULT now()
);
