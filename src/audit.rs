//! The `audit_events` table: logins, registrations, token issuance, reuse detection,
//! revocations and key changes, for operators to query with SQL.
//!
//! Request handlers hand events to a bounded queue and never wait for the database. One
//! background task writes them in batches, one transaction per batch, so a burst of token
//! requests costs a few commits rather than one per token. Events still queued when the
//! process is killed are lost; a graceful stop writes them first. While the database is
//! unreachable the writer retries; once the queue is full, new events are dropped and
//! counted in the log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::clock;
use crate::store::Store;

/// Events the queue keeps before it drops new ones.
const QUEUE_CAPACITY: usize = 10_000;
/// Most events written in one transaction.
const BATCH_SIZE: usize = 500;

/// One audit row. `detail` is a JSON object without secrets.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    pub tenant_id: Option<String>,
    pub occurred_at: i64,
    pub event: &'static str,
    pub client_id: Option<String>,
    pub subject: Option<String>,
    pub detail: Value,
}

impl AuditEvent {
    pub fn new(tenant_id: &str, event: &'static str) -> Self {
        Self {
            tenant_id: Some(tenant_id.to_owned()),
            occurred_at: clock::now(),
            event,
            client_id: None,
            subject: None,
            detail: Value::Object(serde_json::Map::new()),
        }
    }

    pub fn client(mut self, client_id: &str) -> Self {
        self.client_id = Some(client_id.to_owned());
        self
    }

    pub fn subject(mut self, subject: &str) -> Self {
        self.subject = Some(subject.to_owned());
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

/// How long `client_credentials` issuance is counted before its summary row is queued.
pub const SUMMARY_PERIOD: Duration = Duration::from_secs(10);

/// Key of a `client_credentials` summary row: tenant, client, resource and scope.
type SummaryKey = (String, String, String, String);

/// Counts of `client_credentials` tokens since the last summary.
struct Summaries {
    counts: HashMap<SummaryKey, u64>,
    since: Instant,
    started_at: i64,
}

/// The sending side of the audit queue; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    sender: mpsc::Sender<AuditEvent>,
    dropped: Arc<AtomicU64>,
    summaries: Arc<Mutex<Summaries>>,
}

impl AuditLog {
    /// Starts the writer task and returns the log with the task's handle, which finishes
    /// after every clone of the log is dropped and the queue is written out.
    pub fn start(store: Store) -> (Self, JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = tokio::spawn(write_events(store, receiver));
        let summaries = Arc::new(Mutex::new(Summaries {
            counts: HashMap::new(),
            since: Instant::now(),
            started_at: clock::now(),
        }));
        let log = Self {
            sender,
            dropped,
            summaries,
        };
        tokio::spawn(flush_periodically(
            log.sender.downgrade(),
            Arc::clone(&log.dropped),
            Arc::clone(&log.summaries),
        ));
        (log, writer)
    }

    /// Counts a `client_credentials` token. Machine clients can ask for thousands a second,
    /// and a row each made the audit insert the largest cost of issuing them, so they are
    /// summarized: one `token_issued` row per tenant, client, resource and scope for every
    /// `SUMMARY_PERIOD` with tokens, with `detail.count`. Tokens of user grants keep a row each.
    pub fn count_client_credentials(
        &self,
        tenant_id: &str,
        client_id: &str,
        resource: &str,
        scope: &str,
    ) {
        let mut summaries = self.summaries.lock().expect("audit summary lock poisoned");
        *summaries
            .counts
            .entry((
                tenant_id.to_owned(),
                client_id.to_owned(),
                resource.to_owned(),
                scope.to_owned(),
            ))
            .or_insert(0) += 1;
    }

    /// Queues the summary rows counted so far; the server calls it when it stops as well.
    pub fn flush_summaries(&self) {
        let (counts, started_at) = {
            let mut summaries = self.summaries.lock().expect("audit summary lock poisoned");
            summaries.since = Instant::now();
            let started_at = std::mem::replace(&mut summaries.started_at, clock::now());
            (std::mem::take(&mut summaries.counts), started_at)
        };
        let ended_at = clock::now();
        for ((tenant_id, client_id, resource, scope), count) in counts {
            let detail = serde_json::json!({
                "grant_type": "client_credentials",
                "resource": resource,
                "scope": scope,
                "count": count,
                "from": started_at,
                "to": ended_at,
            });
            let event = AuditEvent::new(&tenant_id, "token_issued")
                .client(&client_id)
                .subject(&client_id)
                .detail(detail);
            self.record(event);
        }
    }

    /// Queues an event without waiting.
    pub fn record(&self, event: AuditEvent) {
        if self.sender.try_send(event).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "audit queue full; events dropped");
            }
        }
    }
}

/// Queues the summary rows each second once a `SUMMARY_PERIOD` with tokens has passed. The
/// weak sender lets the task end, and the writer with it, once every `AuditLog` is dropped.
async fn flush_periodically(
    sender: mpsc::WeakSender<AuditEvent>,
    dropped: Arc<AtomicU64>,
    summaries: Arc<Mutex<Summaries>>,
) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(sender) = sender.upgrade() else {
            return;
        };
        let due = {
            let summaries = summaries.lock().expect("audit summary lock poisoned");
            !summaries.counts.is_empty() && summaries.since.elapsed() >= SUMMARY_PERIOD
        };
        if due {
            let log = AuditLog {
                sender,
                dropped: Arc::clone(&dropped),
                summaries: Arc::clone(&summaries),
            };
            log.flush_summaries();
        }
    }
}

/// How long the writer waits after a batch before it takes the next. Events queued meanwhile
/// wake no thread, so a busy server pays for one wake-up of the writer per pause rather
/// than one per event.
const BATCH_PAUSE: Duration = Duration::from_millis(50);

async fn write_events(store: Store, mut receiver: mpsc::Receiver<AuditEvent>) {
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    while receiver.recv_many(&mut batch, BATCH_SIZE).await > 0 {
        if batch.len() < BATCH_SIZE && !receiver.is_closed() {
            tokio::time::sleep(BATCH_PAUSE).await;
            while batch.len() < BATCH_SIZE {
                let Ok(event) = receiver.try_recv() else {
                    break;
                };
                batch.push(event);
            }
        }
        let mut delay = Duration::from_millis(100);
        loop {
            match store.insert_audit_events(&batch).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(error = %error, events = batch.len(), "writing audit events failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}
