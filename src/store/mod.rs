//! All SQL. One `sqlx::AnyPool` runs the same statements on SQLite and PostgreSQL (`$1`
//! placeholders work on both). Through the `Any` driver neither database's boolean or
//! timestamp types can be read, so times are epoch seconds in `BIGINT` columns, flags are
//! nullable timestamps (`used_at IS NULL`), and ids and JSON are text.

mod audit;
mod batch;
mod batcher;
mod clients;
mod codes;
mod keys;
mod refresh;
mod resources;
mod script;
mod sessions;
mod tenants;
mod users;

use std::path::PathBuf;
use std::sync::Once;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, Transaction};

use crate::config::{DatabaseSettings, SqliteSynchronous};

pub use clients::{ClientRecord, NewClient};
pub use codes::{CodeRecord, NewCode, RedeemedCode};
pub use keys::{KeyLifecycle, SigningKeyRecord};
pub use refresh::{FamilyRecord, RotatedToken};
pub use resources::ResourceRecord;
pub use sessions::{AuthorizationRequestRecord, NewAuthorizationRequest, SessionRecord};
pub use users::UserRecord;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Failures of the store, with no knowledge of HTTP.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("a row with the same key already exists")]
    Duplicate,
    #[error("a database statement failed")]
    Query(#[source] sqlx::Error),
    #[error("migrating the database failed")]
    Migration(#[source] sqlx::migrate::MigrateError),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The configured database cannot serve as the server's store.
    #[error("{0}")]
    Unusable(String),
    /// A batched transaction this request was part of failed.
    #[error("a batched transaction failed: {message}")]
    Batch { unavailable: bool, message: String },
}

impl StoreError {
    /// Returns whether the database was unreachable, as opposed to a statement failing.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_)
                | Self::Batch {
                    unavailable: true,
                    ..
                }
        )
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(error),
            sqlx::Error::Database(database_error) if database_error.is_unique_violation() => {
                Self::Duplicate
            }
            sqlx::Error::Database(database_error)
                if database_error.code().is_some_and(|code| {
                    let sqlite = database_error
                        .try_downcast_ref::<sqlx::sqlite::SqliteError>()
                        .is_some();
                    is_transient_code(&code, sqlite)
                }) =>
            {
                Self::Unavailable(error)
            }
            _ => Self::Query(error),
        }
    }
}

/// Returns whether a database error code means "try again later" rather than a bad
/// statement. For SQLite (`sqlite`), the primary codes SQLITE_BUSY (5) and SQLITE_LOCKED (6)
/// with their extended codes. For PostgreSQL, the SQLSTATEs of connection exceptions (class
/// 08), `admin_shutdown`, `crash_shutdown` and `cannot_connect_now` (57P01-57P03), and
/// `too_many_connections` (53300).
fn is_transient_code(code: &str, sqlite: bool) -> bool {
    if sqlite {
        return sqlite_primary_code(code).is_some_and(|primary| matches!(primary, 5 | 6));
    }
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Returns the statement that starts a write transaction. SQLite takes the write lock at
    /// `BEGIN IMMEDIATE`, so the busy timeout covers waiting for another writer. A deferred
    /// transaction that reads before it writes would instead fail with SQLITE_BUSY when
    /// another writer commits in between.
    fn begin_statement(self) -> &'static str {
        match self {
            Self::Sqlite => "BEGIN IMMEDIATE",
            Self::Postgres => "BEGIN",
        }
    }

    pub fn from_url(url: &str) -> Result<Self, String> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(format!(
                "PORTCULLIS_DATABASE_URL must start with sqlite: or postgres://, not {:?}",
                url.split(':').next().unwrap_or_default()
            ))
        }
    }
}

/// The database behind every tenant. Cloning shares the pools.
///
/// On SQLite, writes go through `writer`, a pool of one connection, and reads through
/// `pool`. SQLite runs one writer at a time anyway. Queueing writers in the pool, in arrival
/// order, avoids its busy handler, which sleeps 1, 2, 5 and more milliseconds between
/// retries and so leaves the database idle while writers wait. Another process on the same
/// file still waits through the busy timeout. On PostgreSQL both are the same pool.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    writer: AnyPool,
    backend: Backend,
    rotations: batcher::Batcher<batch::RotationJob>,
    redemptions: batcher::Batcher<batch::RedemptionJob>,
    client_inserts: batcher::Batcher<batch::ClientJob>,
}

