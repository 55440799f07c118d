-- The signing-key view gains the sealing master key and the removal time.
DROP VIEW operator_signing_keys;
CREATE VIEW operator_signing_keys AS
SELECT
    t.slug AS tenant,
    k.kid,
    k.algorithm,
    k.state,
    k.master_key_id,
    datetime(k.created_at, 'unixepoch') AS created_at,
    datetime(k.activated_at, 'unixepoch') AS activated_at,
    datetime(k.retired_at, 'unixepoch') AS retired_at,
    datetime(k.removed_at, 'unixepoch') AS removed_at
FROM signing_keys k
JOIN tenants t ON t.id = k.tenant_id;
