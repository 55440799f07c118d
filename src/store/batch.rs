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
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use tokio::sync::oneshot;

use super::clients::{ClientRow, INSERT_CLIENTS};
use super::codes::CodeRecord;
use super::refresh::FamilyRecord;
use super::script::{BatchTransaction, Param, Script};
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

/// A queue of jobs that one task at a time applies in batches.
///
/// The request that finds the queue idle spawns that task on its own runtime, and the task
/// runs until the queue is empty. actix-web gives each worker thread its own runtime, so
/// that request gets its reply without waking another thread. A long-lived task on the
/// main runtime cost two thread wake-ups per request, which on a virtual machine cost more
/// than the statements themselves. Requests from other workers still wait for the running
/// task, so their jobs share its next batch.
pub(super) struct Batcher<J> {
    shared: Arc<Shared<J>>,
}

impl<J> Clone for Batcher<J> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<J> std::fmt::Debug for Batcher<J> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Batcher").finish_non_exhaustive()
    }
}

type Apply<J> = dyn Fn(Vec<J>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync;

struct Shared<J> {
    queue: Mutex<Queue<J>>,
    apply: Box<Apply<J>>,
}

struct Queue<J> {
    jobs: Vec<J>,
    /// Whether a task is applying batches. The task clears it when it finds the queue empty.
    running: bool,
}

impl<J: Send + 'static> Batcher<J> {
    /// `apply` runs one batch and replies to each of its jobs.
    fn new<F, Fut>(apply: F) -> Self
    where
        F: Fn(Vec<J>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    jobs: Vec::new(),
                    running: false,
                }),
                apply: Box::new(move |jobs| Box::pin(apply(jobs))),
            }),
        }
    }

    /// Queues a job. Its result comes through the reply channel the job carries.
    pub(super) fn submit(&self, job: J) {
        let start = {
            let mut queue = self
                .shared
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            queue.jobs.push(job);
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            tokio::spawn(drain(Arc::clone(&self.shared)));
        }
    }
}

/// Applies batches until the queue is empty.
async fn drain<J>(shared: Arc<Shared<J>>) {
    // Clears `running` if the task ends early, by a panic in a batch or its runtime
    // stopping, so that the next job starts a new task. The jobs of that batch are dropped
    // with their reply channels, and their callers see the queue as stopped.
    struct Running<'a, J> {
        shared: &'a Shared<J>,
        armed: bool,
    }
    impl<J> Drop for Running<'_, J> {
        fn drop(&mut self) {
            if self.armed {
                let mut queue = self
                    .shared
                    .queue
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                queue.running = false;
            }
        }
    }
    let mut running = Running {
        shared: &shared,
        armed: true,
    };
    loop {
        let batch: Vec<J> = {
            let mut queue = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.jobs.is_empty() {
                queue.running = false;
                running.armed = false;
                return;
            }
            let count = queue.jobs.len().min(MAX_BATCH);
            queue.jobs.drain(..count).collect()
        };
        (shared.apply)(batch).await;
    }
}

/// Returns the batcher for refresh-token rotations.
pub(super) fn rotations(writer: AnyPool, backend: Backend) -> Batcher<RotationJob> {
    Batcher::new(move |batch| {
        let writer = writer.clone();
        async move { rotate_batch(&writer, backend, batch).await }
    })
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
    let mut transaction = BatchTransaction::acquire(writer, backend).await?;
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
    let mut consumed = by_key(transaction.run(consume).await?, "token_hash")?;

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
    transaction.commit(finish).await?;
    Ok(outcomes)
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

/// Returns the batcher for code redemptions.
pub(super) fn redemptions(writer: AnyPool, backend: Backend) -> Batcher<RedemptionJob> {
    Batcher::new(move |mut batch| {
        let writer = writer.clone();
        async move {
            let result = redeem(&writer, backend, &mut batch).await;
            reply_all(batch.into_iter().map(|job| job.reply), result);
        }
    })
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
    let mut transaction = BatchTransaction::acquire(writer, backend).await?;
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
    let mut consumed = by_key(transaction.run(consume).await?, "code_hash")?;

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
                let family_id = uuid::Uuid::now_v7().to_string();
                accepted.push((index, family_id.clone(), code.clone()));
                outcomes.push(RedemptionOutcome::Issued { code, family_id });
            }
            Err(rejection) => outcomes.push(RedemptionOutcome::Rejected(rejection)),
        }
    }

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
    transaction.commit(finish).await?;
    Ok(outcomes)
}

/// A client insert waiting for the batch writer.
pub(super) struct ClientJob {
    pub row: ClientRow,
    pub reply: oneshot::Sender<Result<(), StoreError>>,
}

/// Returns the batcher for client inserts.
///
/// Waiting registrations go into one multi-row `INSERT`, which is atomic by itself, so a
/// batch costs one statement and one commit. If that statement fails for a reason other than
/// an unreachable database, each row is inserted alone, so that one bad row (a tenant deleted
/// meanwhile, say) fails only its own registration.
pub(super) fn client_inserts(writer: AnyPool, backend: Backend) -> Batcher<ClientJob> {
    Batcher::new(move |batch| {
        let writer = writer.clone();
        async move { insert_client_batch(&writer, backend, batch).await }
    })
}

async fn insert_client_batch(writer: &AnyPool, backend: Backend, batch: Vec<ClientJob>) {
    match insert_clients(writer, backend, &batch).await {
        Ok(()) => {
            for job in batch {
                let _ = job.reply.send(Ok(()));
            }
        }
        Err(error) if batch.len() == 1 => {
            if let Some(job) = batch.into_iter().next() {
                let _ = job.reply.send(Err(error));
            }
        }
        Err(error) if !error.is_unavailable() => {
            for job in batch {
                let result = insert_clients(writer, backend, std::slice::from_ref(&job)).await;
                let _ = job.reply.send(result);
            }
        }
        Err(error) => reply_all(batch.into_iter().map(|job| job.reply), Err(error)),
    }
}

async fn insert_clients(
    writer: &AnyPool,
    backend: Backend,
    jobs: &[ClientJob],
) -> Result<(), StoreError> {
    let mut connection = writer.acquire().await?;
    let mut script = Script::new(backend);
    script
        .statement(INSERT_CLIENTS)
        .rows(jobs.iter().map(|job| job.row.params()));
    script.run(&mut connection).await?;
    Ok(())
}
