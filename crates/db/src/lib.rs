//! SQL persistence for Magnum on SQLite, PostgreSQL and MariaDB/MySQL through
//! one code path: queries are built once with sea-query, rendered for the
//! backend in use and run with sqlx; rows decode into the same structs on
//! every backend.
//!
//! [`Database::connect`] takes the SQLAlchemy URLs operators already have in
//! `[database] connection`; [`Database::migrate`] brings a database to the
//! head of our migrations, recorded in upstream's `alembic_version` table.

/// In a test module: one test per backend (`sqlite::…`, `postgres::…`,
/// `mysql::…`) for each async test function taking a [`Backend`].
#[cfg(test)]
macro_rules! backends {
    ($($name:ident),*) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(crate::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(crate::Backend::Postgres).await } )* }
        mod mysql { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(crate::Backend::MySql).await } )* }
    };
}

mod cluster_templates;
mod clusters;
mod federations;
mod fence;
mod migrate;
mod narrow;
mod operations;
mod paginate;
mod quotas;
mod records;
pub mod schema;
mod services;
mod sync;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod trusts;
mod url;
mod x509keypairs;

use sea_query::{
    DeleteStatement, InsertStatement, MysqlQueryBuilder, PostgresQueryBuilder, SelectStatement,
    SqliteQueryBuilder, UpdateStatement,
};
use sea_query_binder::SqlxBinder;
use std::time::Duration;

use sqlx::{mysql::MySqlRow, postgres::PgRow, sqlite::SqliteRow, FromRow};

pub use cluster_templates::{ClusterTemplateFilter, TemplateInUse};
pub use clusters::ClusterFilter;
pub use federations::Federation;
pub use fence::{Fence, Write};
pub use migrate::{MigrationOutcome, HEAD_REVISION, REVISIONS};
pub use operations::{CreateOutcome, Gate, Operation};
pub use paginate::{Page, SortDir};
pub use quotas::Quota;
pub use services::ServiceRecord;
pub use trusts::ClusterTrust;
pub use url::{parse_url, DbUrl};
pub use x509keypairs::X509KeyPair;

/// Which SQL server a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
            Backend::MySql => "mysql",
        })
    }
}

/// Failures of the persistence layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL {0}: expected sqlite://, postgresql:// or mysql://")]
    UnsupportedUrl(String),
    #[error("cannot connect to the {backend} database at {target}: {source}")]
    Connect {
        backend: Backend,
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "the database is at revision {0}, which this Magnum does not know; \
         bring it to upstream's head (b3e1cf4a2d5e) with upstream's magnum-db-manage first"
    )]
    UnknownRevision(String),
    #[error("the database has Magnum tables but no alembic_version row; refusing to migrate it")]
    UnversionedSchema,
    #[error("the database schema is not migrated (run `magnum db-manage upgrade`)")]
    NotMigrated,
    #[error("a row with this unique key already exists")]
    Duplicate,
    /// The database refused a value its column cannot hold (too long, out
    /// of range, characters outside the column's character set).
    #[error("the database cannot store this value: {0}")]
    ValueRejected(String),
    #[error("stored value in {table}.{column} is not valid: {reason}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        reason: String,
    },
    /// The database could not be reached in time: refused, reset, no
    /// connection within the pool's wait, no answer within the statement
    /// bound, or the server going away.
    #[error("the database cannot be reached")]
    Unavailable(#[source] sqlx::Error),
    /// The statement compared a column with a value the column cannot
    /// hold (see `narrow.rs`): it matches no row. Never returned: the
    /// statement's answer is then "no rows".
    #[error("a value compared with a column that cannot hold it")]
    Unmatchable,
    #[error("database error: {0}")]
    Sql(sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> DbError {
        if unreachable(&err) {
            DbError::Unavailable(err)
        } else {
            DbError::Sql(err)
        }
    }
}

/// Whether `err` says the database could not be reached (rather than that
/// it refused the statement): I/O and TLS failures, the pool's wait or our
/// statement bound running out, a closed pool, and the SQLSTATEs of a lost
/// or refused connection (class 08; PostgreSQL's 57P01-57P03, the server
/// shutting down or starting up).
fn unreachable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// The error of a statement that got no answer within `limit`.
fn statement_timed_out(limit: std::time::Duration) -> DbError {
    DbError::Unavailable(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "no answer to a statement within {} s ([database] statement_timeout)",
            limit.as_secs_f64()
        ),
    )))
}

