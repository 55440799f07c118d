-- Private keys are sealed with AES-256-GCM under a master key. master_key_id names the
-- master key that sealed a row; NULL marks a key stored before sealing, which the server
-- seals at its next start.
ALTER TABLE signing_keys RENAME COLUMN private_jwk TO sealed_private_key;
ALTER TABLE signing_keys ADD COLUMN master_key_id TEXT;
