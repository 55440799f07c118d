//! Statements built at run time with a variable number of parameters, and the transaction
//! the batch writers run them in.
//!
//! sqlx runs each SQLite connection on a worker thread of its own, so every statement sent
//! separately costs two thread switches, and `BEGIN` and `COMMIT` cost two each as well. On
//! a virtual machine those switches cost more than the statements. A `Script` therefore
//! sends its statements to SQLite as one multi-statement query, and a `BatchTransaction`
//! puts `BEGIN IMMEDIATE` in front of its first script and `COMMIT` behind its last.
//! PostgreSQL's protocol takes one statement with parameters at a time, so there each
//! statement is sent by itself.
//!
//! On SQLite the placeholders are plain `?`, which sqlx binds in order across the statements.
//! For a numbered placeholder sqlx looks up the parameter's name, and SQLite finds a name by
//! scanning the statement's parameter list, so binding a batch's hundreds of numbered
//! parameters took time quadratic in their count. PostgreSQL numbers each statement's
//! placeholders from `$1`.

use std::fmt::Write;

use sqlx::any::AnyRow;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool};

use super::{Backend, StoreError};

/// Maximum number of parameters of a statement that is kept prepared in the connection's
/// statement cache. The cache keeps up to 100 statements whatever their size, and each batch
/// size is a statement of its own. Kept prepared, the large statements of audit batches
/// added about 19 MiB to the server's peak memory in the benchmark harness's full run.
const MAX_CACHED_PARAMS: usize = 256;

/// A value bound to a script's parameter.
#[derive(Clone, Debug)]
pub(super) enum Param {
    Text(String),
    OptionalText(Option<String>),
    Integer(i64),
    OptionalInteger(Option<i64>),
}

impl From<&str> for Param {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<&String> for Param {
    fn from(value: &String) -> Self {
        Self::Text(value.clone())
    }
}

impl From<Option<&str>> for Param {
    fn from(value: Option<&str>) -> Self {
        Self::OptionalText(value.map(str::to_owned))
    }
}

impl From<&Option<String>> for Param {
    fn from(value: &Option<String>) -> Self {
        Self::OptionalText(value.clone())
    }
}

impl From<i64> for Param {
    fn from(value: i64) -> Self {
        Self::Integer(value)
    }
}

impl From<Option<i64>> for Param {
    fn from(value: Option<i64>) -> Self {
        Self::OptionalInteger(value)
    }
}

/// One or more statements and their parameters, written for one backend.
#[derive(Debug)]
pub(super) struct Script {
    backend: Backend,
    /// Each statement's text and parameters. Appending methods write to the last one.
    statements: Vec<(String, Vec<Param>)>,
}

impl Script {
    pub(super) fn new(backend: Backend) -> Self {
        Self {
            backend,
            statements: Vec::new(),
        }
    }

    /// Starts a statement with `sql`.
    pub(super) fn statement(&mut self, sql: &str) -> &mut Self {
        self.statements.push((sql.to_owned(), Vec::new()));
        self
    }

    /// Appends text to the current statement.
    pub(super) fn sql(&mut self, text: &str) -> &mut Self {
        self.current().0.push_str(text);
        self
    }

    /// Appends a placeholder for `value` to the current statement.
    pub(super) fn param(&mut self, value: impl Into<Param>) -> &mut Self {
        let backend = self.backend;
        let (text, params) = self.current();
        match backend {
            Backend::Sqlite => text.push('?'),
            Backend::Postgres => {
                let _ = write!(text, "${}", params.len() + 1);
            }
        }
        params.push(value.into());
        self
    }

