-- Browser sessions at the login page, keyed by the SHA-256 digest of the cookie value.
-- user_id stays NULL until the browser logs in.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    authenticated_at BIGINT,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
