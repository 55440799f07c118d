-- The signing-key view gains the sealing master key and the removal time.
DROP VIEW operator_signing_keys;
CREATE VIEW operator_signing_keys AS
SELECT
    t.slug AS tenant,
    k.kid,
    k.algorithm,
    k.state,
    k.master_key_id,
    to_timestamp(k.created_at) AT TIME ZONE 'UTC' AS created_at,
    to_timestamp(k.activated_at) AT TIME ZONE 'UTC' AS activated_at,
    to_timestamp(k.retired_at) AT TIME ZONE 'UTC' AS retired_at,
    to_timestamp(k.removed_at) AT TIME ZONE 'UTC' AS removed_at
FROM signing_keys k
JOIN tenants t ON t.id = k.tenant_id;
