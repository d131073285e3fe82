//! Running one statement on a pooled connection, bounded by the statement
//! timeout, and decoding its rows.

use super::*;

/// `$body` on a connection of this database's pool, bounded by its
/// statement timeout (compiled once per backend; the arm of the pool it
/// has runs); a statement no row can match answers no rows.
macro_rules! on_pool {
    ($db:expr, |$conn:ident| $body:expr) => {
        or_no_match(match &$db.pool {
            Pool::Sqlite(p) => bounded!($db.statement_timeout, p, |$conn| $body),
            Pool::Postgres(p) => bounded!($db.statement_timeout, p, |$conn| $body),
            Pool::MySql(p) => bounded!($db.statement_timeout, p, |$conn| $body),
        })
    };
}

impl Database {
    pub(crate) async fn fetch_all<T: AnyRow>(
        &self,
        stmt: &impl Statement,
    ) -> Result<Vec<T>, DbError> {
        let (sql, values) = self.render(stmt);
        on_pool!(self, |conn| {
            sqlx::query_as_with::<_, T, _>(&sql, values)
                .fetch_all(conn)
                .await
                .map_err(DbError::from_sql)
        })
    }

    pub(crate) async fn fetch_optional<T: AnyRow>(
        &self,
        stmt: &impl Statement,
    ) -> Result<Option<T>, DbError> {
        let (sql, values) = self.render(stmt);
        on_pool!(self, |conn| {
            sqlx::query_as_with::<_, T, _>(&sql, values)
                .fetch_optional(conn)
                .await
                .map_err(DbError::from_sql)
        })
    }

    /// Run a statement; the number of rows it touched.
    pub(crate) async fn execute(&self, stmt: &impl Statement) -> Result<u64, DbError> {
        let (sql, values) = self.render(stmt);
        if let Some(refused) = stmt.unstorable(&sql, &values.0 .0) {
            return Err(refused);
        }
        on_pool!(self, |conn| {
            sqlx::query_with(&sql, values)
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
                .map_err(DbError::from_sql)
        })
    }

    /// Rows of `m.table` as field maps.
    pub(crate) async fn fetch_maps(
        &self,
        stmt: &SelectStatement,
        m: &records::Mapping,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, DbError> {
        let (sql, values) = self.render(stmt);
        on_pool!(self, |conn| {
            let rows = sqlx::query_with(&sql, values)
                .fetch_all(conn)
                .await
                .map_err(DbError::from_sql)?;
            rows.iter().map(|r| records::decode(r, m)).collect()
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
        let (text, values) = self.render(stmt);
        let sql = shapes::Sql {
            text: text.into(),
            values,
        };
        self.fetch_sql_records(sql, m, extra).await
    }

    /// [`Database::fetch_records_with`] of a statement already rendered.
    pub(crate) async fn fetch_sql_records<T: serde::de::DeserializeOwned>(
        &self,
        sql: shapes::Sql,
        m: &records::Mapping,
        extra: usize,
    ) -> Result<Vec<(T, Vec<Option<String>>)>, DbError> {
        let shapes::Sql { text: sql, values } = sql;
        // Each row is decoded as it arrives and then dropped, so a page
        // never holds its raw rows and their structs at once.
        on_pool!(self, |conn| {
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
                out.push((records::decode_into(&row, m, cols, 0)?, extras));
            }
            Ok(out)
        })
    }

    /// One row of `m.table` with the rows of `n.table` it joins, from the
    /// rows of a `LEFT JOIN` that each list every column of `m.table` (in
    /// declaration order), then `extra` columns read as text, then the
    /// `n_columns` of `n.table`, `id` first (NULL where the join found no
    /// row). The parent is decoded from the first row only.
    #[allow(clippy::type_complexity)]
    pub(crate) async fn fetch_with_children<T, U>(
        &self,
        sql: shapes::Sql,
        m: &records::Mapping,
        extra: usize,
        n: &records::Mapping,
        n_columns: &[&'static str],
    ) -> Result<Option<(T, Vec<Option<String>>, Vec<U>)>, DbError>
    where
        T: serde::de::DeserializeOwned,
        U: serde::de::DeserializeOwned,
    {
        debug_assert_eq!(n_columns.first(), Some(&"id"));
        let own: Vec<&'static schema::Column> = m.table.columns.iter().collect();
        let children: Vec<&'static schema::Column> = n_columns
            .iter()
            .filter_map(|name| n.table.columns.iter().find(|c| c.name == *name))
            .collect();
        debug_assert_eq!(children.len(), n_columns.len());
        let start = own.len() + extra;
        let shapes::Sql { text: sql, values } = sql;
        on_pool!(self, |conn| {
            use futures_lite::StreamExt as _;
            let mut rows = sqlx::query_with(&sql, values).fetch(conn);
            let mut parent = None;
            let mut kids = Vec::new();
            while let Some(row) = rows.next().await {
                let row = row.map_err(DbError::from_sql)?;
                if parent.is_none() {
                    let extras = (own.len()..start)
                        .map(|i| sqlx::Row::try_get::<Option<String>, _>(&row, i))
                        .collect::<Result<Vec<_>, sqlx::Error>>()?;
                    parent = Some((records::decode_into(&row, m, &own, 0)?, extras));
                }
                if sqlx::Row::try_get::<Option<i32>, _>(&row, start)?.is_some() {
                    kids.push(records::decode_into(&row, n, &children, start)?);
                }
            }
            Ok(parent.map(|(t, extras)| (t, extras, kids)))
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
