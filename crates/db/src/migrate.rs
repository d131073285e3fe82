//! Versioned migrations, recorded where upstream records them: the one row
//! of `alembic_version`. Our first revision *is* upstream's head
//! (b3e1cf4a2d5e), so a database upstream migrated to its head is already
//! current for us, and a database we create is current for upstream.
//! Later revisions of ours chain from it.

use sea_query::{Alias, Expr, Query};

use crate::schema::{self, TABLES};
use crate::{Backend, Database, DbError};

/// One migration: its id, the revision it follows, and its DDL per backend.
#[derive(Debug, Clone, Copy)]
pub struct Revision {
    pub id: &'static str,
    pub down: Option<&'static str>,
    pub description: &'static str,
    ddl: fn(Backend) -> Vec<String>,
}

fn initial_schema(backend: Backend) -> Vec<String> {
    TABLES
        .iter()
        .filter(|t| t.name != schema::ALEMBIC_VERSION.name)
        .map(|t| schema::create_table(backend, t))
        .collect()
}

/// Every revision, oldest first.
pub const REVISIONS: &[Revision] = &[Revision {
    id: "b3e1cf4a2d5e",
    down: None,
    description: "upstream Magnum's schema at its alembic head",
    ddl: initial_schema,
}];

/// The revision a fully migrated database is at.
pub const HEAD_REVISION: &str = "b3e1cf4a2d5e";

/// Every statement a migration from nothing to head runs on `backend`, in
/// order: what the test databases' template is keyed by.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn head_ddl(backend: Backend) -> Vec<String> {
    let mut all = vec![schema::create_table(backend, &schema::ALEMBIC_VERSION)];
    for rev in REVISIONS {
        all.push(rev.id.to_string());
        all.extend((rev.ddl)(backend));
    }
    all.extend(
        schema::OWN_TABLES
            .iter()
            .map(|t| schema::create_table(backend, t)),
    );
    all.extend(
        schema::OWN_INDEXES
            .iter()
            .map(|i| schema::create_index(backend, *i)),
    );
    all
}

/// What [`Database::migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationOutcome {
    pub from: Option<String>,
    pub to: String,
    pub applied: Vec<&'static str>,
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    version_num: String,
}

impl Database {
    async fn table_exists(&self, table: &str) -> bool {
        let probe = Query::select()
            .expr(Expr::cust("1"))
            .from(Alias::new(table))
            .limit(1)
            .to_owned();
        #[derive(sqlx::FromRow)]
        struct Nothing {}
        self.fetch_optional::<Nothing>(&probe).await.is_ok()
    }

    /// The revision recorded in `alembic_version`, if any.
    pub async fn version(&self) -> Result<Option<String>, DbError> {
        if !self.table_exists(schema::ALEMBIC_VERSION.name).await {
            return Ok(None);
        }
        let q = Query::select()
            .column(Alias::new("version_num"))
            .from(Alias::new(schema::ALEMBIC_VERSION.name))
            .to_owned();
        let rows: Vec<VersionRow> = self.fetch_all(&q).await?;
        Ok(rows.into_iter().next().map(|r| r.version_num))
    }

    /// Fail unless the database is at [`HEAD_REVISION`].
    pub async fn check_current(&self) -> Result<(), DbError> {
        match self.version().await? {
            Some(v) if v == HEAD_REVISION => Ok(()),
            Some(v) if !REVISIONS.iter().any(|r| r.id == v) => Err(DbError::UnknownRevision(v)),
            _ => Err(DbError::NotMigrated),
        }?;
        for t in &schema::OWN_TABLES {
            if !self.table_exists(t.name).await {
                return Err(DbError::NotMigrated);
            }
        }
        Ok(())
    }

    /// Create those of our own tables that are missing.
    async fn create_own_tables(&self) -> Result<Vec<&'static str>, DbError> {
        let mut made = Vec::new();
        for t in &schema::OWN_TABLES {
            if !self.table_exists(t.name).await {
                self.execute_raw(&schema::create_table(self.backend(), t))
                    .await?;
                made.push(t.name);
            }
        }
        Ok(made)
    }

    /// Bring the database to [`HEAD_REVISION`], applying what is missing.
    pub async fn migrate(&self) -> Result<MigrationOutcome, DbError> {
        let from = self.version().await?;
        let start = match &from {
            None => {
                if self.table_exists(schema::CLUSTER_TEMPLATE.name).await {
                    return Err(DbError::UnversionedSchema);
                }
                if !self.table_exists(schema::ALEMBIC_VERSION.name).await {
                    self.execute_raw(&schema::create_table(
                        self.backend(),
                        &schema::ALEMBIC_VERSION,
                    ))
                    .await?;
                }
                0
            }
            Some(v) => match REVISIONS.iter().position(|r| r.id == v) {
                Some(i) => i + 1,
                None => return Err(DbError::UnknownRevision(v.clone())),
            },
        };
        let mut applied = Vec::new();
        let mut current = from.clone();
        for rev in &REVISIONS[start..] {
            debug_assert_eq!(rev.down, current.as_deref());
            tracing::info!(revision = rev.id, "applying migration: {}", rev.description);
            for ddl in (rev.ddl)(self.backend()) {
                self.execute_raw(&ddl).await?;
            }
            self.record_version(current.as_deref(), rev.id).await?;
            current = Some(rev.id.to_string());
            applied.push(rev.id);
        }
        for t in self.create_own_tables().await? {
            tracing::info!("created table {t}");
        }
        for index in schema::OWN_INDEXES {
            self.execute_raw(&schema::create_index(self.backend(), index))
                .await?;
        }
        Ok(MigrationOutcome {
            from,
            to: current.unwrap_or_default(),
            applied,
        })
    }

    async fn record_version(&self, old: Option<&str>, new: &str) -> Result<(), DbError> {
        let table = Alias::new(schema::ALEMBIC_VERSION.name);
        let col = Alias::new("version_num");
        match old {
            None => {
                let q = Query::insert()
                    .into_table(table)
                    .columns([col])
                    .values_panic([new.into()])
                    .to_owned();
                self.execute(&q).await?;
            }
            Some(old) => {
                let q = Query::update()
                    .table(table)
                    .value(col.clone(), new)
                    .and_where(Expr::col(col).eq(old))
                    .to_owned();
                self.execute(&q).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::TestDb;
    use crate::{schema, Backend, DbError};

    /// Migrating again changes nothing; a database without one of our own
    /// tables (an upstream database, or one of an older build of ours) is
    /// not current until migrated, and migrating adds the table.
    async fn own_tables_are_added_to_a_current_database(backend: Backend) {
        let t = TestDb::create(backend).await;
        let db = t.migrated().await;
        let again = db.migrate().await.unwrap();
        assert!(again.applied.is_empty(), "{again:?}");
        db.check_current().await.unwrap();
        for table in schema::OWN_TABLES {
            db.execute_raw(&format!("DROP TABLE {}", table.name))
                .await
                .unwrap();
            assert!(
                matches!(db.check_current().await, Err(DbError::NotMigrated)),
                "current without {}",
                table.name
            );
            let outcome = db.migrate().await.unwrap();
            assert!(outcome.applied.is_empty(), "{outcome:?}");
            assert!(db.table_exists(table.name).await, "{}", table.name);
            db.check_current().await.unwrap();
        }
        db.close().await;
    }

    backends!(own_tables_are_added_to_a_current_database);
}
