use sqlx::Row;
use sqlx::any::AnyRow;

use super::batch::ClientJob;
use super::script::Param;
use super::{Store, StoreError};

/// A client as stored. `metadata` is the registered client metadata as a JSON object.
#[derive(Clone, Debug)]
pub struct ClientRecord {
    pub client_id: String,
    pub client_secret_hash: Option<String>,
    /// 0 when the secret never expires, as RFC 7591 writes it.
    pub client_secret_expires_at: Option<i64>,
    pub registration_access_token_hash: Option<String>,
    pub token_endpoint_auth_method: String,
    pub registered_by: String,
    pub metadata: String,
    pub client_id_issued_at: i64,
}

/// The columns of a client to insert.
#[derive(Clone, Debug)]
pub struct NewClient<'a> {
    pub client_id: &'a str,
    pub client_secret_hash: Option<&'a str>,
    pub client_secret_expires_at: Option<i64>,
    pub registration_access_token_hash: Option<&'a str>,
    pub token_endpoint_auth_method: &'a str,
    pub registered_by: &'a str,
    pub metadata: &'a str,
    pub issued_at: i64,
}

const CLIENT_COLUMNS: &str = "client_id, client_secret_hash, client_secret_expires_at, \
     registration_access_token_hash, token_endpoint_auth_method, registered_by, metadata, \
     client_id_issued_at";

fn client_from_row(row: &AnyRow) -> Result<ClientRecord, StoreError> {
    Ok(ClientRecord {
        client_id: row.try_get("client_id")?,
        client_secret_hash: row.try_get("client_secret_hash")?,
        client_secret_expires_at: row.try_get("client_secret_expires_at")?,
        registration_access_token_hash: row.try_get("registration_access_token_hash")?,
        token_endpoint_auth_method: row.try_get("token_endpoint_auth_method")?,
        registered_by: row.try_get("registered_by")?,
        metadata: row.try_get("metadata")?,
        client_id_issued_at: row.try_get("client_id_issued_at")?,
    })
}

/// The start of a client insert; `Store::insert_client` gives a row's values in its order.
pub(super) const INSERT_CLIENTS: &str = "INSERT INTO clients (tenant_id, client_id, \
     client_secret_hash, client_secret_expires_at, registration_access_token_hash, \
     token_endpoint_auth_method, registered_by, metadata, client_id_issued_at, updated_at) VALUES ";

impl Store {
    /// Inserts a client. Concurrent registrations share one statement (see `batch`).
    pub async fn insert_client(
        &self,
        tenant_id: &str,
        client: &NewClient<'_>,
    ) -> Result<(), StoreError> {
        let row = vec![
            Param::from(tenant_id),
            Param::from(client.client_id),
            Param::from(client.client_secret_hash),
            Param::from(client.client_secret_expires_at),
            Param::from(client.registration_access_token_hash),
            Param::from(client.token_endpoint_auth_method),
            Param::from(client.registered_by),
            Param::from(client.metadata),
            Param::from(client.issued_at),
            Param::from(client.issued_at),
        ];
        self.client_inserts
            .run(|reply| ClientJob { row, reply })
            .await
    }

    pub async fn client_by_id(
        &self,
        tenant_id: &str,
        client_id: &str,
    ) -> Result<Option<ClientRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE tenant_id = $1 AND client_id = $2"
        )))
        .bind(tenant_id)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    pub async fn list_clients(&self, tenant_id: &str) -> Result<Vec<ClientRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE tenant_id = $1 ORDER BY client_id_issued_at, client_id"
        )))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(client_from_row).collect()
    }

    /// Replaces a client's metadata and authentication method; returns whether it exists.
    pub async fn update_client(
        &self,
        tenant_id: &str,
        client_id: &str,
        token_endpoint_auth_method: &str,
        metadata: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE clients SET token_endpoint_auth_method = $1, metadata = $2, updated_at = $3 \
             WHERE tenant_id = $4 AND client_id = $5",
        )
        .bind(token_endpoint_auth_method)
        .bind(metadata)
        .bind(now)
        .bind(tenant_id)
        .bind(client_id)
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Deletes a client with its codes and refresh-token families in one transaction;
    /// returns whether it existed.
    pub async fn delete_client(
        &self,
        tenant_id: &str,
        client_id: &str,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.begin_write().await?;
        for statement in [
            "DELETE FROM authorization_codes WHERE tenant_id = $1 AND client_id = $2",
            "DELETE FROM authorization_requests WHERE tenant_id = $1 AND client_id = $2",
            "DELETE FROM consents WHERE tenant_id = $1 AND client_id = $2",
            "DELETE FROM refresh_token_families WHERE tenant_id = $1 AND client_id = $2",
        ] {
            sqlx::query(statement)
                .bind(tenant_id)
                .bind(client_id)
                .execute(&mut *transaction)
                .await?;
        }
        let deleted = sqlx::query("DELETE FROM clients WHERE tenant_id = $1 AND client_id = $2")
            .bind(tenant_id)
            .bind(client_id)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(deleted.rows_affected() == 1)
    }
}
