-- Views for operators, with readable UTC times. They never expose secrets or key material.

CREATE VIEW operator_clients AS
SELECT
    t.slug AS tenant,
    c.client_id,
    c.metadata::json ->> 'client_name' AS client_name,
    c.token_endpoint_auth_method,
    c.metadata::json ->> 'application_type' AS application_type,
    (c.metadata::json -> 'redirect_uris')::text AS redirect_uris,
    (c.metadata::json -> 'grant_types')::text AS grant_types,
    c.registered_by,
    to_timestamp(c.client_id_issued_at) AT TIME ZONE 'UTC' AS issued_at,
    to_timestamp(c.updated_at) AT TIME ZONE 'UTC' AS updated_at
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
              AND r.expires_at > CAST(extract(epoch FROM now()) AS BIGINT)
        ) THEN 'live'
        ELSE 'ended'
    END AS status,
    f.revoked_reason,
    to_timestamp(f.created_at) AT TIME ZONE 'UTC' AS created_at,
    to_timestamp(f.revoked_at) AT TIME ZONE 'UTC' AS revoked_at,
    (SELECT COUNT(*) FROM refresh_tokens r WHERE r.family_id = f.id) AS tokens_issued
FROM refresh_token_families f
JOIN tenants t ON t.id = f.tenant_id;

CREATE VIEW operator_signing_keys AS
SELECT
    t.slug AS tenant,
    k.kid,
    k.algorithm,
    k.state,
    to_timestamp(k.created_at) AT TIME ZONE 'UTC' AS created_at,
    to_timestamp(k.activated_at) AT TIME ZONE 'UTC' AS activated_at,
    to_timestamp(k.retired_at) AT TIME ZONE 'UTC' AS retired_at
FROM signing_keys k
JOIN tenants t ON t.id = k.tenant_id;

CREATE VIEW operator_audit_events AS
SELECT
    e.id,
    t.slug AS tenant,
    to_timestamp(e.occurred_at) AT TIME ZONE 'UTC' AS occurred_at,
    e.event,
    e.client_id,
    e.subject,
    e.detail
FROM audit_events e
LEFT JOIN tenants t ON t.id = e.tenant_id;
