-- JWT access tokens revoked before their expiry, by jti, kept until expires_at.
CREATE TABLE revoked_access_tokens (
    jti TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
