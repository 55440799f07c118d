//! Group commit for refresh-token rotation and code redemption: concurrent requests wait in
//! a queue, and one task applies every waiting request in a single transaction, with one
//! consuming `UPDATE`, multi-row `INSERT`s and one commit. Under load this turns several
//! round trips and a commit (a WAL sync with `synchronous=FULL`) per grant into a few per
//! batch.
//!
//! The single-use guarantees are unchanged: the consuming statements still only change rows
//! with `rotated_at IS NULL` or `used_at IS NULL`, so a token or code changes at most once
//! whatever the batch contains, and when one batch contains the same one twice only the first
//! job gets the row.

use std::any::Any;
use std::collections::HashMap;
use std::fmt::Write;

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::codes::CodeRecord;
use super::refresh::FamilyRecord;
use super::{Backend, StoreError};

/// Most rotations one transaction applies.
const MAX_BATCH: usize = 64;

/// A check's rejection, typed by the caller and carried through the queue.
pub type Rejection = Box<dyn Any + Send>;
/// A caller's check of the grant a consumed token or code carries.
pub type GrantCheck<R> = Box<dyn FnOnce(&R) -> Result<(), Rejection> + Send>;
/// A caller's check of a live refresh token's grant.
pub type Check = GrantCheck<FamilyRecord>;

pub(super) struct RotationJob {
    pub tenant_id: String,
    pub token_hash: String,
    pub successor_hash: String,
    pub successor_expires_at: i64,
    pub now: i64,
    pub check: Check,
    pub reply: oneshot::Sender<Result<RotationOutcome, StoreError>>,
}

pub(super) enum RotationOutcome {
    Rotated(FamilyRecord),
    Rejected(Rejection),
    /// The token was not live in this tenant when the batch ran.
    NotLive,
}

/// Starts the batching task on the current runtime; it ends when every sender is dropped.
pub(super) fn start_rotations(writer: AnyPool, backend: Backend) -> mpsc::Sender<RotationJob> {
    let (sender, mut receiver) = mpsc::channel::<RotationJob>(4096);
    tokio::spawn(async move {
        let mut jobs = Vec::with_capacity(MAX_BATCH);
        while receiver.recv_many(&mut jobs, MAX_BATCH).await > 0 {
            let batch = std::mem::take(&mut jobs);
            rotate_batch(&writer, backend, batch).await;
        }
    });
    sender
}

async fn rotate_batch(writer: &AnyPool, backend: Backend, mut pending: Vec<RotationJob>) {
    let result = apply(writer, backend, &mut pending).await;
    reply_all(pending.into_iter().map(|job| job.reply), result);
}

