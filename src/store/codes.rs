use sqlx::Row;

use super::batch::{RedemptionJob, RedemptionOutcome, grant_check, typed_rejection};
use super::{Store, StoreError};

#[derive(Clone, Debug)]
pub struct NewCode<'a> {
    pub code_hash: &'a str,
    pub client_id: &'a str,
    pub subject: &'a str,
    pub redirect_uri: &'a str,
    pub redirect_uri_sent: bool,
    pub scope: &'a str,
    pub resource: &'a str,
    pub code_challenge: &'a str,
    pub expires_at: i64,
}

/// The grant a code carries, as returned by the statement that redeems it.
#[derive(Clone, Debug)]
pub struct CodeRecord {
    pub client_id: String,
    pub subject: String,
    pub redirect_uri: String,
    /// Whether the authorization request named `redirect_uri`, so the token request must too.
    pub redirect_uri_sent: bool,
    pub scope: String,
    pub resource: String,
    pub code_challenge: String,
}

/// Outcome of presenting a code.
#[derive(Debug)]
pub enum RedeemedCode<E> {
    /// The code was consumed now and a refresh-token family started with the given id.
    Issued { code: CodeRecord, family_id: String },
    /// The code was consumed now but failed a check, so no tokens were issued.
    Rejected(E),
    /// The code had already been used; the family it started, if any, is now revoked.
    Reused { family_id: Option<String> },
    /// No unexpired code with this digest exists in this tenant.
    Unknown,
}

impl Store {
    pub async fn insert_code(
        &self,
        tenant_id: &str,
        code: &NewCode<'_>,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO authorization_codes (code_hash, tenant_id, client_id, subject, \
             redirect_uri, scope, resource, code_challenge, created_at, expires_at, \
             redirect_uri_sent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(code.code_hash)
        .bind(tenant_id)
        .bind(code.client_id)
        .bind(code.subject)
        .bind(code.redirect_uri)
        .bind(code.scope)
        .bind(code.resource)
        .bind(code.code_challenge)
        .bind(now)
        .bind(code.expires_at)
        .bind(i64::from(code.redirect_uri_sent))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Redeems a code and, when `check` accepts its grant, starts a refresh-token family with
    /// a first token whose digest is `refresh_hash` (if any), all in one transaction that
    /// concurrent redemptions share (see `batch`).
    ///
    /// The consuming statement alone decides which caller wins. Because of `used_at IS NULL`
    /// in its `WHERE` clause, concurrent redemptions on one instance or several sharing the
    /// database change the row once, so exactly one caller gets the grant back.
    /// A rejected check still consumes the code, so a guessed verifier gets one try.
    pub async fn redeem_code<E: Send + 'static>(
        &self,
        tenant_id: &str,
        code_hash: &str,
        refresh_hash: Option<&str>,
        refresh_expires_at: i64,
        now: i64,
        check: impl FnOnce(&CodeRecord) -> Result<(), E> + Send + 'static,
    ) -> Result<RedeemedCode<E>, StoreError> {
        let outcome = self
            .redemptions
            .run(|reply| RedemptionJob {
                tenant_id: tenant_id.to_owned(),
                code_hash: code_hash.to_owned(),
                refresh_hash: refresh_hash.map(str::to_owned),
                refresh_expires_at,
                now,
                check: grant_check(check),
                reply,
            })
            .await?;
        match outcome {
            RedemptionOutcome::Issued { code, family_id } => {
                Ok(RedeemedCode::Issued { code, family_id })
            }
            RedemptionOutcome::Rejected(rejection) => {
                Ok(RedeemedCode::Rejected(typed_rejection(rejection)?))
            }
            RedemptionOutcome::NotRedeemable => {
                self.handle_unredeemable_code(tenant_id, code_hash, now)
                    .await
            }
        }
    }

    /// Tells a reused code from an unknown or expired one, and revokes the family a reused
    /// code started. A second presentation means the code leaked, so the first redeemer must
    /// lose its tokens too.
    async fn handle_unredeemable_code<E>(
        &self,
        tenant_id: &str,
        code_hash: &str,
        now: i64,
    ) -> Result<RedeemedCode<E>, StoreError> {
        let row = sqlx::query(
            "SELECT family_id FROM authorization_codes \
             WHERE code_hash = $1 AND tenant_id = $2 AND used_at IS NOT NULL",
        )
        .bind(code_hash)
        .bind(tenant_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(RedeemedCode::Unknown);
        };
        let family_id: Option<String> = row.try_get("family_id")?;
        if let Some(family_id) = &family_id {
            self.revoke_family(tenant_id, family_id, "authorization_code_reuse", now)
                .await?;
        }
        Ok(RedeemedCode::Reused { family_id })
    }
}
