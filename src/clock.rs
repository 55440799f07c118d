//! Wall-clock time as UTC epoch seconds, the one unit stored and compared everywhere.

/// Returns the current UTC time in whole seconds since the Unix epoch.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
