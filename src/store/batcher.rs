//! The queue behind group commit: concurrent requests queue jobs, and one task at a time
//! applies them in batches on one writer connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool};
use tokio::sync::oneshot;

use super::StoreError;

/// Maximum number of jobs in one batch.
const MAX_BATCH: usize = 64;

/// Maximum time a task keeps the writer connection for further batches. A connection
/// returned to sqlx's pool is available again only after a ping to it, which for SQLite is
/// a round trip to the connection's worker thread, so under load a task applies batch after
/// batch on one checkout. Returning it at least this often lets the other writers, which
/// queue for SQLite's single writer connection, take their turn.
const MAX_HOLD: Duration = Duration::from_millis(5);

/// A writer connection from the pool, or the error that prevented checking one out.
pub(super) type Checkout = Result<PoolConnection<Any>, StoreError>;

/// Runs one batch on a checked-out connection, replies to each of its jobs and returns the
/// connection if it can run the next batch.
type Apply<J> = dyn Fn(Vec<J>, Checkout) -> Pin<Box<dyn Future<Output = Option<PoolConnection<Any>>> + Send>>
    + Send
    + Sync;

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

struct Shared<J> {
    /// The kind of job the queue applies, named in the error when it has stopped.
    name: &'static str,
    queue: Mutex<Queue<J>>,
    writer: AnyPool,
    apply: Box<Apply<J>>,
}

struct Queue<J> {
    jobs: Vec<J>,
    /// Whether a task is applying batches. The task clears it when it finds the queue empty.
    running: bool,
}

impl<J> Queue<J> {
    /// Removes up to `MAX_BATCH` of the oldest jobs, or returns `None` when none wait.
    fn take_batch(&mut self) -> Option<Vec<J>> {
        if self.jobs.is_empty() {
            return None;
        }
        let count = self.jobs.len().min(MAX_BATCH);
        Some(self.jobs.drain(..count).collect())
    }
}

impl<J: Send + 'static> Batcher<J> {
    /// Creates a batcher of `name` jobs whose batches `apply` runs on connections from
    /// `writer`.
    pub(super) fn new<F, Fut>(name: &'static str, writer: AnyPool, apply: F) -> Self
    where
        F: Fn(Vec<J>, Checkout) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<PoolConnection<Any>>> + Send + 'static,
    {
        Self {
            shared: Arc::new(Shared {
                name,
                queue: Mutex::new(Queue {
                    jobs: Vec::new(),
                    running: false,
                }),
                writer,
                apply: Box::new(move |jobs, connection| Box::pin(apply(jobs, connection))),
            }),
        }
    }

    /// Queues the job `job` builds around a reply channel and waits for its result.
    pub(super) async fn run<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> J,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(job(reply));
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Batch {
                unavailable: true,
                message: format!("the {} queue has stopped", self.shared.name),
            })
        })
    }

    /// Queues a job. Its result comes through the reply channel the job carries.
    fn submit(&self, job: J) {
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

    let mut checked_out: Option<(PoolConnection<Any>, Instant)> = None;
    loop {
        // With jobs waiting, the next batch starts at once, and this worker finishes the
        // requests of the last batch while the database applies it. With none, the other
        // tasks of this worker run first: requests it has already read can then join.
        let ready = shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take_batch();
        let batch = match ready {
            Some(batch) => batch,
            None => {
                tokio::task::yield_now().await;
                let mut queue = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(batch) = queue.take_batch() else {
                    queue.running = false;
                    running.armed = false;
                    return;
                };
                batch
            }
        };

        let (checkout, since) = match checked_out.take() {
            Some((connection, since)) if since.elapsed() < MAX_HOLD => (Ok(connection), since),
            previous => {
                // Returns the connection first, so that writers already waiting get it.
                drop(previous);
                let checkout = shared.writer.acquire().await.map_err(StoreError::from);
                (checkout, Instant::now())
            }
        };
        checked_out = (shared.apply)(batch, checkout)
            .await
            .map(|connection| (connection, since));
    }
}
