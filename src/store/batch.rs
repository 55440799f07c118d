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
use std::future::Future;

use sqlx::any::AnyRow;
use sqlx::pool::PoolConnection;
use sqlx::{AnyPool, Row};
use tokio::sync::oneshot;

use super::batcher::Batcher;

use super::clients::INSERT_CLIENTS;
use super::codes::CodeRecord;
use super::refresh::FamilyRecord;
use super::script::{BatchTransaction, Param, Script};
use super::{Backend, StoreError};

/// A check's rejection, typed by the caller and carried through the queue.
pub type Rejection = Box<dyn Any + Send>;
/// A caller's check of the grant a consumed token or code carries.
pub type GrantCheck<R> = Box<dyn FnOnce(&R) -> Result<(), Rejection> + Send>;
/// A caller's check of a live refresh token's grant.
pub type Check = GrantCheck<FamilyRecord>;

/// Boxes a caller's check, whose rejection is of the caller's type `E`, for the queue.
pub(super) fn grant_check<R, E: Send + 'static>(
    check: impl FnOnce(&R) -> Result<(), E> + Send + 'static,
) -> GrantCheck<R> {
    Box::new(move |record| check(record).map_err(|rejection| Box::new(rejection) as Rejection))
}

/// Returns a rejection that `grant_check` boxed as the caller's type again.
pub(super) fn typed_rejection<E: 'static>(rejection: Rejection) -> Result<E, StoreError> {
    rejection
        .downcast::<E>()
        .map(|rejection| *rejection)
        .map_err(|_| StoreError::Corrupt("a grant check returned an unexpected type".into()))
}

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

/// A job that batches apply in one transaction.
pub(super) trait TransactionJob: Sized + Send + 'static {
    type Outcome: Send + 'static;

    /// The kind of job, named in errors.
    const NAME: &'static str;

    /// Runs a batch in `transaction` and commits; returns each job's outcome, in job order,
    /// and the connection.
    fn apply(
        transaction: BatchTransaction,
        jobs: &mut [Self],
    ) -> impl Future<Output = Result<(Vec<Self::Outcome>, PoolConnection<sqlx::Any>), StoreError>> + Send;

    fn into_reply(self) -> oneshot::Sender<Result<Self::Outcome, StoreError>>;
}

/// Returns a batcher that applies each batch of `J` in one transaction on `writer`.
pub(super) fn transaction_batcher<J: TransactionJob>(
    writer: AnyPool,
    backend: Backend,
) -> Batcher<J> {
    Batcher::new(
        J::NAME,
        writer,
        move |mut batch: Vec<J>, checkout| async move {
            let result = match checkout {
                Ok(connection) => {
                    J::apply(BatchTransaction::new(connection, backend), &mut batch).await
                }
                Err(error) => Err(error),
            };
            let (result, connection) = split_connection(result);
            reply_all(batch.into_iter().map(J::into_reply), result);
            connection
        },
    )
}

impl TransactionJob for RotationJob {
    type Outcome = RotationOutcome;
    const NAME: &'static str = "rotation";

    fn apply(
        transaction: BatchTransaction,
        jobs: &mut [Self],
    ) -> impl Future<Output = Result<(Vec<RotationOutcome>, PoolConnection<sqlx::Any>), StoreError>> + Send
    {
        rotate(transaction, jobs)
    }

    fn into_reply(self) -> oneshot::Sender<Result<RotationOutcome, StoreError>> {
        self.reply
    }
}

/// Separates a batch's outcomes from the connection it ran on.
fn split_connection<T>(
    result: Result<(T, PoolConnection<sqlx::Any>), StoreError>,
) -> (Result<T, StoreError>, Option<PoolConnection<sqlx::Any>>) {
    match result {
        Ok((outcomes, connection)) => (Ok(outcomes), Some(connection)),
        Err(error) => (Err(error), None),
    }
}