impl Store {
    /// Opens the pools on the configured database. SQLite files are created when missing.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);

        let backend = Backend::from_url(&settings.url).map_err(StoreError::Unusable)?;
        let (pool, writer) = match backend {
            Backend::Sqlite => {
                let url = sqlite_url_creating_file(&settings.url);
                let synchronous = settings.sqlite_synchronous;
                // The writer first, so that the file and WAL mode exist before readers open.
                let writer = sqlite_pool(1, settings, synchronous, Role::Writer)
                    .connect(&url)
                    .await?;
                check_sqlite_file(&writer).await?;
                let pool = sqlite_pool(
                    settings.max_connections,
                    settings,
                    synchronous,
                    Role::Reader,
                )
                .connect(&url)
                .await?;
                start_checkpoints(pool.clone());
                (pool, writer)
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(settings.acquire_timeout)
                    .connect(&settings.url)
                    .await?;
                (pool.clone(), pool)
            }
        };
        Ok(Self {
            rotations: batch::transaction_batcher(writer.clone(), backend),
            redemptions: batch::transaction_batcher(writer.clone(), backend),
            client_inserts: batch::client_inserts(writer.clone(), backend),
            pool,
            writer,
            backend,
        })
    }

    /// Applies every pending migration. On PostgreSQL the migrator holds an advisory lock, so
    /// instances starting together apply each migration once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(StoreError::Migration)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs a trivial statement, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Deletes what can no longer be used: expired pending requests, sessions, refresh
    /// tokens and revocation records, then codes and families with no live refresh token
    /// once `grant_cutoff` has passed their creation (a family's access tokens must have
    /// expired by then). Redeemed codes stay while their family does, so a late replay is
    /// still detected. Returns how many rows were deleted.
    pub async fn purge_expired(&self, now: i64, grant_cutoff: i64) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for statement in [
            "DELETE FROM authorization_requests WHERE expires_at < $1",
            "DELETE FROM sessions WHERE expires_at < $1",
            "DELETE FROM refresh_tokens WHERE expires_at < $1",
            "DELETE FROM revoked_access_tokens WHERE expires_at < $1",
        ] {
            deleted += sqlx::query(statement)
                .bind(now)
                .execute(&self.writer)
                .await?
                .rows_affected();
        }
        for statement in [
            "DELETE FROM refresh_token_families WHERE created_at < $1 \
             AND id NOT IN (SELECT family_id FROM refresh_tokens)",
            "DELETE FROM authorization_codes WHERE created_at < $1 \
             AND (family_id IS NULL OR family_id NOT IN (SELECT id FROM refresh_token_families))",
        ] {
            deleted += sqlx::query(statement)
                .bind(grant_cutoff)
                .execute(&self.writer)
                .await?
                .rows_affected();
        }
        Ok(deleted)
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// Starts a write transaction with the backend's `begin_statement`.
    async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(self
            .writer
            .begin_with(self.backend.begin_statement())
            .await?)
    }
}

/// The role of a SQLite pool's connections.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Writer,
    Reader,
}

/// WAL pages after which the writer checkpoints by itself. The background checkpoints
/// normally keep the WAL far below this, so the writer only does it when they fall behind.
const WRITER_CHECKPOINT_PAGES: u32 = 8000;
/// How often the background task checkpoints the WAL.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Checkpoints the WAL from a reader connection in the background until the pool closes.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses the WAL size limit, on
/// the one writer connection: it copies pages into the database file and syncs both files
/// while every other writer waits. A passive checkpoint from another connection does the
/// same work beside the writer, which keeps appending to the WAL meanwhile. A passive
/// checkpoint copies only what no reader still needs and waits for no lock, so a busy moment
/// defers the rest of the copy to the next round.
fn start_checkpoints(pool: AnyPool) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(CHECKPOINT_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !pool.is_closed() {
            ticks.tick().await;
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
                && !pool.is_closed()
            {
                tracing::debug!(%error, "background WAL checkpoint failed");
            }
        }
    });
}

