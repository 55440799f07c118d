//! Failed-login throttling per tenant and username, so that a password cannot be guessed
//! at the speed of the server. Only failures count, and a successful login clears them.
//!
//! NOTE: counts live in one process's memory, so each instance behind a load balancer
//! allows its own share of attempts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed attempts allowed per username within `WINDOW`.
pub const MAX_FAILURES: u32 = 10;
/// How long failures are remembered.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Entries kept before old ones are dropped, bounding memory under a spray of names.
const CAPACITY: usize = 100_000;

#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

impl LoginThrottle {
    /// Returns whether `key` has used up its failed attempts for now.
    pub fn is_blocked(&self, key: &str) -> bool {
        let failures = self.failures.lock().expect("login throttle lock poisoned");
        failures
            .get(key)
            .is_some_and(|(since, count)| since.elapsed() < WINDOW && *count >= MAX_FAILURES)
    }

    pub fn record_failure(&self, key: &str) {
        let mut failures = self.failures.lock().expect("login throttle lock poisoned");
        if failures.len() >= CAPACITY {
            failures.retain(|_, (since, _)| since.elapsed() < WINDOW);
        }
        let entry = failures
            .entry(key.to_owned())
            .or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }

    pub fn record_success(&self, key: &str) {
        self.failures
            .lock()
            .expect("login throttle lock poisoned")
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_blocks_after_failures_and_clears_on_success() {
        let throttle = LoginThrottle::default();
        for _ in 0..MAX_FAILURES - 1 {
            throttle.record_failure("acme/alice");
        }
        assert!(!throttle.is_blocked("acme/alice"));
        throttle.record_failure("acme/alice");
        assert!(throttle.is_blocked("acme/alice"));
        assert!(!throttle.is_blocked("acme/bob"));
        throttle.record_success("acme/alice");
        assert!(!throttle.is_blocked("acme/alice"));
    }
}