impl DbError {
    fn from_sql(err: sqlx::Error) -> DbError {
        if unreachable(&err) {
            return DbError::Unavailable(err);
        }
        if narrow::cannot_match(&err) {
            return DbError::Unmatchable;
        }
        if let sqlx::Error::Database(db) = &err {
            if db.is_unique_violation() {
                return DbError::Duplicate;
            }
            // SQLSTATE class 22 is "data exception" (too long, out of
            // range, bad format) on PostgreSQL and MariaDB; MySQL reports a
            // string outside a column's character set (4-byte UTF-8 in
            // utf8mb3) as HY000 with this text.
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            if code.starts_with("22") || db.message().contains("Incorrect string value") {
                return DbError::ValueRejected(db.message().to_string());
            }
        }
        DbError::Sql(err)
    }
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
}

/// A pool of connections to Magnum's database.
#[derive(Debug, Clone)]
pub struct Database {
    pool: Pool,
    /// Where the database is, with any password masked (for logs).
    display: String,
    /// Statements sent so far, by every clone of this pool.
    statements: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// How long one statement may take, its answer included (PostgreSQL
    /// and MariaDB/MySQL; SQLite waits for its lock as `busy_timeout` says).
    statement_timeout: Option<Duration>,
}

/// How a [`Database`]'s pool bounds its waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// The most connections open at once (`[database] max_pool_size`).
    pub max_connections: u32,
    /// How long a statement waits for a connection, the set-up of a new
    /// one included (`[database] pool_timeout`); then the database counts
    /// as unreachable ([`DbError::Unavailable`]).
    pub acquire_timeout: Duration,
    /// How long a statement on PostgreSQL or MariaDB/MySQL may take, its
    /// answer included (`[database] statement_timeout`; `None`: no bound).
    /// A connection whose statement ran out of time is dropped, not
    /// returned to the pool: on a half-open connection the answer never
    /// comes. DDL (migrations) is not bounded.
    pub statement_timeout: Option<Duration>,
}

impl Default for PoolSettings {
    /// What [`Database::connect`] uses: 5 connections, 10 s to get one,
    /// no statement bound. The services take theirs from `magnum.conf`.
    fn default() -> Self {
        PoolSettings {
            max_connections: 5,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: None,
        }
    }
}

/// However short `[database] pool_timeout` is, start-up waits this long
/// for a database that refuses connections (one still starting up).
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Open `pool`'s first connection, waiting up to [`START_TIMEOUT`] (or the
/// pool's own wait, if longer) for a server that is not yet listening;
/// other failures (bad credentials, no such database) end it at once.
async fn first_connection<DB: sqlx::Database>(
    pool: sqlx::Pool<DB>,
    acquire: Duration,
) -> Result<sqlx::Pool<DB>, sqlx::Error> {
    let deadline = std::time::Instant::now() + acquire.max(START_TIMEOUT);
    loop {
        match pool.acquire().await {
            Ok(_) => return Ok(pool),
            Err(sqlx::Error::PoolTimedOut) if std::time::Instant::now() < deadline => {}
            Err(e) => return Err(e),
        }
    }
}

