-- Validated authorization requests waiting for login and consent. Each is bound to the
-- browser session that started it; the form posts carry csrf_token, stored as a digest.
CREATE TABLE authorization_requests (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    resource TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    state TEXT,
    session_hash TEXT NOT NULL,
    csrf_token_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE INDEX authorization_requests_expiry ON authorization_requests (expires_at);
