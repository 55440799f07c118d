-- Views for operators, with readable UTC times. They never expose secrets or key material.

CREATE VIEW operator_clients AS
SELECT
    t.slug AS tenant,
    c.client_id,
    json_extract(c.metadata, '$.client_name') AS client_name,
    c.token_endpoint_auth_method,
    json_extract(c.metadata, '$.application_type') AS application_type,
    json_extract(c.metadata, '$.redirect_uris') AS redirect_uris,
    json_extract(c.metadata, '$.grant_types') AS grant_types,
    c.registered_by,
    datetime(c.client_id_issued_at, 'unixepoch') AS issued_at,
    datetime(c.updated_at, 'unixepoch') AS updated_at
FROM clients c
JOIN tenants t ON t.id = c.tenant_id;

CREATE VIEW operator_refresh_families AS
SELECT
    t.slug AS tenant,
    f.id AS family_id,
    f.client_id,
    f.subject,
    f.scope,
    f.resource,
    CASE
        WHEN f.revoked_at IS NOT NULL THEN 'revoked'
        WHEN EXISTS (
            SELECT 1 FROM refresh_tokens r
            WHERE r.family_id = f.id AND r.rotated_at IS NULL
              AND r.expires_at > CAST(strftime('%s', 'now') AS INTEGER)
        ) THEN 'live'
        ELSE 'ended'
    END AS status,
    f.revoked_reason,
    datetime(f.created_at, 'unixepoch') AS created_at,
    datetime(f.revoked_at, 'unixepoch') AS revoked_at,
    (SELECT COUNT(*) FROM refresh_tokens r WHERE r.family_id = f.id) AS tokens_issued
FROM refresh_token_families f
JOIN tenants t ON t.id = f.tenant_id;

CREATE VIEW operator_signing_keys AS
SELECT
    t.slug AS tenant,
    k.kid,
    k.algorithm,
    k.state,
    datetime(k.created_at, 'unixepoch') AS created_at,
    datetime(k.activated_at, 'unixepoch') AS activated_at,
    datetime(k.retired_at, 'unixepoch') AS retired_at
FROM signing_keys k
JOIN tenants t ON t.id = k.tenant_id;

CREATE VIEW operator_audit_events AS
SELECT
    e.id,
    t.slug AS tenant,
    datetime(e.occurred_at, 'unixepoch') AS occurred_at,
    e.event,
    e.client_id,
    e.subject,
    e.detail
FROM audit_events e
LEFT JOIN tenants t ON t.id = e.tenant_id;
