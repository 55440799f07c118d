use sqlx::Row;

use super::{Store, StoreError};

/// A live browser session; `user_id` is set once the browser has logged in.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    pub user_id: Option<String>,
}

#[derive(Clone, Debug)]
pub struct NewAuthorizationRequest<'a> {
    pub id: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    /// Whether the authorization request named `redirect_uri` rather than relying on the
    /// client's only registered one.
    pub redirect_uri_sent: bool,
    /// The `prompt` value that changes the flow: `login` or `consent`.
    pub prompt: Option<&'a str>,
    pub scope: &'a str,
    pub resource: &'a str,
    pub code_challenge: &'a str,
    pub state: Option<&'a str>,
    pub session_hash: &'a str,
    pub csrf_token_hash: &'a str,
    pub expires_at: i64,
}

/// A pending authorization request, read back for the login and consent steps.
#[derive(Clone, Debug)]
pub struct AuthorizationRequestRecord {
    pub client_id: String,
    pub redirect_uri: String,
    pub redirect_uri_sent: bool,
    pub prompt: Option<String>,
    pub scope: String,
    pub resource: String,
    pub code_challenge: String,
    pub state: Option<String>,
    pub session_hash: String,
    pub csrf_token_hash: String,
}

impl AuthorizationRequestRecord {
    /// Returns the record as it will read back after `insert_authorization_request`.
    pub fn from_new(request: &NewAuthorizationRequest<'_>) -> Self {
        Self {
            client_id: request.client_id.to_owned(),
            redirect_uri: request.redirect_uri.to_owned(),
            redirect_uri_sent: request.redirect_uri_sent,
            prompt: request.prompt.map(str::to_owned),
            scope: request.scope.to_owned(),
            resource: request.resource.to_owned(),
            code_challenge: request.code_challenge.to_owned(),
            state: request.state.map(str::to_owned),
            session_hash: request.session_hash.to_owned(),
            csrf_token_hash: request.csrf_token_hash.to_owned(),
        }
    }
}

impl Store {
    pub async fn insert_session(
        &self,
        tenant_id: &str,
        id_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, tenant_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id_hash)
        .bind(tenant_id)
        .bind(now)
        .bind(expires_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Returns the unexpired session with this digest in this tenant.
    pub async fn session(
        &self,
        tenant_id: &str,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id FROM sessions WHERE id_hash = $1 AND tenant_id = $2 AND expires_at > $3",
        )
        .bind(id_hash)
        .bind(tenant_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|row| {
                row.try_get("user_id")
                    .map(|user_id| SessionRecord { user_id })
            })
            .transpose()?)
    }

    /// Replaces an anonymous session by a logged-in one under a new id, moving its pending
    /// authorization requests along, so that a session id known before login is worthless
    /// after it (session fixation).
    pub async fn authenticate_session(
        &self,
        tenant_id: &str,
        old_hash: &str,
        new_hash: &str,
        user_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1 AND tenant_id = $2")
            .bind(old_hash)
            .bind(tenant_id)
            .execute(&mut *transaction)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, tenant_id, user_id, created_at, authenticated_at, \
             expires_at) VALUES ($1, $2, $3, $4, $4, $5)",
        )
        .bind(new_hash)
        .bind(tenant_id)
        .bind(user_id)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *transaction)
        .await?;
        sqlx::query(
            "UPDATE authorization_requests SET session_hash = $1 \
             WHERE session_hash = $2 AND tenant_id = $3",
        )
        .bind(new_hash)
        .bind(old_hash)
        .bind(tenant_id)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    pub async fn insert_authorization_request(
        &self,
        tenant_id: &str,
        request: &NewAuthorizationRequest<'_>,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO authorization_requests (id, tenant_id, client_id, redirect_uri, scope, \
             resource, code_challenge, state, session_hash, csrf_token_hash, created_at, \
             expires_at, redirect_uri_sent, prompt) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(request.id)
        .bind(tenant_id)
        .bind(request.client_id)
        .bind(request.redirect_uri)
        .bind(request.scope)
        .bind(request.resource)
        .bind(request.code_challenge)
        .bind(request.state)
        .bind(request.session_hash)
        .bind(request.csrf_token_hash)
        .bind(now)
        .bind(request.expires_at)
        .bind(i64::from(request.redirect_uri_sent))
        .bind(request.prompt)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Returns the pending (unexpired, not completed) authorization request with this id.
    pub async fn pending_authorization_request(
        &self,
        tenant_id: &str,
        id: &str,
        now: i64,
    ) -> Result<Option<AuthorizationRequestRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT client_id, redirect_uri, redirect_uri_sent, prompt, scope, resource, \
             code_challenge, state, session_hash, csrf_token_hash FROM authorization_requests \
             WHERE id = $1 AND tenant_id = $2 AND completed_at IS NULL AND expires_at > $3",
        )
        .bind(id)
        .bind(tenant_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(AuthorizationRequestRecord {
                client_id: row.try_get("client_id")?,
                redirect_uri: row.try_get("redirect_uri")?,
                redirect_uri_sent: row.try_get::<i64, _>("redirect_uri_sent")? != 0,
                prompt: row.try_get("prompt")?,
                scope: row.try_get("scope")?,
                resource: row.try_get("resource")?,
                code_challenge: row.try_get("code_challenge")?,
                state: row.try_get("state")?,
                session_hash: row.try_get("session_hash")?,
                csrf_token_hash: row.try_get("csrf_token_hash")?,
            })
        })
        .transpose()
    }

    /// Marks a pending authorization request completed. One statement, so that two
    /// submissions of the same consent form cannot both mint a code: only the one that
    /// changes the row returns true.
    pub async fn complete_authorization_request(
        &self,
        tenant_id: &str,
        id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE authorization_requests SET completed_at = $1 \
             WHERE id = $2 AND tenant_id = $3 AND completed_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(id)
        .bind(tenant_id)
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    pub async fn has_consent(
        &self,
        tenant_id: &str,
        user_id: &str,
        client_id: &str,
        scope: &str,
        resource: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 AS found FROM consents WHERE tenant_id = $1 AND user_id = $2 \
             AND client_id = $3 AND scope = $4 AND resource = $5",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(client_id)
        .bind(scope)
        .bind(resource)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    pub async fn record_consent(
        &self,
        tenant_id: &str,
        user_id: &str,
        client_id: &str,
        scope: &str,
        resource: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO consents (tenant_id, user_id, client_id, scope, resource, granted_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tenant_id, user_id, client_id, scope, resource) \
             DO UPDATE SET granted_at = excluded.granted_at",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(client_id)
        .bind(scope)
        .bind(resource)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}
