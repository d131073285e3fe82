//! What the persistence layer fails with, and how driver errors map to it.

use super::*;

/// Failures of the persistence layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL {0}: expected sqlite://, postgresql:// or mysql://")]
    UnsupportedUrl(String),
    #[error("cannot connect to the {backend} database at {target}")]
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
pub(crate) fn unreachable(err: &sqlx::Error) -> bool {
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
pub(crate) fn statement_timed_out(limit: std::time::Duration) -> DbError {
    DbError::Unavailable(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "no answer to a statement within {} s ([database] statement_timeout)",
            limit.as_secs_f64()
        ),
    )))
}

impl DbError {
    pub(crate) fn from_sql(err: sqlx::Error) -> DbError {
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