/// Runs one batch; returns each job's outcome, in job order.
async fn apply(
    writer: &AnyPool,
    backend: Backend,
    jobs: &mut [RotationJob],
) -> Result<Vec<RotationOutcome>, StoreError> {
    let now = jobs.iter().map(|job| job.now).max().unwrap_or_default();
    let mut transaction = begin(writer, backend).await?;
    let mut consumed = consume(
        &mut transaction,
        "UPDATE refresh_tokens SET rotated_at = $1 WHERE rotated_at IS NULL AND expires_at > $1 \
         AND family_id IN (SELECT id FROM refresh_token_families WHERE revoked_at IS NULL) \
         AND token_hash IN (",
        ") RETURNING token_hash, tenant_id, family_id, client_id, scope, expires_at, \
         (SELECT subject FROM refresh_token_families f WHERE f.id = family_id) AS subject, \
         (SELECT resource FROM refresh_token_families f WHERE f.id = family_id) AS resource",
        now,
        jobs.iter()
            .map(|job| job.token_hash.clone())
            .collect::<Vec<_>>()
            .into_iter(),
        "token_hash",
    )
    .await?;

    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut restore = Vec::new();
    let mut successors = Vec::new();
    for (index, job) in jobs.iter_mut().enumerate() {
        let Some(row) = consumed.remove(&job.token_hash) else {
            outcomes.push(RotationOutcome::NotLive);
            continue;
        };
        let tenant_id: String = row.try_get("tenant_id")?;
        if tenant_id != job.tenant_id {
            restore.push(job.token_hash.clone());
            outcomes.push(RotationOutcome::NotLive);
            continue;
        }
        let family = FamilyRecord {
            family_id: row.try_get("family_id")?,
            client_id: row.try_get("client_id")?,
            subject: row.try_get("subject")?,
            scope: row.try_get("scope")?,
            resource: row.try_get("resource")?,
            expires_at: row.try_get("expires_at")?,
            active: true,
        };
        let check = std::mem::replace(&mut job.check, Box::new(|_| Ok(())));
        match run_check(check, &family)? {
            Ok(()) => {
                successors.push(index);
                outcomes.push(RotationOutcome::Rotated(family));
            }
            Err(rejection) => {
                // A rejected presentation must not use up the rightful client's token.
                restore.push(job.token_hash.clone());
                outcomes.push(RotationOutcome::Rejected(rejection));
            }
        }
    }

    restore_rows(
        &mut transaction,
        "UPDATE refresh_tokens SET rotated_at = NULL WHERE token_hash IN (",
        restore,
    )
    .await?;
    if !successors.is_empty() {
        let mut statement = String::from(
            "INSERT INTO refresh_tokens (token_hash, family_id, tenant_id, client_id, scope, created_at, expires_at) VALUES ",
        );
        values(&mut statement, 1, successors.len(), 7);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
        for index in &successors {
            let job = &jobs[*index];
            let RotationOutcome::Rotated(family) = &outcomes[*index] else {
                unreachable!("successors are only taken from rotated jobs");
            };
            query = query
                .bind(job.successor_hash.clone())
                .bind(family.family_id.clone())
                .bind(job.tenant_id.clone())
                .bind(family.client_id.clone())
                .bind(family.scope.clone())
                .bind(job.now)
                .bind(job.successor_expires_at);
        }
        query.execute(&mut *transaction).await?;
    }
    transaction.commit().await?;
    Ok(outcomes)
}

/// Runs a caller's check. A panic in one check fails its batch instead of the task that
/// serves every later batch.
fn run_check<R>(check: GrantCheck<R>, record: &R) -> Result<Result<(), Rejection>, StoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(record)))
        .map_err(|_| StoreError::Corrupt("a grant check panicked".into()))
}

/// Starts a batch's write transaction, taking SQLite's write lock up front.
async fn begin(
    writer: &AnyPool,
    backend: Backend,
) -> Result<Transaction<'static, sqlx::Any>, StoreError> {
    Ok(match backend {
        Backend::Sqlite => writer.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => writer.begin().await?,
    })
}

/// Runs a consuming statement `prefix` `$2, $3, ...` `suffix` with `$1` bound to `now` and the
/// keys after it; returns the changed rows by their `key_column`.
async fn consume(
    transaction: &mut Transaction<'static, sqlx::Any>,
    prefix: &str,
    suffix: &str,
    now: i64,
    keys: impl ExactSizeIterator<Item = String>,
    key_column: &str,
) -> Result<HashMap<String, AnyRow>, StoreError> {
    let mut statement = String::from(prefix);
    placeholders(&mut statement, 2, keys.len());
    statement.push_str(suffix);
    // The statement text holds only placeholders; every value is bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statement)).bind(now);
    for key in keys {
        query = query.bind(key);
    }
    let rows = query.fetch_all(&mut **transaction).await?;
    let mut consumed = HashMap::with_capacity(rows.len());
    for row in rows {
        consumed.insert(row.try_get(key_column)?, row);
    }
    Ok(consumed)
}

