-- Protected resources (MCP server URIs) of a tenant; scopes is a space-separated list.
CREATE TABLE resources (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    uri TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, uri)
);
