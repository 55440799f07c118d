//! Settings from `PORTCULLIS_*` environment variables, validated once at start.
//!
//! A `.env` file in the working directory is loaded first when present; variables already in
//! the environment win. `.env.example` lists every setting with its default and meaning.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// Environment variable prefix of every setting.
pub const PREFIX: &str = "PORTCULLIS_";

/// Names of every setting, without the prefix; the source for `.env.example` checks.
pub const KNOWN_SETTINGS: &[&str] = &[
    "BIND",
    "PUBLIC_URL",
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "DATABASE_ACQUIRE_TIMEOUT_SECS",
    "SQLITE_SYNCHRONOUS",
    "ACCESS_TOKEN_TTL_SECS",
    "REFRESH_TOKEN_TTL_SECS",
    "CODE_TTL_SECS",
    "SESSION_TTL_SECS",
    "REGISTRATION_RATE_LIMIT_PER_MINUTE",
    "PASSWORD_HASH_CONCURRENCY",
    "WORKERS",
    "LOG_FORMAT",
    "LOG",
    "PRODUCTION",
    "MASTER_KEY",
    "PREVIOUS_MASTER_KEYS",
    "KEY_ROTATION_PERIOD_SECS",
    "KEY_PUBLISH_LEAD_SECS",
    "CLOCK_SKEW_SECS",
];

#[derive(Debug, Deserialize)]
struct RawSettings {
    bind: Option<String>,
    public_url: Option<String>,
    database_url: Option<String>,
    database_max_connections: Option<u32>,
    database_acquire_timeout_secs: Option<u64>,
    sqlite_synchronous: Option<String>,
    access_token_ttl_secs: Option<i64>,
    refresh_token_ttl_secs: Option<i64>,
    code_ttl_secs: Option<i64>,
    session_ttl_secs: Option<i64>,
    registration_rate_limit_per_minute: Option<u32>,
    password_hash_concurrency: Option<usize>,
    workers: Option<usize>,
    log_format: Option<String>,
    production: Option<bool>,
    master_key: Option<String>,
    previous_master_keys: Option<String>,
    key_rotation_period_secs: Option<i64>,
    key_publish_lead_secs: Option<i64>,
    clock_skew_secs: Option<i64>,
}

/// Signing-key lifecycle timing, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyTiming {
    /// How long a key stays current before the next one replaces it.
    pub rotation_period: i64,
    /// How long a new key is published in JWKS before it signs anything.
    pub publish_lead: i64,
    /// Clock difference tolerated between this server and token verifiers.
    pub clock_skew: i64,
}

/// Master keys that seal signing keys at rest; `None` selects the embedded default, a key
/// file next to the SQLite database.
#[derive(Clone, Debug)]
pub struct MasterKeySettings {
    pub current: Option<SecretString>,
    pub previous: Vec<SecretString>,
}

/// SQLite's `synchronous` pragma. In WAL mode `Normal` can lose the last transactions to a
/// power cut or OS crash but never consistency. `Full` syncs the WAL on every commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqliteSynchronous {
    Normal,
    Full,
}

impl SqliteSynchronous {
    pub fn pragma_value(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Database settings, shared by the server and the admin commands.
#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub sqlite_synchronous: SqliteSynchronous,
}

/// Lifetimes of issued artefacts, in seconds.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub access_token: i64,
    pub refresh_token: i64,
    pub code: i64,
    pub session: i64,
    /// How long a started authorization request waits for login and consent.
    pub authorization_request: i64,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub bind: SocketAddr,
    /// Origin under which every issuer lives, without a trailing slash.
    pub public_url: String,
    pub database: DatabaseSettings,
    pub lifetimes: Lifetimes,
    /// Registrations allowed per client IP address per minute; 0 turns the limit off.
    pub registration_rate_limit_per_minute: u32,
    pub password_hash_concurrency: usize,
    pub workers: usize,
    pub log_format: LogFormat,
    /// Production mode rejects development conveniences: plain-http public URLs and a
    /// generated master key file.
    pub production: bool,
    pub master_keys: MasterKeySettings,
    pub key_timing: KeyTiming,
}

impl Settings {
    /// Loads `.env` when present, then reads and validates every `PORTCULLIS_*` variable.
    pub fn from_env() -> Result<Self, String> {
        let _ = dotenvy::dotenv();
        Self::from_variables(std::env::vars())
    }

