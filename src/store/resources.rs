use sqlx::Row;

use super::{Store, StoreError};

/// A protected resource and the space-separated scopes it accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRecord {
    pub uri: String,
    pub scopes: String,
}

impl Store {
    /// Inserts a resource, or replaces the scopes of an existing one.
    pub async fn upsert_resource(
        &self,
        tenant_id: &str,
        uri: &str,
        scopes: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO resources (tenant_id, uri, scopes, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, uri) DO UPDATE SET scopes = excluded.scopes",
        )
        .bind(tenant_id)
        .bind(uri)
        .bind(scopes)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Lists a tenant's resources, by URI.
    pub async fn list_resources(&self, tenant_id: &str) -> Result<Vec<ResourceRecord>, StoreError> {
        let rows =
            sqlx::query("SELECT uri, scopes FROM resources WHERE tenant_id = $1 ORDER BY uri")
                .bind(tenant_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(ResourceRecord {
                    uri: row.try_get("uri")?,
                    scopes: row.try_get("scopes")?,
                })
            })
            .collect()
    }
}
