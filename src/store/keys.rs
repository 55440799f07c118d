use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Store, StoreError};

/// A signing key as stored. `state` is `current`, `upcoming` or `retired`.
#[derive(Clone)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub algorithm: String,
    pub state: String,
    pub private_jwk: String,
    pub public_jwk: String,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn key_from_row(row: &AnyRow) -> Result<SigningKeyRecord, StoreError> {
    Ok(SigningKeyRecord {
        kid: row.try_get("kid")?,
        algorithm: row.try_get("algorithm")?,
        state: row.try_get("state")?,
        private_jwk: row.try_get("private_jwk")?,
        public_jwk: row.try_get("public_jwk")?,
    })
}

pub(super) async fn insert_signing_key(
    transaction: &mut Transaction<'static, Any>,
    tenant_id: &str,
    key: &SigningKeyRecord,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, tenant_id, algorithm, state, private_jwk, public_jwk, \
         created_at, activated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(&key.kid)
    .bind(tenant_id)
    .bind(&key.algorithm)
    .bind(&key.state)
    .bind(&key.private_jwk)
    .bind(&key.public_jwk)
    .bind(now)
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
        let rows = sqlx::query(
            "SELECT kid, algorithm, state, private_jwk, public_jwk FROM signing_keys \
             WHERE tenant_id = $1 AND state IN ('upcoming', 'current', 'retired') \
             ORDER BY created_at DESC, kid",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }
}
