-- JWS algorithm of a tenant's new signing keys: ES256, EdDSA or RS256.
ALTER TABLE tenants ADD COLUMN signing_algorithm TEXT NOT NULL DEFAULT 'ES256';