/// Run `$body` with `$conn` bound to a connection of `$pool`, within
/// `$limit` (an `Option<Duration>`). A statement that runs out of time
/// leaves its connection in an unknown state (on a half-open connection
/// its answer never comes), so the connection is detached from the pool
/// and dropped rather than pinged on its way back.
macro_rules! bounded {
    ($limit:expr, $pool:expr, |$conn:ident| $body:expr) => {{
        let mut pooled = $pool.acquire().await?;
        let limit: Option<Duration> = $limit;
        let run = async {
            let $conn = &mut *pooled;
            $body
        };
        match limit {
            None => run.await,
            Some(limit) => {
                let done = tokio::time::timeout(limit, run).await;
                match done {
                    Ok(result) => result,
                    Err(_) => {
                        drop(pooled.detach());
                        Err(statement_timed_out(limit))
                    }
                }
            }
        }
    }};
}

/// A row type that decodes from every backend's rows.
pub trait AnyRow:
    for<'r> FromRow<'r, SqliteRow>
    + for<'r> FromRow<'r, PgRow>
    + for<'r> FromRow<'r, MySqlRow>
    + Send
    + Unpin
{
}
impl<T> AnyRow for T where
    T: for<'r> FromRow<'r, SqliteRow>
        + for<'r> FromRow<'r, PgRow>
        + for<'r> FromRow<'r, MySqlRow>
        + Send
        + Unpin
{
}

/// A statement sea-query can render for any backend.
pub(crate) trait Statement: narrow::Storable {
    fn render(&self, backend: Backend) -> (String, sea_query_binder::SqlxValues);
}

/// The answer of a statement that matches no row because it compared a
/// column with a value the column cannot hold (see `narrow.rs`).
fn or_no_match<T: Default>(result: Result<T, DbError>) -> Result<T, DbError> {
    match result {
        Err(DbError::Unmatchable) => Ok(T::default()),
        other => other,
    }
}

macro_rules! statement {
    ($($ty:ty),*) => {$(
        impl Statement for $ty {
            fn render(&self, backend: Backend) -> (String, sea_query_binder::SqlxValues) {
                match backend {
                    Backend::Sqlite => self.build_sqlx(SqliteQueryBuilder),
                    Backend::Postgres => self.build_sqlx(PostgresQueryBuilder),
                    Backend::MySql => self.build_sqlx(MysqlQueryBuilder),
                }
            }
        }
    )*};
}
statement!(
    SelectStatement,
    InsertStatement,
    UpdateStatement,
    DeleteStatement
);

impl Database {
    /// Connect to the database a SQLAlchemy-style URL names
    /// (`sqlite:///path`, `postgresql+psycopg2://…`, `mysql+pymysql://…`).
    /// A SQLite file and its directory are created when missing.
    pub async fn connect(url: &str) -> Result<Database, DbError> {
        Self::connect_with(url, PoolSettings::default()).await
    }

