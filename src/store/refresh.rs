use sqlx::Row;
use sqlx::any::AnyRow;

use super::batch::{RotationJob, RotationOutcome, grant_check, typed_rejection};
use super::{Store, StoreError};

/// A refresh token with the grant of its family.
#[derive(Clone, Debug)]
pub struct FamilyRecord {
    pub family_id: String,
    pub client_id: String,
    pub subject: String,
    pub scope: String,
    pub resource: String,
    pub expires_at: i64,
    /// Whether this token is live: not rotated, not expired, family not revoked.
    pub active: bool,
}

/// Outcome of presenting a refresh token.
#[derive(Debug)]
pub enum RotatedToken<E> {
    /// The token was rotated now; its successor has the digest the caller supplied.
    Rotated(FamilyRecord),
    /// The token is live but failed a check; nothing changed.
    Rejected(E),
    /// The token had already been rotated; its whole family is now revoked.
    Reused { family_id: String },
    /// No live token with this digest exists in this tenant.
    Unknown,
}

fn family_from_row(row: &AnyRow, active: bool) -> Result<FamilyRecord, StoreError> {
    Ok(FamilyRecord {
        family_id: row.try_get("family_id")?,
        client_id: row.try_get("client_id")?,
        subject: row.try_get("subject")?,
        scope: row.try_get("scope")?,
        resource: row.try_get("resource")?,
        expires_at: row.try_get("expires_at")?,
        active,
    })
}

impl Store {
    /// Rotates a refresh token: when `check` accepts the live token, marks it rotated and
    /// inserts its successor. Concurrent rotations share one transaction (see `batch`).
    ///
    /// `rotated_at IS NULL` in the consuming statement closes the race between concurrent
    /// refreshes with one token: at most one of them changes the row, so at most one gets a
    /// successor. A rejected check restores the token, so a stranger presenting a stolen token
    /// cannot use up the rightful client's token.
    pub async fn rotate_refresh_token<E: Send + 'static>(
        &self,
        tenant_id: &str,
        token_hash: &str,
        successor_hash: &str,
        successor_expires_at: i64,
        now: i64,
        check: impl FnOnce(&FamilyRecord) -> Result<(), E> + Send + 'static,
    ) -> Result<RotatedToken<E>, StoreError> {
        let outcome = self
            .rotations
            .run(|reply| RotationJob {
                tenant_id: tenant_id.to_owned(),
                token_hash: token_hash.to_owned(),
                successor_hash: successor_hash.to_owned(),
                successor_expires_at,
                now,
                check: grant_check(check),
                reply,
            })
            .await?;
        match outcome {
            RotationOutcome::Rotated(family) => Ok(RotatedToken::Rotated(family)),
            RotationOutcome::Rejected(rejection) => {
                Ok(RotatedToken::Rejected(typed_rejection(rejection)?))
            }
            RotationOutcome::NotLive => {
                self.handle_unrotatable_token(tenant_id, token_hash, now)
                    .await
            }
        }
    }

    /// Revokes the family of a token presented after its rotation: either the client or a
    /// thief has a stale copy, and the server cannot tell which, so both lose it.
    async fn handle_unrotatable_token<E>(
        &self,
        tenant_id: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<RotatedToken<E>, StoreError> {
        let row = sqlx::query(
            "SELECT family_id FROM refresh_tokens \
             WHERE token_hash = $1 AND tenant_id = $2 AND rotated_at IS NOT NULL",
        )
        .bind(token_hash)
        .bind(tenant_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(RotatedToken::Unknown);
        };
        let family_id: String = row.try_get("family_id")?;
        self.revoke_family(tenant_id, &family_id, "refresh_token_reuse", now)
            .await?;
        Ok(RotatedToken::Reused { family_id })
    }

    /// Revokes a family unless it is already revoked, keeping the first reason recorded.
    pub async fn revoke_family(
        &self,
        tenant_id: &str,
        family_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE refresh_token_families SET revoked_at = $1, revoked_reason = $2 \
             WHERE id = $3 AND tenant_id = $4 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(reason)
        .bind(family_id)
        .bind(tenant_id)
        .execute(&self.writer)
        .await?;
        if result.rows_affected() == 1 {
            tracing::warn!(tenant_id, family_id, reason, "refresh-token family revoked");
        }
        Ok(result.rows_affected() == 1)
    }

    /// Looks up a refresh token by digest in a tenant, live or not.
    pub async fn refresh_token(
        &self,
        tenant_id: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<FamilyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT t.family_id, t.client_id, t.scope, t.expires_at, f.subject, f.resource, \
             CAST(CASE WHEN t.rotated_at IS NULL AND t.expires_at > $3 AND f.revoked_at IS NULL \
             THEN 1 ELSE 0 END AS BIGINT) AS live \
             FROM refresh_tokens t JOIN refresh_token_families f ON f.id = t.family_id \
             WHERE t.token_hash = $1 AND t.tenant_id = $2",
        )
        .bind(token_hash)
        .bind(tenant_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let live: i64 = row.try_get("live")?;
            family_from_row(&row, live == 1)
        })
        .transpose()
    }

    /// Returns whether the family exists in this tenant and is not revoked.
    pub async fn family_is_live(
        &self,
        tenant_id: &str,
        family_id: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 AS found FROM refresh_token_families \
             WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL",
        )
        .bind(family_id)
        .bind(tenant_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Records a JWT access token as revoked until it expires.
    pub async fn revoke_access_token(
        &self,
        tenant_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revoked_access_tokens (jti, tenant_id, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(tenant_id)
        .bind(expires_at)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn access_token_revoked(
        &self,
        tenant_id: &str,
        jti: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 AS found FROM revoked_access_tokens WHERE jti = $1 AND tenant_id = $2",
        )
        .bind(jti)
        .bind(tenant_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }
}