/// Rotates a batch of refresh tokens: one consuming `UPDATE`, then the successors of the
/// accepted ones, in one transaction.
async fn rotate(
    mut transaction: BatchTransaction,
    jobs: &mut [RotationJob],
) -> Result<(Vec<RotationOutcome>, PoolConnection<sqlx::Any>), StoreError> {
    let now = jobs.iter().map(|job| job.now).max().unwrap_or_default();
    let mut consume = transaction.script();
    consume
        .statement("UPDATE refresh_tokens SET rotated_at = ")
        .param(now)
        .sql(" WHERE rotated_at IS NULL AND expires_at > ")
        .param(now)
        // A correlated lookup of the token's own family by its key. SQLite evaluated the
        // uncorrelated `family_id IN (SELECT id ... WHERE revoked_at IS NULL)` by building
        // the set of every live family in the database, for each batch.
        .sql(
            " AND EXISTS (SELECT 1 FROM refresh_token_families f \
             WHERE f.id = refresh_tokens.family_id AND f.revoked_at IS NULL) \
             AND token_hash IN (",
        )
        .list(jobs.iter().map(|job| &job.token_hash))
        .sql(
            ") RETURNING token_hash, tenant_id, family_id, client_id, scope, expires_at, \
             (SELECT subject FROM refresh_token_families f WHERE f.id = family_id) AS subject, \
             (SELECT resource FROM refresh_token_families f WHERE f.id = family_id) AS resource",
        );
    // A row stays in `consumed` until a job's rotation takes it. A presentation in another
    // tenant or with a rejected check leaves it there, so that a later job of this batch
    // with the same token still gets it, and whatever no job took is restored below.
    let mut consumed = by_key(transaction.run(consume).await?, "token_hash")?;

    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut successors = Vec::new();
    for (index, job) in jobs.iter_mut().enumerate() {
        let Some(row) = consumed.get(&job.token_hash) else {
            outcomes.push(RotationOutcome::NotLive);
            continue;
        };
        let tenant_id: String = row.try_get("tenant_id")?;
        if tenant_id != job.tenant_id {
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
                consumed.remove(&job.token_hash);
                successors.push(index);
                outcomes.push(RotationOutcome::Rotated(family));
            }
            // A rejected presentation must not use up the rightful client's token.
            Err(rejection) => outcomes.push(RotationOutcome::Rejected(rejection)),
        }
    }
    let restore: Vec<String> = consumed.into_keys().collect();

    let mut finish = transaction.script();
    if !restore.is_empty() {
        finish
            .statement("UPDATE refresh_tokens SET rotated_at = NULL WHERE token_hash IN (")
            .list(&restore)
            .sql(")");
    }
    if !successors.is_empty() {
        finish
            .statement(
                "INSERT INTO refresh_tokens (token_hash, family_id, tenant_id, client_id, scope, \
                 created_at, expires_at) VALUES ",
            )
            .rows(successors.iter().map(|index| {
                let job = &jobs[*index];
                let RotationOutcome::Rotated(family) = &outcomes[*index] else {
                    unreachable!("successors are only taken from rotated jobs");
                };
                vec![
                    Param::from(&job.successor_hash),
                    Param::from(&family.family_id),
                    Param::from(&job.tenant_id),
                    Param::from(&family.client_id),
                    Param::from(&family.scope),
                    Param::from(job.now),
                    Param::from(job.successor_expires_at),
                ]
            }));
    }
    let connection = transaction.commit(finish).await?;
    Ok((outcomes, connection))
}

/// Runs a caller's check. A panic in one check fails its batch instead of the task that
/// serves every later batch.
fn run_check<R>(check: GrantCheck<R>, record: &R) -> Result<Result<(), Rejection>, StoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(record)))
        .map_err(|_| StoreError::Corrupt("a grant check panicked".into()))
}

