-- Indexes for statements that otherwise scan a table that grows with use:
-- re-keying a user's pending requests at login, deleting a client with its codes,
-- pending requests and consents, and the periodic purge of expired rows, which
-- holds SQLite's write lock while it runs.
CREATE INDEX authorization_requests_session ON authorization_requests (session_hash);
CREATE INDEX authorization_requests_client ON authorization_requests (tenant_id, client_id);
CREATE INDEX authorization_codes_client ON authorization_codes (tenant_id, client_id);
CREATE INDEX authorization_codes_created ON authorization_codes (created_at);
CREATE INDEX consents_client ON consents (tenant_id, client_id);
CREATE INDEX refresh_token_families_created ON refresh_token_families (created_at);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);
CREATE INDEX revoked_access_tokens_expiry ON revoked_access_tokens (expires_at);
