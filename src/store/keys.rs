use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Store, StoreError};

/// A signing key as stored. `state` is `upcoming`, `current`, `retired` or `removed`;
/// `sealed_private_key` is sealed under the master key `master_key_id`, or plain JWK text
/// when `master_key_id` is `None` (a key stored before sealing).
#[derive(Clone)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub algorithm: String,
    pub state: String,
    pub sealed_private_key: String,
    pub master_key_id: Option<String>,
    pub public_jwk: String,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("state", &self.state)
            .field("master_key_id", &self.master_key_id)
            .finish_non_exhaustive()
    }
}

/// A key's place in its tenant's lifecycle, without key material.
#[derive(Clone, Debug)]
pub struct KeyLifecycle {
    pub tenant_id: String,
    pub kid: String,
    pub state: String,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retired_at: Option<i64>,
}

const KEY_COLUMNS: &str = "kid, algorithm, state, sealed_private_key, master_key_id, public_jwk, created_at, activated_at, retired_at";

fn key_from_row(row: &AnyRow) -> Result<SigningKeyRecord, StoreError> {
    Ok(SigningKeyRecord {
        kid: row.try_get("kid")?,
        algorithm: row.try_get("algorithm")?,
        state: row.try_get("state")?,
        sealed_private_key: row.try_get("sealed_private_key")?,
        master_key_id: row.try_get("master_key_id")?,
        public_jwk: row.try_get("public_jwk")?,
        created_at: row.try_get("created_at")?,
        activated_at: row.try_get("activated_at")?,
        retired_at: row.try_get("retired_at")?,
    })
}

pub(super) async fn insert_signing_key(
    transaction: &mut Transaction<'static, Any>,
    tenant_id: &str,
    key: &SigningKeyRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, tenant_id, algorithm, state, sealed_private_key, \
         master_key_id, public_jwk, created_at, activated_at, retired_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&key.kid)
    .bind(tenant_id)
    .bind(&key.algorithm)
    .bind(&key.state)
    .bind(&key.sealed_private_key)
    .bind(key.master_key_id.as_deref())
    .bind(&key.public_jwk)
    .bind(key.created_at)
    .bind(key.activated_at)
    .bind(key.retired_at)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

impl Store {
    /// Lists the keys a tenant publishes (every state but `removed`), newest first.
    pub async fn published_signing_keys(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM signing_keys \
             WHERE tenant_id = $1 AND state IN ('upcoming', 'current', 'retired') \
             ORDER BY created_at DESC, kid"
        )))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Lists every key of a tenant, removed ones included, newest first.
    pub async fn all_signing_keys(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM signing_keys WHERE tenant_id = $1 ORDER BY created_at DESC, kid"
        )))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Lists every key that still has private material, with its tenant's slug.
    pub async fn sealed_signing_keys(&self) -> Result<Vec<(String, SigningKeyRecord)>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.slug, k.kid, k.algorithm, k.state, k.sealed_private_key, k.master_key_id, \
             k.public_jwk, k.created_at, k.activated_at, k.retired_at \
             FROM signing_keys k JOIN tenants t ON t.id = k.tenant_id \
             WHERE k.state <> 'removed' ORDER BY t.slug, k.created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("slug")?, key_from_row(row)?)))
            .collect()
    }

    /// Replaces a key's sealed private part, if it is still sealed under
    /// `previous_master_key_id` (`None` for a plain key), so that concurrent re-sealing by
    /// two processes changes each key once. Returns whether this call changed it.
    pub async fn reseal_signing_key(
        &self,
        kid: &str,
        previous_master_key_id: Option<&str>,
        sealed_private_key: &str,
        master_key_id: &str,
    ) -> Result<bool, StoreError> {
        let result = match previous_master_key_id {
            Some(previous) => {
                sqlx::query(
                    "UPDATE signing_keys SET sealed_private_key = $1, master_key_id = $2 \
                     WHERE kid = $3 AND master_key_id = $4",
                )
                .bind(sealed_private_key)
                .bind(master_key_id)
                .bind(kid)
                .bind(previous)
                .execute(&self.writer)
                .await?
            }
            None => {
                sqlx::query(
                    "UPDATE signing_keys SET sealed_private_key = $1, master_key_id = $2 \
                     WHERE kid = $3 AND master_key_id IS NULL",
                )
                .bind(sealed_private_key)
                .bind(master_key_id)
                .bind(kid)
                .execute(&self.writer)
                .await?
            }
        };
        Ok(result.rows_affected() == 1)
    }

    /// Lists the lifecycle of every published key of every tenant, for the rotation task.
    pub async fn key_lifecycles(&self) -> Result<Vec<KeyLifecycle>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant_id, kid, state, created_at, activated_at, retired_at FROM signing_keys \
             WHERE state IN ('upcoming', 'current', 'retired')",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(KeyLifecycle {
                    tenant_id: row.try_get("tenant_id")?,
                    kid: row.try_get("kid")?,
                    state: row.try_get("state")?,
                    created_at: row.try_get("created_at")?,
                    activated_at: row.try_get("activated_at")?,
                    retired_at: row.try_get("retired_at")?,
                })
            })
            .collect()
    }

    /// Inserts an upcoming key; `Duplicate` when the tenant already has one, which is how
    /// instances racing to rotate end up creating a single key.
    pub async fn insert_upcoming_key(
        &self,
        tenant_id: &str,
        key: &SigningKeyRecord,
    ) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        insert_signing_key(&mut transaction, tenant_id, key).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Makes the upcoming key `kid` current and retires the current key, in one
    /// transaction. Returns false, changing nothing, when another instance got there first.
    pub async fn promote_signing_key(
        &self,
        tenant_id: &str,
        kid: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.begin_write().await?;
        let upcoming = sqlx::query(
            "SELECT kid FROM signing_keys WHERE tenant_id = $1 AND kid = $2 AND state = 'upcoming'",
        )
        .bind(tenant_id)
        .bind(kid)
        .fetch_optional(&mut *transaction)
        .await?;
        if upcoming.is_none() {
            transaction.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "UPDATE signing_keys SET state = 'retired', retired_at = $1 \
             WHERE tenant_id = $2 AND state = 'current'",
        )
        .bind(now)
        .bind(tenant_id)
        .execute(&mut *transaction)
        .await?;
        sqlx::query(
            "UPDATE signing_keys SET state = 'current', activated_at = $1 \
             WHERE kid = $2 AND state = 'upcoming'",
        )
        .bind(now)
        .bind(kid)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// Removes a retired key: no longer published, private material erased. Returns
    /// whether this call removed it.
    pub async fn remove_signing_key(&self, kid: &str, now: i64) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE signing_keys SET state = 'removed', removed_at = $1, sealed_private_key = '' \
             WHERE kid = $2 AND state = 'retired'",
        )
        .bind(now)
        .bind(kid)
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    pub async fn tenant_signing_algorithm(&self, tenant_id: &str) -> Result<String, StoreError> {
        let row = sqlx::query("SELECT signing_algorithm FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("signing_algorithm")?)
    }

    pub async fn set_tenant_signing_algorithm(
        &self,
        tenant_id: &str,
        algorithm: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE tenants SET signing_algorithm = $1 WHERE id = $2")
            .bind(algorithm)
            .bind(tenant_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
