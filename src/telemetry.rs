//! Logging through `tracing`. The filter comes from `PORTCULLIS_LOG` (default `info`) in
//! `tracing-subscriber`'s `EnvFilter` syntax, such as `info,sqlx=warn`.
//!
//! Rule for every log line in this crate: never a token, code, verifier, secret, password,
//! cookie, `Authorization` header or query string.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; later calls do nothing, so tests may call it freely.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("PORTCULLIS_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