    /// Appends a comma-separated placeholder for each of `values`.
    pub(super) fn list<P: Into<Param>>(
        &mut self,
        values: impl IntoIterator<Item = P>,
    ) -> &mut Self {
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                self.sql(", ");
            }
            self.param(value);
        }
        self
    }

    /// Appends a parenthesized group of placeholders per row, separated by commas.
    pub(super) fn rows(&mut self, rows: impl IntoIterator<Item = Vec<Param>>) -> &mut Self {
        for (index, row) in rows.into_iter().enumerate() {
            self.sql(if index == 0 { "(" } else { ", (" });
            self.list(row);
            self.sql(")");
        }
        self
    }

    fn current(&mut self) -> &mut (String, Vec<Param>) {
        if self.statements.is_empty() {
            self.statements.push((String::new(), Vec::new()));
        }
        let last = self.statements.len() - 1;
        &mut self.statements[last]
    }

    /// Runs every statement and returns the rows they produce.
    pub(super) async fn run(
        self,
        connection: &mut PoolConnection<Any>,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let batches: Vec<(String, Vec<Param>)> = match self.backend {
            Backend::Sqlite => {
                let mut text = String::new();
                let mut all = Vec::new();
                for (statement, params) in self.statements {
                    if !text.is_empty() {
                        text.push_str(";\n");
                    }
                    text.push_str(&statement);
                    all.extend(params);
                }
                vec![(text, all)]
            }
            Backend::Postgres => self.statements,
        };
        let mut rows = Vec::new();
        for (text, params) in batches {
            // The text contains only placeholders, and every value is bound.
            let persistent = params.len() <= MAX_CACHED_PARAMS;
            let mut query = sqlx::query(sqlx::AssertSqlSafe(text)).persistent(persistent);
            for param in params {
                query = match param {
                    Param::Text(value) => query.bind(value),
                    Param::OptionalText(value) => query.bind(value),
                    Param::Integer(value) => query.bind(value),
                    Param::OptionalInteger(value) => query.bind(value),
                };
            }
            rows.extend(query.fetch_all(&mut **connection).await?);
        }
        Ok(rows)
    }
}

/// A write transaction on one pooled connection. The first script it runs begins it and
/// `commit` ends it. Dropped while open, after a failed statement or with its task, it
/// closes the connection instead of returning it to the pool, and the database rolls the
/// transaction back.
pub(super) struct BatchTransaction {
    /// Always present until `commit` hands the connection back.
    connection: Option<PoolConnection<Any>>,
    backend: Backend,
    open: bool,
}

impl BatchTransaction {
    /// Prepares a transaction on `connection`, which must not be in one already.
    pub(super) fn new(connection: PoolConnection<Any>, backend: Backend) -> Self {
        Self {
            connection: Some(connection),
            backend,
            open: false,
        }
    }

    /// Prepares a transaction on a connection checked out from `writer`.
    pub(super) async fn acquire(writer: &AnyPool, backend: Backend) -> Result<Self, StoreError> {
        Ok(Self::new(writer.acquire().await?, backend))
    }

    /// Returns an empty script for this transaction's backend.
    pub(super) fn script(&self) -> Script {
        Script::new(self.backend)
    }

    /// Runs `script` inside the transaction, which it begins first if needed, and returns the rows.
    pub(super) async fn run(&mut self, mut script: Script) -> Result<Vec<AnyRow>, StoreError> {
        if !self.open {
            // `BEGIN` has no parameters, so the script's parameters keep their positions.
            let begin = self.backend.begin_statement();
            script.statements.insert(0, (begin.to_owned(), Vec::new()));
            self.open = true;
        }
        let connection = self
            .connection
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt("a committed transaction was used".into()))?;
        script.run(connection).await
    }

    /// Runs `script`, commits, and returns the connection for further use.
    pub(super) async fn commit(
        mut self,
        mut script: Script,
    ) -> Result<PoolConnection<Any>, StoreError> {
        script.statement("COMMIT");
        self.run(script).await?;
        self.open = false;
        self.connection
            .take()
            .ok_or_else(|| StoreError::Corrupt("a committed transaction was used".into()))
    }
}

impl Drop for BatchTransaction {
    fn drop(&mut self) {
        if self.open
            && let Some(connection) = self.connection.as_mut()
        {
            connection.close_on_drop();
        }
    }
}
