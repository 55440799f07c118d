-- Token signing keys per tenant. private_jwk and public_jwk are JWK JSON documents.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    algorithm TEXT NOT NULL,
    state TEXT NOT NULL,
    private_jwk TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    activated_at BIGINT,
    retired_at BIGINT
);
CREATE INDEX signing_keys_tenant ON signing_keys (tenant_id, state);
