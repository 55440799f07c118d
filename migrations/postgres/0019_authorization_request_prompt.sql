-- The request's prompt value (login or consent), so that consent asked for with
-- prompt=consent is asked even when the user logs in during the request. NULL for none.
ALTER TABLE authorization_requests ADD COLUMN prompt TEXT;