    /// As [`Database::connect`], with the pool bounded as `settings` say.
    pub async fn connect_with(url: &str, settings: PoolSettings) -> Result<Database, DbError> {
        let PoolSettings {
            max_connections,
            acquire_timeout: acquire,
            statement_timeout,
        } = settings;
        let parsed = parse_url(url)?;
        let display = parsed.display();
        let backend = parsed.backend();
        let connect_err = |source| DbError::Connect {
            backend,
            target: display.clone(),
            source,
        };
        let ping_timeout = (acquire / 4).min(PING_TIMEOUT);
        let pool = match parsed {
            DbUrl::Sqlite { path } => {
                use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
                let (opts, max) = match &path {
                    Some(path) => {
                        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                            std::fs::create_dir_all(dir)
                                .map_err(|e| connect_err(sqlx::Error::Io(e)))?;
                        }
                        let opts = SqliteConnectOptions::new()
                            .filename(path)
                            .create_if_missing(true)
                            .journal_mode(SqliteJournalMode::Wal);
                        (opts, max_connections)
                    }
                    // An in-memory database lives as long as its one connection.
                    None => (SqliteConnectOptions::new().in_memory(true), 1),
                };
                let opts = opts.busy_timeout(std::time::Duration::from_secs(30));
                let pool = SqlitePoolOptions::new()
                    .max_connections(max)
                    .min_connections(if path.is_none() { 1 } else { 0 })
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .acquire_timeout(acquire)
                    .connect_with(opts)
                    .await
                    .map_err(connect_err)?;
                Pool::Sqlite(pool)
            }
            DbUrl::Postgres(opts) => Pool::Postgres(
                first_connection(
                    sqlx::postgres::PgPoolOptions::new()
                        .test_before_acquire(false)
                        .before_acquire(move |conn, meta| {
                            Box::pin(ping_if_idle(conn, meta, ping_timeout))
                        })
                        .max_connections(max_connections)
                        .acquire_timeout(acquire)
                        .connect_lazy_with(opts),
                    acquire,
                )
                .await
                .map_err(connect_err)?,
            ),
            DbUrl::MySql(opts) => Pool::MySql(
                first_connection(
                    sqlx::mysql::MySqlPoolOptions::new()
                        .test_before_acquire(false)
                        .before_acquire(move |conn, meta| {
                            Box::pin(ping_if_idle(conn, meta, ping_timeout))
                        })
                        .max_connections(max_connections)
                        .acquire_timeout(acquire)
                        .connect_lazy_with(opts),
                    acquire,
                )
                .await
                .map_err(connect_err)?,
            ),
        };
        let statement_timeout = match pool {
            Pool::Sqlite(_) => None,
            _ => statement_timeout,
        };
        Ok(Database {
            pool,
            display,
            statements: Default::default(),
            statement_timeout,
        })
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
            Pool::MySql(_) => Backend::MySql,
        }
    }

    /// Where the database is, with any password masked.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// How many SQL statements this pool (and its clones) has sent,
    /// transactions' `BEGIN` and `COMMIT` included.
    pub fn statements(&self) -> u64 {
        self.statements.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn counted(&self, n: u64) {
        self.statements
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Render a statement for this backend, counting it.
    fn render(&self, stmt: &impl Statement) -> (String, sea_query_binder::SqlxValues) {
        self.counted(1);
        stmt.render(self.backend())
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
            Pool::MySql(p) => p.close().await,
        }
    }

    pub(crate) async fn fetch_all<T: AnyRow>(
        &self,
        stmt: &impl Statement,
    ) -> Result<Vec<T>, DbError> {
        let (sql, values) = self.render(stmt);
        macro_rules! run {
            ($pool:expr) => {
                bounded!(self.statement_timeout, $pool, |conn| {
                    sqlx::query_as_with::<_, T, _>(&sql, values)
                        .fetch_all(conn)
                        .await
                        .map_err(DbError::from_sql)
                })
            };
        }
        or_no_match(match &self.pool {
            Pool::Sqlite(p) => run!(p),
            Pool::Postgres(p) => run!(p),
            Pool::MySql(p) => run!(p),
        })
    }

    pub(crate) async fn fetch_optional<T: AnyRow>(
        &self,
        stmt: &impl Statement,
    ) -> Result<Option<T>, DbError> {
        let (sql, values) = self.render(stmt);
        macro_rules! run {
            ($pool:expr) => {
                bounded!(self.statement_timeout, $pool, |conn| {
                    sqlx::query_as_with::<_, T, _>(&sql, values)
                        .fetch_optional(conn)
                        .await
                        .map_err(DbError::from_sql)
                })
            };
        }
        or_no_match(match &self.pool {
            Pool::Sqlite(p) => run!(p),
            Pool::Postgres(p) => run!(p),
            Pool::MySql(p) => run!(p),
        })
    }

    /// Run a statement; the number of rows it touched.
    pub(crate) async fn execute(&self, stmt: &impl Statement) -> Result<u64, DbError> {
        let (sql, values) = self.render(stmt);
        if let Some(refused) = stmt.unstorable(&sql, &values.0 .0) {
            return Err(refused);
        }
        macro_rules! run {
            ($pool:expr) => {
                bounded!(self.statement_timeout, $pool, |conn| {
                    sqlx::query_with(&sql, values)
                        .execute(conn)
                        .await
                        .map(|r| r.rows_affected())
                        .map_err(DbError::from_sql)
                })
            };
        }
        or_no_match(match &self.pool {
            Pool::Sqlite(p) => run!(p),
            Pool::Postgres(p) => run!(p),
            Pool::MySql(p) => run!(p),
        })
    }

    /// Rows of `m.table` as field maps.
    pub(crate) async fn fetch_maps(
        &self,
        stmt: &SelectStatement,
        m: &records::Mapping,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, DbError> {
        let (sql, values) = self.render(stmt);
        macro_rules! run {
            ($pool:expr) => {
                bounded!(self.statement_timeout, $pool, |conn| {
                    let rows = sqlx::query_with(&sql, values)
                        .fetch_all(conn)
                        .await
                        .map_err(DbError::from_sql)?;
                    rows.iter().map(|r| records::decode(r, m)).collect()
                })
            };
        }
        or_no_match(match &self.pool {
            Pool::Sqlite(p) => run!(p),
            Pool::Postgres(p) => run!(p),
            Pool::MySql(p) => run!(p),
        })
    }

    /// Rows of `m.table` decoded straight into `T` (see
    /// [`records::decode_into`]).
    pub(crate) async fn fetch_records<T: serde::de::DeserializeOwned>(
        &self,
        stmt: &SelectStatement,
        m: &records::Mapping,
    ) -> Result<Vec<T>, DbError> {
        Ok(self
            .fetch_records_with(stmt, m, 0)
            .await?
            .into_iter()
            .map(|(t, _)| t)
            .collect())
    }

    /// Rows of `m.table` decoded straight into `T`, each with the text of
    /// the result's last `extra` columns (not the table's: subqueries the
    /// select added after its own columns).
    pub(crate) async fn fetch_records_with<T: serde::de::DeserializeOwned>(
        &self,
        stmt: &SelectStatement,
        m: &records::Mapping,
        extra: usize,
    ) -> Result<Vec<(T, Vec<Option<String>>)>, DbError> {
        let (sql, values) = self.render(stmt);
        // Each row is decoded as it arrives and then dropped, so a page
        // never holds its raw rows and their structs at once.
        macro_rules! run {
            ($pool:expr) => {
                bounded!(self.statement_timeout, $pool, |conn| {
                    use futures_lite::StreamExt as _;
                    let mut rows = sqlx::query_with(&sql, values).fetch(conn);
                    let mut out = Vec::new();
                    let mut columns = None;
                    while let Some(row) = rows.next().await {
                        let row = row.map_err(DbError::from_sql)?;
                        let cols = match &columns {
                            Some(c) => c,
                            None => columns.insert(records::result_columns(&row, m, extra)?),
                        };
                        let own = cols.len();
                        let extras = (own..own + extra)
                            .map(|i| sqlx::Row::try_get::<Option<String>, _>(&row, i))
                            .collect::<Result<Vec<_>, sqlx::Error>>()?;
                        out.push((records::decode_into(&row, m, cols)?, extras));
                    }
                    Ok(out)
                })
            };
        }
        or_no_match(match &self.pool {
            Pool::Sqlite(p) => run!(p),
            Pool::Postgres(p) => run!(p),
            Pool::MySql(p) => run!(p),
        })
    }

    /// Start a transaction.
    pub(crate) async fn begin(&self) -> Result<Tx, DbError> {
        self.counted(1);
        let conn = match &self.pool {
            Pool::Sqlite(p) => TxConn::Sqlite(p.acquire().await?),
            Pool::Postgres(p) => TxConn::Postgres(p.acquire().await?),
            Pool::MySql(p) => TxConn::MySql(p.acquire().await?),
        };
        let mut tx = Tx {
            conn: Some(conn),
            backend: self.backend(),
            statements: self.statements.clone(),
            statement_timeout: self.statement_timeout,
        };
        // IMMEDIATE: take SQLite's write lock up front (waiting as
        // busy_timeout allows), so a transaction that reads, then writes,
        // is never refused at its first write because another connection
        // wrote meanwhile.
        let begin = match self.backend() {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            _ => "BEGIN",
        };
        tx.raw(begin).await?;
        Ok(tx)
    }

    /// Run plain SQL without parameters (DDL).
    pub(crate) async fn execute_raw(&self, sql: &str) -> Result<(), DbError> {
        self.counted(1);
        match &self.pool {
            Pool::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
            Pool::Postgres(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
            Pool::MySql(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
        }
        .map_err(DbError::from_sql)
    }

    /// Count the rows a `SELECT COUNT(*)` statement yields.
    pub(crate) async fn count(&self, stmt: &SelectStatement) -> Result<i64, DbError> {
        #[derive(sqlx::FromRow)]
        struct Count {
            n: i64,
        }
        let row: Option<Count> = self.fetch_optional(stmt).await?;
        Ok(row.map(|c| c.n).unwrap_or(0))
    }
}

/// Connections idle for longer than this are pinged before use (one that
/// died while idle, say across a server restart, is replaced before a
/// request sees it); busier ones are not, sparing a round trip per
/// statement under load.
const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// The longest such a ping may take (or a quarter of the pool's wait, if
/// less) before its connection is dropped as dead: one that went half-open
/// while idle never answers, and the pool moves on to the next one (or a
/// new one) within the same wait.
const PING_TIMEOUT: Duration = Duration::from_millis(500);

async fn ping_if_idle<C: sqlx::Connection>(
    conn: &mut C,
    meta: sqlx::pool::PoolConnectionMetadata,
    limit: Duration,
) -> Result<bool, sqlx::Error> {
    if meta.idle_for > PING_AFTER_IDLE {
        tokio::time::timeout(limit, conn.ping())
            .await
            .map_err(|_| {
                sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no answer to a ping",
                ))
            })??;
    }
    Ok(true)
}

/// A transaction on any backend, on a connection of its own; rolled back
/// when dropped uncommitted. It is run with plain `BEGIN`/`COMMIT` rather
/// than sqlx's transaction type so that a connection whose statement ran
/// out of time can be dropped instead of returned to the pool (where the
/// pool's return ping would wait on it for as long as it stays half-open).
pub(crate) struct Tx {
    /// `None` once committed, or given up after a lost connection.
    conn: Option<TxConn>,
    backend: Backend,
    statements: std::sync::Arc<std::sync::atomic::AtomicU64>,
    statement_timeout: Option<Duration>,
}

enum TxConn {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
    MySql(sqlx::pool::PoolConnection<sqlx::MySql>),
}

impl TxConn {
    /// Leave the pool and close: the server rolls back what was open.
    fn abandon(self) {
        match self {
            TxConn::Sqlite(c) => drop(c.detach()),
            TxConn::Postgres(c) => drop(c.detach()),
            TxConn::MySql(c) => drop(c.detach()),
        }
    }

    /// Roll back, then go back to the pool; abandoned if that fails.
    async fn rollback(mut self, limit: Option<Duration>) {
        use sqlx::Executor as _;
        let run = async {
            match &mut self {
                TxConn::Sqlite(c) => c.execute("ROLLBACK").await.map(drop),
                TxConn::Postgres(c) => c.execute("ROLLBACK").await.map(drop),
                TxConn::MySql(c) => c.execute("ROLLBACK").await.map(drop),
            }
        };
        let done = match limit {
            Some(limit) => tokio::time::timeout(limit, run).await.ok(),
            None => Some(run.await),
        };
        if !matches!(done, Some(Ok(()))) {
            self.abandon();
        }
    }
}

impl Tx {
    fn counted(&self) {
        self.statements
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Run `body` on the transaction's connection, within the statement
    /// bound; a connection that runs out of time or is lost is given up
    /// (the server rolls back when it closes).
    async fn run<T>(
        &mut self,
        body: impl for<'c> FnOnce(
            &'c mut TxConn,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, sqlx::Error>> + Send + 'c>,
        >,
    ) -> Result<T, DbError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(DbError::Unavailable(sqlx::Error::PoolClosed));
        };
        let result = match self.statement_timeout {
            None => body(conn).await.map_err(DbError::from_sql),
            Some(limit) => match tokio::time::timeout(limit, body(conn)).await {
                Ok(done) => done.map_err(DbError::from_sql),
                Err(_) => Err(statement_timed_out(limit)),
            },
        };
        if let Err(DbError::Unavailable(_)) = &result {
            if let Some(conn) = self.conn.take() {
                conn.abandon();
            }
        }
        result
    }

    /// Run plain SQL without parameters (sent as text, not prepared).
    async fn raw(&mut self, sql: &'static str) -> Result<(), DbError> {
        use sqlx::Executor as _;
        self.run(move |conn| {
            Box::pin(async move {
                match conn {
                    TxConn::Sqlite(c) => c.execute(sql).await.map(drop),
                    TxConn::Postgres(c) => c.execute(sql).await.map(drop),
                    TxConn::MySql(c) => c.execute(sql).await.map(drop),
                }
            })
        })
        .await
    }

    /// Run a statement; the number of rows it touched.
    pub(crate) async fn execute(&mut self, stmt: &impl Statement) -> Result<u64, DbError> {
        self.counted();
        let (sql, values) = stmt.render(self.backend);
        if let Some(refused) = stmt.unstorable(&sql, &values.0 .0) {
            return Err(refused);
        }
        or_no_match(
            self.run(move |conn| {
                Box::pin(async move {
                    match conn {
                        TxConn::Sqlite(c) => sqlx::query_with(&sql, values)
                            .execute(&mut **c)
                            .await
                            .map(|r| r.rows_affected()),
                        TxConn::Postgres(c) => sqlx::query_with(&sql, values)
                            .execute(&mut **c)
                            .await
                            .map(|r| r.rows_affected()),
                        TxConn::MySql(c) => sqlx::query_with(&sql, values)
                            .execute(&mut **c)
                            .await
                            .map(|r| r.rows_affected()),
                    }
                })
            })
            .await,
        )
    }

    /// The first row a statement yields, if any, inside the transaction.
    pub(crate) async fn fetch_optional<T: AnyRow>(
        &mut self,
        stmt: &SelectStatement,
    ) -> Result<Option<T>, DbError> {
        self.counted();
        let (sql, values) = stmt.render(self.backend);
        self.run(move |conn| {
            Box::pin(async move {
                match conn {
                    TxConn::Sqlite(c) => {
                        sqlx::query_as_with::<_, T, _>(&sql, values)
                            .fetch_optional(&mut **c)
                            .await
                    }
                    TxConn::Postgres(c) => {
                        sqlx::query_as_with::<_, T, _>(&sql, values)
                            .fetch_optional(&mut **c)
                            .await
                    }
                    TxConn::MySql(c) => {
                        sqlx::query_as_with::<_, T, _>(&sql, values)
                            .fetch_optional(&mut **c)
                            .await
                    }
                }
            })
        })
        .await
    }

    /// Count the rows a `SELECT COUNT(*) AS n` statement yields, inside
    /// the transaction.
    pub(crate) async fn count(&mut self, stmt: &SelectStatement) -> Result<i64, DbError> {
        self.counted();
        let (sql, values) = stmt.render(self.backend);
        or_no_match(
            self.run(move |conn| {
                Box::pin(async move {
                    match conn {
                        TxConn::Sqlite(c) => {
                            sqlx::query_scalar_with::<_, i64, _>(&sql, values)
                                .fetch_one(&mut **c)
                                .await
                        }
                        TxConn::Postgres(c) => {
                            sqlx::query_scalar_with::<_, i64, _>(&sql, values)
                                .fetch_one(&mut **c)
                                .await
                        }
                        TxConn::MySql(c) => {
                            sqlx::query_scalar_with::<_, i64, _>(&sql, values)
                                .fetch_one(&mut **c)
                                .await
                        }
                    }
                })
            })
            .await,
        )
    }

    /// Undo the transaction now, before going on (dropping it would too,
    /// in a task of its own).
    pub(crate) async fn rollback(mut self) -> Result<(), DbError> {
        self.counted();
        if let Some(conn) = self.conn.take() {
            conn.rollback(self.statement_timeout).await;
        }
        Ok(())
    }

    pub(crate) async fn commit(mut self) -> Result<(), DbError> {
        self.counted();
        self.raw("COMMIT").await?;
        // Committed: the connection goes back to the pool as it is.
        drop(self.conn.take());
        Ok(())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(conn.rollback(self.statement_timeout));
            }
            Err(_) => conn.abandon(),
        }
    }
}

