//! The load runner: a fixed number of connections, each sending its next request as soon as
//! the previous response arrives, for a fixed time or until the requests run out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::{Connection, Reply, Request};

/// Produces the requests of one connection and judges each reply.
pub trait Source: Send + 'static {
    /// Returns the next request, or `None` when this connection is done.
    fn next(&mut self) -> Option<Request>;
    /// Returns whether the reply counts as a success; may keep state from it (the next
    /// refresh token, say).
    fn observe(&mut self, reply: &Reply) -> bool;
}

/// The same request again and again, successful on a given status.
pub struct Repeat {
    pub request: Request,
    pub expected_status: u16,
}

impl Source for Repeat {
    fn next(&mut self) -> Option<Request> {
        Some(self.request.clone())
    }

    fn observe(&mut self, reply: &Reply) -> bool {
        reply.status == self.expected_status
    }
}

/// Measurements of one run.
#[derive(Debug, Default)]
pub struct Outcome {
    pub succeeded: u64,
    pub failed: u64,
    pub latencies_us: Vec<u32>,
    pub elapsed: Duration,
    pub first_failure: Option<String>,
}

impl Outcome {
    pub fn requests_per_second(&self) -> f64 {
        self.succeeded as f64 / self.elapsed.as_secs_f64()
    }

    /// Adds `other`'s requests, latencies and time to this outcome and keeps the first
    /// failure. The latencies are left unsorted.
    pub fn absorb(&mut self, other: Outcome) {
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.latencies_us.extend(other.latencies_us);
        self.elapsed += other.elapsed;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }

    /// Returns the latency at `quantile` (0 to 1) in milliseconds.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies_us.len() - 1) as f64 * quantile).round() as usize;
        f64::from(self.latencies_us[index]) / 1000.0
    }
}

/// Runs one source per connection against `authority` for at most `duration`.
pub async fn run(authority: &str, sources: Vec<Box<dyn Source>>, duration: Duration) -> Outcome {
    let started = Instant::now();
    let deadline = started + duration;
    let authority: Arc<str> = authority.into();
    let mut tasks = Vec::new();
    for mut source in sources {
        let authority = Arc::clone(&authority);
        tasks.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            let mut connection = match Connection::open(&authority).await {
                Ok(connection) => connection,
                Err(error) => {
                    outcome.first_failure = Some(error);
                    return outcome;
                }
            };
            while Instant::now() < deadline {
                let Some(request) = source.next() else {
                    break;
                };
                let sent = Instant::now();
                match connection.send(&request).await {
                    Ok(reply) => {
                        let micros = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                        if source.observe(&reply) {
                            outcome.succeeded += 1;
                            outcome.latencies_us.push(micros);
                        } else {
                            outcome.failed += 1;
                            outcome.first_failure.get_or_insert_with(|| {
                                format!(
                                    "status {}: {}",
                                    reply.status,
                                    reply.text().chars().take(200).collect::<String>()
                                )
                            });
                        }
                    }
                    Err(error) => {
                        outcome.failed += 1;
                        outcome.first_failure.get_or_insert(error);
                        match Connection::open(&authority).await {
                            Ok(fresh) => connection = fresh,
                            Err(_) => break,
                        }
                    }
                }
            }
            outcome
        }));
    }
    let mut total = Outcome::default();
    for task in tasks {
        total.absorb(task.await.expect("a load task panicked"));
    }
    total.elapsed = started.elapsed();
    total.latencies_us.sort_unstable();
    total
}
