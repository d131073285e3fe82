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
mod events;
mod federations;
mod fence;
mod migrate;
mod narrow;
mod nodegroups;
mod operations;
mod paginate;
mod quotas;
mod records;
pub mod schema;
mod services;
mod shapes;
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
pub use events::{nodegroup_of, ClusterEvent, EventKind, FailureClass};
pub use federations::Federation;
pub use fence::{Fence, Write};
pub use migrate::{MigrationOutcome, HEAD_REVISION, REVISIONS};
pub use operations::{CreateOutcome, Gate, Operation, OPERATION_KEY};
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
    /// The SQL text of the shaped statements rendered so far.
    shapes: shapes::Shapes,
}

/// A pool's connections at one moment ([`Database::pool_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// Connections open, idle or in use.
    pub size: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// The most the pool opens (`[database] max_pool_size`).
    pub max: u32,
}

impl PoolState {
    /// Connections handed out to statements now.
    pub fn in_use(&self) -> u32 {
        self.size.saturating_sub(self.idle)
    }
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

mod error;
mod exec;
mod tx;
use error::statement_timed_out;
pub use error::DbError;
pub(crate) use tx::Tx;
use tx::{ping_if_idle, PING_TIMEOUT};

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
            shapes: Default::default(),
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

    /// The pool's connections now: open, idle, and its bound.
    pub fn pool_state(&self) -> PoolState {
        fn of<DB: sqlx::Database>(p: &sqlx::Pool<DB>) -> PoolState {
            PoolState {
                size: p.size(),
                idle: p.num_idle() as u32,
                max: p.options().get_max_connections(),
            }
        }
        match &self.pool {
            Pool::Sqlite(p) => of(p),
            Pool::Postgres(p) => of(p),
            Pool::MySql(p) => of(p),
        }
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
        let t = TestDb::create_migrated(backend).await;
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
        assert!(!db.cluster_destroy(id, &[]).await.unwrap());
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
