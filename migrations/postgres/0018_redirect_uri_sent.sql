-- 1 when the authorization request named redirect_uri, 0 when the client's only registered
-- URI was used. A code from a request that named it is redeemed only with the same
-- redirect_uri in the token request (RFC 6749 §4.1.3).
ALTER TABLE authorization_requests ADD COLUMN redirect_uri_sent BIGINT NOT NULL DEFAULT 1;
ALTER TABLE authorization_codes ADD COLUMN redirect_uri_sent BIGINT NOT NULL DEFAULT 1;