/// Runs `prefix` `$1, $2, ...` `)` for `keys`, unless there are none: the statement that puts
/// back rows a batch consumed but must not keep.
async fn restore_rows(
    transaction: &mut Transaction<'static, sqlx::Any>,
    prefix: &str,
    keys: Vec<String>,
) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut statement = String::from(prefix);
    placeholders(&mut statement, 1, keys.len());
    statement.push(')');
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
    for key in keys {
        query = query.bind(key);
    }
    query.execute(&mut **transaction).await?;
    Ok(())
}

/// Appends `$first, $first+1, ...` for `count` parameters.
fn placeholders(statement: &mut String, first: usize, count: usize) {
    for offset in 0..count {
        let separator = if offset == 0 { "" } else { ", " };
        let _ = write!(statement, "{separator}${}", first + offset);
    }
}

/// Appends `($a, $b, ...), (...)` for `rows` rows of `columns` parameters, numbered from
/// `first`.
fn values(statement: &mut String, first: usize, rows: usize, columns: usize) {
    for row in 0..rows {
        statement.push_str(if row == 0 { "(" } else { ", (" });
        placeholders(statement, first + row * columns, columns);
        statement.push(')');
    }
}

/// A code redemption waiting for the batch writer.
pub(super) struct RedemptionJob {
    pub tenant_id: String,
    pub code_hash: String,
    pub refresh_hash: Option<String>,
    pub refresh_expires_at: i64,
    pub now: i64,
    pub check: CodeCheck,
    pub reply: oneshot::Sender<Result<RedemptionOutcome, StoreError>>,
}

/// A caller's check of a redeemed code's grant.
pub type CodeCheck = GrantCheck<CodeRecord>;

pub(super) enum RedemptionOutcome {
    Issued {
        code: CodeRecord,
        family_id: String,
    },
    Rejected(Rejection),
    /// The code was not redeemable in this tenant when the batch ran.
    NotRedeemable,
}

/// Starts the batching task for code redemptions; it ends when every sender is dropped.
pub(super) fn start_redemptions(writer: AnyPool, backend: Backend) -> mpsc::Sender<RedemptionJob> {
    let (sender, mut receiver) = mpsc::channel::<RedemptionJob>(4096);
    tokio::spawn(async move {
        let mut jobs = Vec::with_capacity(MAX_BATCH);
        while receiver.recv_many(&mut jobs, MAX_BATCH).await > 0 {
            let mut batch = std::mem::take(&mut jobs);
            let result = redeem(&writer, backend, &mut batch).await;
            reply_all(batch.into_iter().map(|job| job.reply), result);
        }
    });
    sender
}