/// Returns `rows` by the text in their `key_column`.
fn by_key(rows: Vec<AnyRow>, key_column: &str) -> Result<HashMap<String, AnyRow>, StoreError> {
    let mut keyed = HashMap::with_capacity(rows.len());
    for row in rows {
        keyed.insert(row.try_get(key_column)?, row);
    }
    Ok(keyed)
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

impl TransactionJob for RedemptionJob {
    type Outcome = RedemptionOutcome;
    const NAME: &'static str = "redemption";

    fn apply(
        transaction: BatchTransaction,
        jobs: &mut [Self],
    ) -> impl Future<
        Output = Result<(Vec<RedemptionOutcome>, PoolConnection<sqlx::Any>), StoreError>,
    > + Send {
        redeem(transaction, jobs)
    }

    fn into_reply(self) -> oneshot::Sender<Result<RedemptionOutcome, StoreError>> {
        self.reply
    }
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
    mut transaction: BatchTransaction,
    jobs: &mut [RedemptionJob],
) -> Result<(Vec<RedemptionOutcome>, PoolConnection<sqlx::Any>), StoreError> {
    let now = jobs.iter().map(|job| job.now).max().unwrap_or_default();
    let mut consume = transaction.script();
    consume
        .statement("UPDATE authorization_codes SET used_at = ")
        .param(now)
        .sql(" WHERE used_at IS NULL AND expires_at > ")
        .param(now)
        .sql(" AND code_hash IN (")
        .list(jobs.iter().map(|job| &job.code_hash))
        .sql(
            ") RETURNING code_hash, tenant_id, client_id, subject, redirect_uri, \
             redirect_uri_sent, scope, resource, code_challenge",
        );
    // A row stays in `consumed` until a job in its own tenant takes it. A code presented at
    // another tenant is worthless there, so a later job of this batch with the same code
    // still gets it, and whatever no job took is restored below, unused.
    let mut consumed = by_key(transaction.run(consume).await?, "code_hash")?;

    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut accepted = Vec::new();
    for (index, job) in jobs.iter_mut().enumerate() {
        let Some(row) = consumed.get(&job.code_hash) else {
            outcomes.push(RedemptionOutcome::NotRedeemable);
            continue;
        };
        let tenant_id: String = row.try_get("tenant_id")?;
        if tenant_id != job.tenant_id {
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
        // This job uses the code up, whether its check accepts it or not.
        consumed.remove(&job.code_hash);
        let check = std::mem::replace(&mut job.check, Box::new(|_| Ok(())));
        match run_check(check, &code)? {
            Ok(()) => {
                let family_id = uuid::Uuid::now_v7().to_string();
                accepted.push((index, family_id.clone(), code.clone()));
                outcomes.push(RedemptionOutcome::Issued { code, family_id });
            }
            Err(rejection) => outcomes.push(RedemptionOutcome::Rejected(rejection)),
        }
    }
    let restore: Vec<String> = consumed.into_keys().collect();

    let mut finish = transaction.script();
    if !restore.is_empty() {
        finish
            .statement("UPDATE authorization_codes SET used_at = NULL WHERE code_hash IN (")
            .list(&restore)
            .sql(")");
    }
    if !accepted.is_empty() {
        finish
            .statement(
                "INSERT INTO refresh_token_families (id, tenant_id, client_id, subject, scope, \
                 resource, created_at) VALUES ",
            )
            .rows(accepted.iter().map(|(index, family_id, code)| {
                vec![
                    Param::from(family_id),
                    Param::from(&jobs[*index].tenant_id),
                    Param::from(&code.client_id),
                    Param::from(&code.subject),
                    Param::from(&code.scope),
                    Param::from(&code.resource),
                    Param::from(now),
                ]
            }));
        let with_tokens: Vec<&(usize, String, CodeRecord)> = accepted
            .iter()
            .filter(|(index, _, _)| jobs[*index].refresh_hash.is_some())
            .collect();
        if !with_tokens.is_empty() {
            finish
                .statement(
                    "INSERT INTO refresh_tokens (token_hash, family_id, tenant_id, client_id, \
                     scope, created_at, expires_at) VALUES ",
                )
                .rows(with_tokens.iter().map(|(index, family_id, code)| {
                    let job = &jobs[*index];
                    vec![
                        Param::from(&job.refresh_hash),
                        Param::from(family_id),
                        Param::from(&job.tenant_id),
                        Param::from(&code.client_id),
                        Param::from(&code.scope),
                        Param::from(now),
                        Param::from(job.refresh_expires_at),
                    ]
                }));
        }
        finish.statement("UPDATE authorization_codes SET family_id = CASE code_hash");
        for (index, family_id, _) in &accepted {
            finish
                .sql(" WHEN ")
                .param(&jobs[*index].code_hash)
                .sql(" THEN ")
                .param(family_id);
        }
        finish
            .sql(" END WHERE code_hash IN (")
            .list(accepted.iter().map(|(index, _, _)| &jobs[*index].code_hash))
            .sql(")");
    }
    let connection = transaction.commit(finish).await?;
    Ok((outcomes, connection))
}

/// A client insert waiting for the batch writer.
pub(super) struct ClientJob {
    /// The row's values in the column order of `INSERT_CLIENTS`.
    pub row: Vec<Param>,
    pub reply: oneshot::Sender<Result<(), StoreError>>,
}

/// Returns the batcher for client inserts.
///
/// Waiting registrations go into one multi-row `INSERT`, which is atomic by itself, so a
/// batch costs one statement and one commit. If that statement fails for a reason other than
/// an unreachable database, each row is inserted alone, so that one bad row (a tenant deleted
/// meanwhile, say) fails only its own registration.
pub(super) fn client_inserts(writer: AnyPool, backend: Backend) -> Batcher<ClientJob> {
    Batcher::new("registration", writer, move |batch, checkout| async move {
        match checkout {
            Ok(mut connection) => {
                let usable = insert_client_batch(&mut connection, backend, batch).await;
                usable.then_some(connection)
            }
            Err(error) => {
                reply_all(batch.into_iter().map(|job| job.reply), Err(error));
                None
            }
        }
    })
}

/// Inserts a batch of clients and replies to each job; returns whether the connection can
/// run the next batch. A statement that fails on its own leaves no transaction open, so only
/// an unreachable database makes the connection unusable.
async fn insert_client_batch(
    connection: &mut PoolConnection<sqlx::Any>,
    backend: Backend,
    batch: Vec<ClientJob>,
) -> bool {
    match insert_clients(connection, backend, &batch).await {
        Ok(()) => {
            for job in batch {
                let _ = job.reply.send(Ok(()));
            }
            true
        }
        Err(error) if error.is_unavailable() => {
            reply_all(batch.into_iter().map(|job| job.reply), Err(error));
            false
        }
        Err(error) if batch.len() == 1 => {
            if let Some(job) = batch.into_iter().next() {
                let _ = job.reply.send(Err(error));
            }
            true
        }
        Err(_) => {
            let mut usable = true;
            for job in batch {
                let result = insert_clients(connection, backend, std::slice::from_ref(&job)).await;
                usable &= !result.as_ref().is_err_and(StoreError::is_unavailable);
                let _ = job.reply.send(result);
            }
            usable
        }
    }
}

async fn insert_clients(
    connection: &mut PoolConnection<sqlx::Any>,
    backend: Backend,
    jobs: &[ClientJob],
) -> Result<(), StoreError> {
    let mut script = Script::new(backend);
    script
        .statement(INSERT_CLIENTS)
        .rows(jobs.iter().map(|job| job.row.clone()));
    script.run(connection).await?;
    Ok(())
}
