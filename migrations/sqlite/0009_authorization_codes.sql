-- Authorization codes, keyed by SHA-256 digest. subject is the user's name, the tokens'
-- sub. used_at is set by the one statement that redeems a code; family_id names the
-- refresh-token family that redemption started.
CREATE TABLE authorization_codes (
    code_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    resource TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    family_id TEXT
);
CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);