/// Returns pool options for SQLite connections with the pragmas every connection needs.
fn sqlite_pool(
    max_connections: u32,
    settings: &DatabaseSettings,
    synchronous: SqliteSynchronous,
    role: Role,
) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(settings.acquire_timeout)
        // A local file does not drop connections, so the ping before every checkout would
        // only add a round trip to the connection's worker thread.
        .test_before_acquire(false)
        .after_connect(move |connection, _metadata| {
            Box::pin(async move {
                // WAL lets readers run beside the one writer. NORMAL syncs the WAL at
                // checkpoints, FULL at every commit. A writer from another process waits up
                // to 5 s for the lock instead of failing with SQLITE_BUSY. A page cache of
                // 1 MiB per connection, not SQLite's 2 MiB, keeps a full pool's memory small,
                // because the operating system caches the file as well. Statement journals
                // and temporary tables stay in memory, because with the default a batch's
                // statement journal passed SQLite's 64 KiB spill size, so every batch created,
                // wrote and deleted a temporary file.
                let pragmas = format!(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
                     PRAGMA cache_size = -1024; PRAGMA temp_store = MEMORY;",
                    synchronous.pragma_value()
                );
                sqlx::raw_sql(sqlx::AssertSqlSafe(pragmas))
                    .execute(&mut *connection)
                    .await?;
                if role == Role::Writer {
                    let limit = format!("PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES}");
                    sqlx::raw_sql(sqlx::AssertSqlSafe(limit))
                        .execute(&mut *connection)
                        .await?;
                }
                Ok(())
            })
        })
}

/// Rejects a SQLite database that cannot hold the server's state. In memory, each pooled
/// connection opens its own empty database, and opened read-only, every grant fails. sqlx
/// accepts many spellings of both in a URL's query (`mode=memory`, `vfs=memdb`,
/// percent-encoded keys, `immutable=1`), so the check queries the opened connection.
async fn check_sqlite_file(writer: &AnyPool) -> Result<(), StoreError> {
    let file: String =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(writer)
            .await?;
    if file.is_empty() {
        return Err(StoreError::Unusable(
            "PORTCULLIS_DATABASE_URL names an in-memory SQLite database, which is not supported, \
             because each connection would open its own empty database. Name a file, such as sqlite://portcullis.db"
                .into(),
        ));
    }
    // A read-only connection in WAL mode still begins a write transaction, so the check
    // writes to the schema and rolls the write back. The start fails on any error here, so
    // a transaction left open by a failed statement ends with the pool.
    let mut connection = writer.acquire().await?;
    let probe =
        sqlx::raw_sql("BEGIN IMMEDIATE; CREATE TABLE main.portcullis_write_check (x); ROLLBACK")
            .execute(&mut *connection)
            .await;
    let Err(error) = probe else {
        return Ok(());
    };
    let code = error
        .as_database_error()
        .and_then(|database| database.code());
    if code.as_deref().and_then(sqlite_primary_code) == Some(SQLITE_READONLY) {
        return Err(StoreError::Unusable(format!(
            "PORTCULLIS_DATABASE_URL opens the SQLite database {file} read-only, but the server \
             writes to it. Remove mode=ro or immutable=1 from the URL, or make the file writable"
        )));
    }
    Err(error.into())
}

/// SQLite's primary result code for a write to a database opened read-only.
const SQLITE_READONLY: u32 = 8;

/// Returns the primary result code in a SQLite error code: its lowest byte, without the
/// extended bits.
fn sqlite_primary_code(code: &str) -> Option<u32> {
    code.parse::<u32>().ok().map(|number| number & 0xff)
}

/// Returns the file of a SQLite database URL, percent-decoded as sqlx decodes it, or `None`
/// for an in-memory SQLite database and for other databases.
pub fn sqlite_file(database_url: &str) -> Option<PathBuf> {
    let path = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or_default();
    let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    Some(PathBuf::from(path.into_owned()))
}

