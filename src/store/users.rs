use sqlx::Row;

use super::{Store, StoreError};

#[derive(Clone, Debug)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
    pub password_hash: String,
}

impl Store {
    /// Inserts a user; `Duplicate` when the tenant already has that username.
    pub async fn insert_user(
        &self,
        tenant_id: &str,
        username: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<String, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO users (id, tenant_id, username, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&id)
        .bind(tenant_id)
        .bind(username)
        .bind(password_hash)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(id)
    }

    /// Replaces a user's password hash; returns whether the user exists.
    pub async fn set_user_password(
        &self,
        tenant_id: &str,
        username: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE users SET password_hash = $1, updated_at = $2 \
             WHERE tenant_id = $3 AND username = $4",
        )
        .bind(password_hash)
        .bind(now)
        .bind(tenant_id)
        .bind(username)
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    pub async fn user_by_username(
        &self,
        tenant_id: &str,
        username: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, username, password_hash FROM users WHERE tenant_id = $1 AND username = $2",
        )
        .bind(tenant_id)
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(UserRecord {
                id: row.try_get("id")?,
                username: row.try_get("username")?,
                password_hash: row.try_get("password_hash")?,
            })
        })
        .transpose()
    }

    pub async fn username_by_id(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT username FROM users WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get("username")).transpose()?)
    }
}