/// Sends each job its outcome, or every job the batch's failure.
fn reply_all<T>(
    replies: impl Iterator<Item = oneshot::Sender<Result<T, StoreError>>>,
    result: Result<Vec<T>, StoreError>,
) {
    match result {
        Ok(outcomes) => {
            for (reply, outcome) in replies.zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(error) => {
            let unavailable = error.is_unavailable();
            let message = error.to_string();
            for reply in replies {
                let _ = reply.send(Err(StoreError::Batch {
                    unavailable,
                    message: message.clone(),
                }));
            }
        }
    }
}

/// Redeems a batch of codes: one consuming `UPDATE`, then the families, first tokens and
/// code-to-family links of the accepted ones, in one transaction. A rejected check leaves
/// its code consumed, so a guessed verifier gets one try.
async fn redeem(
    writer: &AnyPool,
    backend: Backend,
    jobs: &mut [RedemptionJob],
) -> Result<Vec<RedemptionOutcome>, StoreError> {
    let now = jobs.iter().map(|job| job.now).max().unwrap_or_default();
    let mut transaction = begin(writer, backend).await?;
    let mut consumed = consume(
        &mut transaction,
        "UPDATE authorization_codes SET used_at = $1 WHERE used_at IS NULL AND expires_at > $1 AND code_hash IN (",
        ") RETURNING code_hash, tenant_id, client_id, subject, redirect_uri, redirect_uri_sent, scope, resource, code_challenge",
        now,
        jobs.iter().map(|job| job.code_hash.clone()).collect::<Vec<_>>().into_iter(),
        "code_hash",
    )
    .await?;

    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut restore = Vec::new();
    let mut accepted = Vec::new();
    for (index, job) in jobs.iter_mut().enumerate() {
        let Some(row) = consumed.remove(&job.code_hash) else {
            outcomes.push(RedemptionOutcome::NotRedeemable);
            continue;
        };
        let tenant_id: String = row.try_get("tenant_id")?;
        if tenant_id != job.tenant_id {
            // A code presented at another tenant is worthless there and stays unused.
            restore.push(job.code_hash.clone());
            outcomes.push(RedemptionOutcome::NotRedeemable);
            continue;
        }
        let code = CodeRecord {
            client_id: row.try_get("client_id")?,
            subject: row.try_get("subject")?,
            redirect_uri: row.try_get("redirect_uri")?,
            redirect_uri_sent: row.try_get::<i64, _>("redirect_uri_sent")? != 0,
            scope: row.try_get("scope")?,
            resource: row.try_get("resource")?,
            code_challenge: row.try_get("code_challenge")?,
        };
        let check = std::mem::replace(&mut job.check, Box::new(|_| Ok(())));
        match run_check(check, &code)? {
            Ok(()) => {
                let family_id = uuid::Uuid::new_v4().to_string();
                accepted.push((index, family_id.clone(), code.clone()));
                outcomes.push(RedemptionOutcome::Issued { code, family_id });
            }
            Err(rejection) => outcomes.push(RedemptionOutcome::Rejected(rejection)),
        }
    }

    restore_rows(
        &mut transaction,
        "UPDATE authorization_codes SET used_at = NULL WHERE code_hash IN (",
        restore,
    )
    .await?;
    if !accepted.is_empty() {
        let mut statement = String::from(
            "INSERT INTO refresh_token_families (id, tenant_id, client_id, subject, scope, resource, created_at) VALUES ",
        );
        values(&mut statement, 1, accepted.len(), 7);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
        for (index, family_id, code) in &accepted {
            query = query
                .bind(family_id.clone())
                .bind(jobs[*index].tenant_id.clone())
                .bind(code.client_id.clone())
                .bind(code.subject.clone())
                .bind(code.scope.clone())
                .bind(code.resource.clone())
                .bind(now);
        }
        query.execute(&mut *transaction).await?;

        let with_tokens: Vec<&(usize, String, CodeRecord)> = accepted
            .iter()
            .filter(|(index, _, _)| jobs[*index].refresh_hash.is_some())
            .collect();
        if !with_tokens.is_empty() {
            let mut statement = String::from(
                "INSERT INTO refresh_tokens (token_hash, family_id, tenant_id, client_id, scope, created_at, expires_at) VALUES ",
            );
            values(&mut statement, 1, with_tokens.len(), 7);
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
            for (index, family_id, code) in &with_tokens {
                let job = &jobs[*index];
                query = query
                    .bind(job.refresh_hash.clone())
                    .bind(family_id.clone())
                    .bind(job.tenant_id.clone())
                    .bind(code.client_id.clone())
                    .bind(code.scope.clone())
                    .bind(now)
                    .bind(job.refresh_expires_at);
            }
            query.execute(&mut *transaction).await?;
        }

        let mut statement =
            String::from("UPDATE authorization_codes SET family_id = CASE code_hash");
        for row in 0..accepted.len() {
            let _ = write!(statement, " WHEN ${} THEN ${}", row * 2 + 1, row * 2 + 2);
        }
        statement.push_str(" END WHERE code_hash IN (");
        placeholders(&mut statement, accepted.len() * 2 + 1, accepted.len());
        statement.push(')');
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
        for (index, family_id, _) in &accepted {
            query = query
                .bind(jobs[*index].code_hash.clone())
                .bind(family_id.clone());
        }
        for (index, _, _) in &accepted {
            query = query.bind(jobs[*index].code_hash.clone());
        }
        query.execute(&mut *transaction).await?;
    }
    transaction.commit().await?;
    Ok(outcomes)
}