/// Adds `mode=rwc` so that SQLite creates a missing database file.
fn sqlite_url_creating_file(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_file_is_decoded() {
        assert_eq!(
            sqlite_file("sqlite://my%20db.db?mode=rwc").unwrap(),
            PathBuf::from("my db.db")
        );
        assert_eq!(
            sqlite_file("sqlite:data/a.db").unwrap(),
            PathBuf::from("data/a.db")
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://localhost/test"), None);
    }

    #[test]
    fn sqlite_url_gains_create_mode() {
        assert_eq!(
            sqlite_url_creating_file("sqlite://a.db"),
            "sqlite://a.db?mode=rwc"
        );
        assert_eq!(
            sqlite_url_creating_file("sqlite://a.db?cache=shared"),
            "sqlite://a.db?cache=shared&mode=rwc"
        );
        assert_eq!(
            sqlite_url_creating_file("sqlite://a.db?mode=ro"),
            "sqlite://a.db?mode=ro"
        );
    }

    #[test]
    fn transient_codes_are_recognised() {
        for code in ["5", "517", "6", "262"] {
            assert!(
                is_transient_code(code, true),
                "SQLite {code} should be transient"
            );
        }
        for code in ["08006", "08001", "57P01", "57P03", "53300"] {
            assert!(
                is_transient_code(code, false),
                "PostgreSQL {code} should be transient"
            );
        }
        for code in ["19", "2067", "1"] {
            assert!(
                !is_transient_code(code, true),
                "SQLite {code} should not be transient"
            );
        }
        // 22021 (invalid byte sequence) masks to 5 but is a PostgreSQL input error.
        for code in ["23505", "42P01", "22021", "22P02"] {
            assert!(
                !is_transient_code(code, false),
                "PostgreSQL {code} should not be transient"
            );
        }
    }

    async fn connect_sqlite(
        url: String,
        synchronous: SqliteSynchronous,
    ) -> Result<Store, StoreError> {
        Store::connect(&DatabaseSettings {
            url,
            max_connections: 2,
            acquire_timeout: std::time::Duration::from_secs(5),
            sqlite_synchronous: synchronous,
        })
        .await
    }

    #[tokio::test]
    async fn sqlite_connections_get_their_pragmas() {
        let directory = tempfile::tempdir().unwrap();
        for (synchronous, expected) in
            [(SqliteSynchronous::Normal, 1), (SqliteSynchronous::Full, 2)]
        {
            let file = directory.path().join(format!("{expected}.db"));
            let store = connect_sqlite(format!("sqlite://{}", file.display()), synchronous)
                .await
                .unwrap();
            for pool in [&store.writer, &store.pool] {
                let read = |pragma: &'static str| async move {
                    sqlx::query_scalar::<_, i64>(pragma)
                        .fetch_one(pool)
                        .await
                        .unwrap()
                };
                assert_eq!(read("PRAGMA synchronous").await, expected);
                // 2 is MEMORY: statement journals never become temporary files.
                assert_eq!(read("PRAGMA temp_store").await, 2);
                assert_eq!(read("PRAGMA foreign_keys").await, 1);
                assert_eq!(read("PRAGMA cache_size").await, -1024);
            }
            store.close().await;
        }
    }

    #[tokio::test]
    async fn sqlite_in_memory_and_read_only_are_rejected() {
        let directory = tempfile::tempdir().unwrap();
        let connect = |url: String| connect_sqlite(url, SqliteSynchronous::Normal);
        let file = directory.path().join("a.db").display().to_string();
        connect(format!("sqlite://{file}"))
            .await
            .unwrap()
            .close()
            .await;
        let cases = [
            ("sqlite::memory:".to_owned(), "in-memory"),
            (format!("sqlite://{file}?mode=memory"), "in-memory"),
            (format!("sqlite://{file}?vfs=memdb"), "in-memory"),
            (format!("sqlite://{file}?m%6Fde=memory"), "in-memory"),
            (format!("sqlite://{file}?mode=ro"), "read-only"),
            (format!("sqlite://{file}?immutable=1"), "read-only"),
        ];
        for (url, reason) in cases {
            let error = connect(url.clone()).await.err();
            assert!(
                matches!(&error, Some(StoreError::Unusable(message)) if message.contains(reason)),
                "{url} gave {error:?}"
            );
        }
    }

    #[test]
    fn backend_is_read_from_url_scheme() {
        assert_eq!(Backend::from_url("sqlite://x.db"), Ok(Backend::Sqlite));
        assert_eq!(
            Backend::from_url("postgres://u@127.0.0.1/db"),
            Ok(Backend::Postgres)
        );
        assert!(Backend::from_url("mysql://x").is_err());
    }
}