/// The current time as stored: UTC, whole seconds (MariaDB's `datetime`
/// keeps no fraction, so every backend stores the same value).
pub fn now() -> chrono::NaiveDateTime {
    let now = chrono::Utc::now().naive_utc();
    chrono::NaiveDateTime::new(
        now.date(),
        chrono::NaiveTime::from_hms_opt(
            chrono::Timelike::hour(&now),
            chrono::Timelike::minute(&now),
            chrono::Timelike::second(&now),
        )
        .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    #[test]
    fn lost_connections_are_unavailable_and_refusals_are_not() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            DbError::from(sqlx::Error::Io(refused)),
            DbError::Unavailable(_)
        ));
        assert!(matches!(
            DbError::from(sqlx::Error::PoolTimedOut),
            DbError::Unavailable(_)
        ));
        assert!(matches!(
            statement_timed_out(Duration::from_secs(2)),
            DbError::Unavailable(_)
        ));
        assert!(matches!(
            DbError::from(sqlx::Error::RowNotFound),
            DbError::Sql(_)
        ));
        assert!(matches!(
            DbError::from_sql(sqlx::Error::ColumnNotFound("x".into())),
            DbError::Sql(_)
        ));
    }

    /// Transactions run on a connection of their own and give it back
    /// however they end (committed, dropped uncommitted, failed): on a
    /// one-connection pool each next statement still finds it.
    async fn transactions_give_their_connection_back(backend: Backend) {
        let t = TestDb::create(backend).await;
        t.migrated().await.close().await;
        let settings = PoolSettings {
            max_connections: 1,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(5)),
        };
        let db = Database::connect_with(&t.url, settings).await.unwrap();
        let gate = Gate {
            from: &["CREATE_COMPLETE"],
            to: Some("UPDATE_IN_PROGRESS"),
        };
        let id = "b2222222-2222-2222-2222-222222222222";
        let op = Operation::new(id, "cluster_update", Default::default(), Default::default());
        for _ in 0..3 {
            // No such cluster: the transaction is dropped uncommitted.
            assert!(!db.operation_enqueue(&op, gate).await.unwrap());
        }
        // Committed, and refused (a duplicate) inside a transaction.
        assert!(!db.cluster_destroy(id).await.unwrap());
        let cluster = magnum_core::objects::Cluster {
            uuid: id.into(),
            status: Some("CREATE_COMPLETE".into()),
            ..Default::default()
        };
        let create = Operation::new(id, "cluster_create", Default::default(), Default::default());
        db.cluster_create_queued(&cluster, &[], &create, None)
            .await
            .unwrap();
        assert!(matches!(
            db.cluster_create_queued(&cluster, &[], &create, None).await,
            Err(DbError::Duplicate)
        ));
        assert!(db.operation_enqueue(&op, gate).await.unwrap());
        assert_eq!(db.operations_of(id).await.unwrap().len(), 2);
        assert!(db.cluster_get(id).await.unwrap().is_some());
        db.close().await;
    }

    mod sqlite {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn transactions_give_their_connection_back() {
            super::transactions_give_their_connection_back(crate::Backend::Sqlite).await
        }
    }
    mod postgres {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn transactions_give_their_connection_back() {
            super::transactions_give_their_connection_back(crate::Backend::Postgres).await
        }
    }
    mod mysql {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn transactions_give_their_connection_back() {
            super::transactions_give_their_connection_back(crate::Backend::MySql).await
        }
    }
}
