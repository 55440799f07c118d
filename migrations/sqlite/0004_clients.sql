-- OAuth clients. Secrets and registration access tokens are stored as SHA-256 hex digests.
-- metadata is the client's registered metadata as a JSON object.
CREATE TABLE clients (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    client_secret_hash TEXT,
    client_secret_expires_at BIGINT,
    registration_access_token_hash TEXT,
    token_endpoint_auth_method TEXT NOT NULL,
    registered_by TEXT NOT NULL,
    metadata TEXT NOT NULL,
    client_id_issued_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, client_id)
);
