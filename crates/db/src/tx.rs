//! Transactions: one pooled connection held from `BEGIN` to `COMMIT`, each
//! statement bounded, rolled back (or the connection given up) when dropped
//! unfinished.

use super::*;

/// Connections idle for longer than this are pinged before use (one that
/// died while idle, say across a server restart, is replaced before a
/// request sees it); busier ones are not, sparing a round trip per
/// statement under load.
pub(crate) const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// The longest such a ping may take (or a quarter of the pool's wait, if
/// less) before its connection is dropped as dead: one that went half-open
/// while idle never answers, and the pool moves on to the next one (or a
/// new one) within the same wait.
pub(crate) const PING_TIMEOUT: Duration = Duration::from_millis(500);

pub(crate) async fn ping_if_idle<C: sqlx::Connection>(
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

pub(crate) enum TxConn {
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

impl Database {
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
}
