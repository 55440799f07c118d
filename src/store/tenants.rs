use sqlx::Row;

use super::keys::insert_signing_key;
use super::{SigningKeyRecord, Store, StoreError};

impl Store {
    /// Inserts a tenant with its first signing key in one transaction and returns the new
    /// tenant id; `Duplicate` when the slug is taken.
    pub async fn insert_tenant(
        &self,
        slug: &str,
        algorithm: &str,
        key: &SigningKeyRecord,
        now: i64,
    ) -> Result<String, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut transaction = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO tenants (id, slug, signing_algorithm, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(slug)
        .bind(algorithm)
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        insert_signing_key(&mut transaction, &id, key).await?;
        transaction.commit().await?;
        Ok(id)
    }

    /// Returns the id of the tenant named `slug`, if it exists.
    pub async fn tenant_id_by_slug(&self, slug: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT id FROM tenants WHERE slug = $1")
            .bind(slug)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get("id")).transpose()?)
    }

    /// Lists `(slug, created_at)` of every tenant, by slug.
    pub async fn list_tenants(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT slug, created_at FROM tenants ORDER BY slug")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("slug")?, row.try_get("created_at")?)))
            .collect()
    }

    pub async fn count_tenants(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM tenants")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}
