//! SQL persistence for Magnum on SQLite, PostgreSQL and MariaDB/MySQL through
//! one code path: queries are built once with sea-query, rendered for the
//! backend in use and run with sqlx; rows decode into the same structs on
//! every backend.
//!
//! [`Database::connect`] takes the SQLAlchemy URLs operators already have in
//! `[database] connection`; [`Database::migrate`] brings a database to the
//! head of our migrations, recorded in upstream's `alembic_version` table.

mod cluster_templates;
mod clusters;
mod federations;
mod fence;
mod migrate;
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
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}

impl DbError {
    fn from_sql(err: sqlx::Error) -> DbError {
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
pub(crate) trait Statement {
    fn render(&self, backend: Backend) -> (String, sea_query_binder::SqlxValues);
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
        Self::connect_with(url, 5).await
    }

    /// As [`Database::connect`], with at most `max_connections` connections.
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Database, DbError> {
        let parsed = parse_url(url)?;
        let display = parsed.display();
        let backend = parsed.backend();
        let connect_err = |source| DbError::Connect {
            backend,
            target: display.clone(),
            source,
        };
        let acquire = std::time::Duration::from_secs(10);
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
                sqlx::postgres::PgPoolOptions::new()
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| Box::pin(ping_if_idle(conn, meta)))
                    .max_connections(max_connections)
                    .acquire_timeout(acquire)
                    .connect_with(opts)
                    .await
                    .map_err(connect_err)?,
            ),
            DbUrl::MySql(opts) => Pool::MySql(
                sqlx::mysql::MySqlPoolOptions::new()
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| Box::pin(ping_if_idle(conn, meta)))
                    .max_connections(max_connections)
                    .acquire_timeout(acquire)
                    .connect_with(opts)
                    .await
                    .map_err(connect_err)?,
            ),
        };
        Ok(Database {
            pool,
            display,
            statements: Default::default(),
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
        let rows = match &self.pool {
            Pool::Sqlite(p) => {
                sqlx::query_as_with::<_, T, _>(&sql, values)
                    .fetch_all(p)
                    .await
            }
            Pool::Postgres(p) => {
                sqlx::query_as_with::<_, T, _>(&sql, values)
                    .fetch_all(p)
                    .await
            }
            Pool::MySql(p) => {
                sqlx::query_as_with::<_, T, _>(&sql, values)
                    .fetch_all(p)
                    .await
            }
        };
        rows.map_err(DbError::from_sql)
    }

    pub(crate) async fn fetch_optional<T: AnyRow>(
        &self,
        stmt: &impl Statement,
    ) -> Result<Option<T>, DbError> {
        let (sql, values) = self.render(stmt);
        let row = match &self.pool {
            Pool::Sqlite(p) => {
                sqlx::query_as_with::<_, T, _>(&sql, values)
                    .fetch_optional(p)
                    .await
            }
            Pool::Postgres(p) => {
                sqlx::query_as_with::<_, T, _>(&sql, values)
                    .fetch_optional(p)
                    .await
            }
            Pool::MySql(p) => {
                sqlx::query_as_with::<_, T, _>(&sql, values)
                    .fetch_optional(p)
                    .await
            }
        };
        row.map_err(DbError::from_sql)
    }

    /// Run a statement; the number of rows it touched.
    pub(crate) async fn execute(&self, stmt: &impl Statement) -> Result<u64, DbError> {
        let (sql, values) = self.render(stmt);
        let done = match &self.pool {
            Pool::Sqlite(p) => sqlx::query_with(&sql, values)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
            Pool::Postgres(p) => sqlx::query_with(&sql, values)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
            Pool::MySql(p) => sqlx::query_with(&sql, values)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
        };
        done.map_err(DbError::from_sql)
    }

    /// Rows of `m.table` as field maps.
    pub(crate) async fn fetch_maps(
        &self,
        stmt: &SelectStatement,
        m: &records::Mapping,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, DbError> {
        let (sql, values) = self.render(stmt);
        macro_rules! run {
            ($pool:expr) => {{
                let rows = sqlx::query_with(&sql, values)
                    .fetch_all($pool)
                    .await
                    .map_err(DbError::from_sql)?;
                rows.iter().map(|r| records::decode(r, m)).collect()
            }};
        }
        match &self.pool {
            Pool::Sqlite(p) => run!(p),
            Pool::Postgres(p) => run!(p),
            Pool::MySql(p) => run!(p),
        }
    }

    /// Rows of `m.table` decoded straight into `T` (see
    /// [`records::decode_into`]).
    pub(crate) async fn fetch_records<T: serde::de::DeserializeOwned>(
        &self,
        stmt: &SelectStatement,
        m: &records::Mapping,
    ) -> Result<Vec<T>, DbError> {
        let (sql, values) = self.render(stmt);
        // Each row is decoded as it arrives and then dropped, so a page
        // never holds its raw rows and their structs at once.
        macro_rules! run {
            ($pool:expr) => {{
                use futures_lite::StreamExt as _;
                let mut rows = sqlx::query_with(&sql, values).fetch($pool);
                let mut out = Vec::new();
                let mut columns = None;
                while let Some(row) = rows.next().await {
                    let row = row.map_err(DbError::from_sql)?;
                    let cols = match &columns {
                        Some(c) => c,
                        None => columns.insert(records::result_columns(&row, m)?),
                    };
                    out.push(records::decode_into(&row, m, cols)?);
                }
                Ok(out)
            }};
        }
        match &self.pool {
            Pool::Sqlite(p) => run!(p),
            Pool::Postgres(p) => run!(p),
            Pool::MySql(p) => run!(p),
        }
    }

    /// Start a transaction.
    pub(crate) async fn begin(&self) -> Result<Tx, DbError> {
        self.counted(1);
        let conn = match &self.pool {
            // IMMEDIATE: take SQLite's write lock up front (waiting as
            // busy_timeout allows), so a transaction that reads, then
            // writes, is never refused at its first write because another
            // connection wrote meanwhile.
            Pool::Sqlite(p) => TxConn::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => TxConn::Postgres(p.begin().await?),
            Pool::MySql(p) => TxConn::MySql(p.begin().await?),
        };
        Ok(Tx {
            conn,
            statements: self.statements.clone(),
        })
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

async fn ping_if_idle<C: sqlx::Connection>(
    conn: &mut C,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> Result<bool, sqlx::Error> {
    if meta.idle_for > PING_AFTER_IDLE {
        conn.ping().await?;
    }
    Ok(true)
}

/// A transaction on any backend; rolled back when dropped uncommitted.
pub(crate) struct Tx {
    conn: TxConn,
    statements: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

enum TxConn {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    MySql(sqlx::Transaction<'static, sqlx::MySql>),
}

impl Tx {
    fn backend(&self) -> Backend {
        match self.conn {
            TxConn::Sqlite(_) => Backend::Sqlite,
            TxConn::Postgres(_) => Backend::Postgres,
            TxConn::MySql(_) => Backend::MySql,
        }
    }

    fn counted(&self) {
        self.statements
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Run a statement; the number of rows it touched.
    pub(crate) async fn execute(&mut self, stmt: &impl Statement) -> Result<u64, DbError> {
        self.counted();
        let (sql, values) = stmt.render(self.backend());
        let done = match &mut self.conn {
            TxConn::Sqlite(t) => sqlx::query_with(&sql, values)
                .execute(&mut **t)
                .await
                .map(|r| r.rows_affected()),
            TxConn::Postgres(t) => sqlx::query_with(&sql, values)
                .execute(&mut **t)
                .await
                .map(|r| r.rows_affected()),
            TxConn::MySql(t) => sqlx::query_with(&sql, values)
                .execute(&mut **t)
                .await
                .map(|r| r.rows_affected()),
        };
        done.map_err(DbError::from_sql)
    }

    /// Count the rows a `SELECT COUNT(*) AS n` statement yields, inside
    /// the transaction.
    pub(crate) async fn count(&mut self, stmt: &SelectStatement) -> Result<i64, DbError> {
        self.counted();
        let (sql, values) = stmt.render(self.backend());
        let n = match &mut self.conn {
            TxConn::Sqlite(t) => {
                sqlx::query_scalar_with::<_, i64, _>(&sql, values)
                    .fetch_one(&mut **t)
                    .await
            }
            TxConn::Postgres(t) => {
                sqlx::query_scalar_with::<_, i64, _>(&sql, values)
                    .fetch_one(&mut **t)
                    .await
            }
            TxConn::MySql(t) => {
                sqlx::query_scalar_with::<_, i64, _>(&sql, values)
                    .fetch_one(&mut **t)
                    .await
            }
        };
        n.map_err(DbError::from_sql)
    }

    /// Undo the transaction now (dropping it would too, but only when its
    /// connection is next used or returned).
    pub(crate) async fn rollback(self) -> Result<(), DbError> {
        self.counted();
        match self.conn {
            TxConn::Sqlite(t) => t.rollback().await,
            TxConn::Postgres(t) => t.rollback().await,
            TxConn::MySql(t) => t.rollback().await,
        }
        .map_err(DbError::from_sql)
    }

    pub(crate) async fn commit(self) -> Result<(), DbError> {
        self.counted();
        match self.conn {
            TxConn::Sqlite(t) => t.commit().await,
            TxConn::Postgres(t) => t.commit().await,
            TxConn::MySql(t) => t.commit().await,
        }
        .map_err(DbError::from_sql)
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
