-- Keys move upcoming -> current -> retired -> removed. At most one current and one upcoming
-- key per tenant, so instances racing to rotate change the keys once. A removed key keeps its
-- row for the record, without private material.
ALTER TABLE signing_keys ADD COLUMN removed_at BIGINT;
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (tenant_id) WHERE state = 'current';
CREATE UNIQUE INDEX signing_keys_one_upcoming ON signing_keys (tenant_id) WHERE state = 'upcoming';
