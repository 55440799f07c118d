-- Security-relevant events, newest with the highest id. detail is a JSON object and never
-- holds a secret, token, code or password.
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    occurred_at BIGINT NOT NULL,
    event TEXT NOT NULL,
    client_id TEXT,
    subject TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, occurred_at);