    /// Reads settings from `(name, value)` pairs. Unknown `PORTCULLIS_*` names are errors, so
    /// that a misspelt setting cannot silently fall back to its default. Names starting with
    /// `PORTCULLIS_TEST_` belong to the test suite and are skipped. Empty values count as
    /// unset.
    pub fn from_variables(
        variables: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, String> {
        let mut known = Vec::new();
        for (name, value) in variables {
            let Some(setting) = name.strip_prefix(PREFIX) else {
                continue;
            };
            if setting.starts_with("TEST_") || value.is_empty() {
                continue;
            }
            if !KNOWN_SETTINGS.contains(&setting) {
                return Err(format!(
                    "unknown setting {name}; the settings are {}",
                    KNOWN_SETTINGS
                        .iter()
                        .map(|known| format!("{PREFIX}{known}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            known.push((name, value));
        }
        let raw: RawSettings = envy::prefixed(PREFIX)
            .from_iter(known)
            .map_err(|error| format!("invalid setting: {error}"))?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawSettings) -> Result<Self, String> {
        let bind_text = raw.bind.unwrap_or_else(|| "127.0.0.1:8080".into());
        let bind = bind_text.parse().map_err(|_| {
            format!(
                "PORTCULLIS_BIND={bind_text:?} is not an address and port such as 127.0.0.1:8080"
            )
        })?;
        let public_url =
            validate_public_url(raw.public_url.as_deref().unwrap_or("http://127.0.0.1:8080"))?;
        let sqlite_synchronous = match raw.sqlite_synchronous.as_deref() {
            None | Some("normal") => SqliteSynchronous::Normal,
            Some("full") => SqliteSynchronous::Full,
            Some(other) => {
                return Err(format!(
                    "PORTCULLIS_SQLITE_SYNCHRONOUS={other:?} is invalid: use normal or full"
                ));
            }
        };
        let log_format = match raw.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(format!(
                    "PORTCULLIS_LOG_FORMAT={other:?} is invalid: use text or json"
                ));
            }
        };
        let lifetimes = Lifetimes {
            access_token: positive("ACCESS_TOKEN_TTL_SECS", raw.access_token_ttl_secs, 900)?,
            refresh_token: positive(
                "REFRESH_TOKEN_TTL_SECS",
                raw.refresh_token_ttl_secs,
                2_592_000,
            )?,
            code: positive("CODE_TTL_SECS", raw.code_ttl_secs, 60)?,
            session: positive("SESSION_TTL_SECS", raw.session_ttl_secs, 28_800)?,
            authorization_request: 900,
        };
        let database_url = raw
            .database_url
            .unwrap_or_else(|| "sqlite://portcullis.db".into());
        let supported = ["sqlite:", "postgres://", "postgresql://"];
        if !supported
            .iter()
            .any(|prefix| database_url.starts_with(prefix))
        {
            return Err(
                "PORTCULLIS_DATABASE_URL must start with sqlite: or postgres:// (the URL is not shown because it may contain a password)"
                    .into(),
            );
        }
        let production = raw.production.unwrap_or(false);
        if production && !public_url.starts_with("https://") {
            return Err(
                "PORTCULLIS_PRODUCTION=true requires an https PORTCULLIS_PUBLIC_URL".into(),
            );
        }
        if production && raw.master_key.is_none() {
            return Err(
                "PORTCULLIS_PRODUCTION=true requires PORTCULLIS_MASTER_KEY; generate one with `portcullis master-key generate`"
                    .into(),
            );
        }
        let key_timing = KeyTiming {
            rotation_period: positive(
                "KEY_ROTATION_PERIOD_SECS",
                raw.key_rotation_period_secs,
                2_592_000,
            )?,
            publish_lead: positive("KEY_PUBLISH_LEAD_SECS", raw.key_publish_lead_secs, 3600)?,
            clock_skew: positive("CLOCK_SKEW_SECS", raw.clock_skew_secs, 60)?,
        };
        if key_timing.publish_lead >= key_timing.rotation_period {
            return Err(
                "PORTCULLIS_KEY_PUBLISH_LEAD_SECS must be shorter than PORTCULLIS_KEY_ROTATION_PERIOD_SECS".into(),
            );
        }
        let master_keys = MasterKeySettings {
            current: raw.master_key.map(SecretString::from),
            previous: raw
                .previous_master_keys
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|key| !key.is_empty())
                .map(|key| SecretString::from(key.to_owned()))
                .collect(),
        };
        let max_connections = raw.database_max_connections.unwrap_or(16);
        if max_connections == 0 {
            return Err("PORTCULLIS_DATABASE_MAX_CONNECTIONS must be at least 1".into());
        }
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Ok(Self {
            bind,
            public_url,
            database: DatabaseSettings {
                url: database_url,
                max_connections,
                acquire_timeout: Duration::from_secs(
                    raw.database_acquire_timeout_secs.unwrap_or(5),
                ),
                sqlite_synchronous,
            },
            lifetimes,
            registration_rate_limit_per_minute: raw
                .registration_rate_limit_per_minute
                .unwrap_or(30),
            password_hash_concurrency: raw.password_hash_concurrency.unwrap_or(cores).max(1),
            workers: raw.workers.unwrap_or(cores).max(1),
            log_format,
            production,
            master_keys,
            key_timing,
        })
    }

    /// Reads only the database settings, for admin commands that never serve HTTP.
    pub fn database_from_env() -> Result<DatabaseSettings, String> {
        Self::from_env().map(|settings| settings.database)
    }
}

fn positive(name: &str, value: Option<i64>, default: i64) -> Result<i64, String> {
    match value {
        None => Ok(default),
        Some(seconds) if seconds > 0 => Ok(seconds),
        Some(seconds) => Err(format!(
            "{PREFIX}{name}={seconds} must be a positive number of seconds"
        )),
    }
}

/// Checks that the public URL is an origin (scheme, host, optional port) and that plain
/// `http` is used only for loopback hosts, whose traffic never crosses a network.
fn validate_public_url(value: &str) -> Result<String, String> {
    let invalid = |reason: &str| format!("PORTCULLIS_PUBLIC_URL={value:?} is invalid: {reason}");
    let url = url::Url::parse(value).map_err(|error| invalid(&error.to_string()))?;
    let host = url.host_str().ok_or_else(|| invalid("it has no host"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(host) => {}
        "http" => {
            return Err(invalid(
                "plain http is accepted only for loopback hosts; use https",
            ));
        }
        _ => return Err(invalid("use an http or https URL")),
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "give only scheme, host and port, without path, query or fragment",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("it must not contain user information"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Returns whether `host` (as `url` prints it, IPv6 in brackets) names this machine.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        Settings::from_variables(
            pairs
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string())),
        )
    }

    #[test]
    fn defaults_apply_without_variables() {
        let settings = settings(&[]).unwrap();
        assert_eq!(settings.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.public_url, "http://127.0.0.1:8080");
        assert_eq!(settings.database.url, "sqlite://portcullis.db");
    }

    #[test]
    fn unknown_and_invalid_settings_are_rejected() {
        let cases = [
            (
                "PORTCULLIS_PUBLICURL",
                "http://127.0.0.1:1",
                "misspelt name",
            ),
            ("PORTCULLIS_BIND", "localhost", "bind without port"),
            ("PORTCULLIS_ACCESS_TOKEN_TTL_SECS", "0", "zero lifetime"),
            (
                "PORTCULLIS_ACCESS_TOKEN_TTL_SECS",
                "ten",
                "non-numeric lifetime",
            ),
            (
                "PORTCULLIS_SQLITE_SYNCHRONOUS",
                "off",
                "unsafe synchronous mode",
            ),
            (
                "PORTCULLIS_PUBLIC_URL",
                "http://auth.example.com",
                "plain http off loopback",
            ),
        ];
        for (name, value, case) in cases {
            assert!(
                settings(&[(name, value)]).is_err(),
                "{case} should be rejected"
            );
        }
    }

    #[test]
    fn empty_and_test_variables_are_skipped() {
        let settings = settings(&[
            ("PORTCULLIS_WORKERS", ""),
            ("PORTCULLIS_TEST_POSTGRES_URL", "postgres://x"),
        ]);
        assert!(settings.is_ok());
    }

    #[test]
    fn public_url_accepts_loopback_http_and_https() {
        assert_eq!(
            validate_public_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            validate_public_url("http://localhost:9000/").unwrap(),
            "http://localhost:9000"
        );
        assert_eq!(
            validate_public_url("http://[::1]:80").unwrap(),
            "http://[::1]"
        );
        assert_eq!(
            validate_public_url("https://auth.example.com").unwrap(),
            "https://auth.example.com"
        );
    }

    #[test]
    fn public_url_rejects_unsafe_forms() {
        for value in [
            "http://auth.example.com",
            "ftp://127.0.0.1",
            "https://auth.example.com/base",
            "https://auth.example.com/?x=1",
            "https://user@auth.example.com",
            "not a url",
        ] {
            assert!(
                validate_public_url(value).is_err(),
                "{value} should be rejected"
            );
        }
    }
}
