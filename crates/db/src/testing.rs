//! Throwaway databases for tests, on every backend.
//!
//! The servers come from the environment, with the local defaults:
//! `MAGNUM_TEST_POSTGRES_URL` (`postgresql://postgres@127.0.0.1:5432/postgres`)
//! and `MAGNUM_TEST_MYSQL_URL` (`mysql://root@127.0.0.1:3306/`). A server that
//! cannot be reached fails the test with a message saying which; it is
//! never skipped. (Tests are named per backend — `sqlite::…`, `postgres::…`,
//! `mysql::…` — so a developer narrows a run with cargo's test filter.)

use sqlx::Connection;

use crate::{Backend, Database};

pub fn postgres_server() -> String {
    std::env::var("MAGNUM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".into())
}

pub fn mysql_server() -> String {
    std::env::var("MAGNUM_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/".into())
}

/// A fresh, empty database; dropped (on PostgreSQL and MariaDB) when this
/// value is dropped, even if the test panicked.
pub struct TestDb {
    pub backend: Backend,
    /// A SQLAlchemy-style URL of the database.
    pub url: String,
    name: String,
    _dir: Option<TempDir>,
    /// Made at head from the template: `migrated` needs not migrate.
    at_head: bool,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unique_name() -> String {
    format!("magnum_test_{}", uuid::Uuid::new_v4().simple())
}

fn with_database(server: &str, name: &str) -> String {
    let (scheme, rest) = server.split_once("://").unwrap_or(("", server));
    let (base, query) = rest
        .split_once('?')
        .map(|(b, q)| (b, format!("?{q}")))
        .unwrap_or((rest, String::new()));
    let host = match base.find('/') {
        Some(i) => &base[..i],
        None => base,
    };
    format!("{scheme}://{host}/{name}{query}")
}

async fn admin_exec(backend: Backend, sql: &str) -> Result<(), String> {
    match backend {
        Backend::Postgres => {
            let server = postgres_server();
            let url = server.replacen("postgresql", "postgres", 1);
            let mut c = sqlx::PgConnection::connect(&url)
                .await
                .map_err(|e| format!("PostgreSQL at {server} unreachable: {e}"))?;
            sqlx::raw_sql(sql)
                .execute(&mut c)
                .await
                .map_err(|e| e.to_string())?;
            let _ = c.close().await;
        }
        Backend::MySql => {
            let server = mysql_server();
            let mut c = sqlx::MySqlConnection::connect(&server)
                .await
                .map_err(|e| format!("MariaDB/MySQL at {server} unreachable: {e}"))?;
            sqlx::raw_sql(sql)
                .execute(&mut c)
                .await
                .map_err(|e| e.to_string())?;
            let _ = c.close().await;
        }
        Backend::Sqlite => {}
    }
    Ok(())
}

impl TestDb {
    /// Create an empty database on `backend`; panics, naming the server,
    /// when the backend cannot be reached.
    pub async fn create(backend: Backend) -> TestDb {
        let name = unique_name();
        let (url, dir) = match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(&name);
                let file = dir.join("magnum.sqlite");
                (format!("sqlite:///{}", file.display()), Some(TempDir(dir)))
            }
            Backend::Postgres => {
                admin_exec(backend, &format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                (with_database(&postgres_server(), &name), None)
            }
            Backend::MySql => {
                admin_exec(backend, &format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                (with_database(&mysql_server(), &name), None)
            }
        };
        TestDb {
            backend,
            url,
            name,
            _dir: dir,
            at_head: false,
        }
    }

    /// A database already at head (see the module's notes); `migrated`
    /// connects to it.
    pub async fn create_migrated(backend: Backend) -> TestDb {
        match backend {
            Backend::MySql => TestDb::create(backend).await,
            Backend::Postgres => {
                let name = unique_name();
                postgres_from_template(&name)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                TestDb {
                    backend,
                    url: with_database(&postgres_server(), &name),
                    name,
                    _dir: None,
                    at_head: true,
                }
            }
            Backend::Sqlite => {
                let mut t = TestDb::create(backend).await;
                let template = sqlite_template().await;
                let file = t.url.trim_start_matches("sqlite:///").to_string();
                let file = std::path::Path::new(&file);
                if let Some(dir) = file.parent() {
                    std::fs::create_dir_all(dir).expect("test database directory");
                }
                std::fs::copy(&template, file)
                    .unwrap_or_else(|e| panic!("copy {}: {e}", template.display()));
                t.at_head = true;
                t
            }
        }
    }

    /// The database's name on its server.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connect to it (not migrated).
    pub async fn connect(&self) -> Database {
        Database::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to test database {}: {e}", self.url))
    }

    /// Connect and migrate to head (made at head: connect).
    pub async fn migrated(&self) -> Database {
        let db = self.connect().await;
        if self.at_head {
            return db;
        }
        db.migrate()
            .await
            .unwrap_or_else(|e| panic!("migration failed on {}: {e}", self.backend));
        db
    }
}

/// The template's name: a hash of the statements a migration runs.
fn template_name(backend: Backend) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    crate::migrate::head_ddl(backend).hash(&mut h);
    format!("magnum_template_{:016x}", h.finish())
}

/// Create PostgreSQL database `name` from the template, making the
/// template first when there is none (under an advisory lock, so that
/// concurrent test processes make it once and never copy it half made).
async fn postgres_from_template(name: &str) -> Result<(), String> {
    const LOCK: i64 = 0x6d61_676e_756d; // "magnum"
    let server = postgres_server();
    let url = server.replacen("postgresql", "postgres", 1);
    let mut c = sqlx::PgConnection::connect(&url)
        .await
        .map_err(|e| format!("PostgreSQL at {server} unreachable: {e}"))?;
    let template = template_name(Backend::Postgres);
    let sql = |e: sqlx::Error| e.to_string();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK)
        .execute(&mut c)
        .await
        .map_err(sql)?;
    let made = async {
        let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(&template)
            .fetch_optional(&mut c)
            .await
            .map_err(sql)?;
        if exists.is_none() {
            // Made under another name and renamed once migrated: a
            // template by its name is always whole.
            let making = format!("{template}_making");
            for ddl in [
                format!("DROP DATABASE IF EXISTS {making} WITH (FORCE)"),
                format!("CREATE DATABASE {making}"),
            ] {
                sqlx::raw_sql(&ddl).execute(&mut c).await.map_err(sql)?;
            }
            let db = Database::connect(&with_database(&server, &making))
                .await
                .map_err(|e| e.to_string())?;
            db.migrate()
                .await
                .map_err(|e| format!("migrating the template {making}: {e}"))?;
            db.close().await;
            // A closed pool's connections may still be on their way out.
            let mut tries = 0;
            loop {
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                )
                .bind(&making)
                .execute(&mut c)
                .await
                .map_err(sql)?;
                let renamed =
                    sqlx::raw_sql(&format!("ALTER DATABASE {making} RENAME TO {template}"))
                        .execute(&mut c)
                        .await;
                match renamed {
                    Ok(_) => break,
                    Err(e) if tries < 50 => {
                        tries += 1;
                        tracing::debug!("renaming the template: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        sqlx::raw_sql(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .execute(&mut c)
            .await
            .map_err(sql)?;
        Ok::<(), String>(())
    }
    .await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK)
        .execute(&mut c)
        .await;
    let _ = c.close().await;
    made
}

/// The migrated SQLite file test databases are copied from, under the
/// temporary directory; made by one process (a lock file), then renamed
/// into place whole.
async fn sqlite_template() -> std::path::PathBuf {
    use std::time::{Duration, Instant};
    let tmp = std::env::temp_dir();
    let name = template_name(Backend::Sqlite);
    let file = tmp.join(format!("{name}.sqlite"));
    let lock = tmp.join(format!("{name}.lock"));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if file.exists() {
            return file;
        }
        let stale = std::fs::metadata(&lock)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(60));
        if stale {
            let _ = std::fs::remove_file(&lock);
        }
        if std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
            .is_ok()
        {
            let dir = tmp.join(format!("{name}-making-{}", std::process::id()));
            let making = dir.join("magnum.sqlite");
            let made = async {
                let db = Database::connect(&format!("sqlite:///{}", making.display()))
                    .await
                    .map_err(|e| e.to_string())?;
                db.migrate().await.map_err(|e| e.to_string())?;
                // One file, whatever the write-ahead log still holds.
                let whole = dir.join("whole.sqlite");
                db.execute_raw(&format!("VACUUM INTO '{}'", whole.display()))
                    .await
                    .map_err(|e| e.to_string())?;
                db.close().await;
                std::fs::rename(&whole, &file).map_err(|e| e.to_string())
            }
            .await;
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_file(&lock);
            if let Err(e) = made {
                panic!("making the SQLite template {}: {e}", file.display());
            }
            return file;
        }
        assert!(
            Instant::now() < deadline,
            "no SQLite template {} after 120 s (lock {})",
            file.display(),
            lock.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.backend == Backend::Sqlite {
            return;
        }
        let backend = self.backend;
        let sql = match backend {
            Backend::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            _ => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        // Drop runs inside the test's runtime: do the work on a thread of its own.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(admin_exec(backend, &sql));
            }
        })
        .join();
    }
}

/// Insert a bare cluster row built from a template, so tests can see what
/// templates in use refuse (the cluster API arrives separately).
pub async fn insert_cluster_row(
    db: &Database,
    cluster_uuid: &str,
    template_uuid: &str,
    project: &str,
) {
    use sea_query::{Alias, Query};
    let q = Query::insert()
        .into_table(Alias::new("cluster"))
        .columns(
            [
                "uuid",
                "name",
                "cluster_template_id",
                "project_id",
                "status",
            ]
            .map(Alias::new),
        )
        .values_panic([
            cluster_uuid.into(),
            "c1".into(),
            template_uuid.into(),
            project.into(),
            "CREATE_COMPLETE".into(),
        ])
        .to_owned();
    db.execute(&q).await.expect("insert cluster row");
}

/// Pretend the service (host, binary) was last seen `seconds` ago.
pub async fn age_service(db: &Database, host: &str, binary: &str, seconds: i64) {
    use sea_query::{Alias, Expr, Query};
    let then = crate::now() - chrono::Duration::seconds(seconds);
    let q = Query::update()
        .table(Alias::new("magnum_service"))
        .value(Alias::new("last_seen_up"), then)
        .value(Alias::new("updated_at"), then)
        .and_where(Expr::col(Alias::new("host")).eq(host))
        .and_where(Expr::col(Alias::new("binary")).eq(binary))
        .to_owned();
    db.execute(&q).await.expect("age service row");
}

/// Pretend the cluster was created `seconds` ago.
pub async fn age_cluster(db: &Database, uuid: &str, seconds: i64) {
    use sea_query::{Alias, Expr, Query};
    let then = crate::now() - chrono::Duration::seconds(seconds);
    let q = Query::update()
        .table(Alias::new("cluster"))
        .value(Alias::new("created_at"), then)
        .and_where(Expr::col(Alias::new("uuid")).eq(uuid))
        .to_owned();
    db.execute(&q).await.expect("age cluster row");
}

/// How many rows `table` holds.
pub async fn count_rows(db: &Database, table: &str) -> i64 {
    use sea_query::{Alias, Expr, Query};
    let q = Query::select()
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .from(Alias::new(table))
        .to_owned();
    db.count(&q).await.expect("count rows")
}

/// Every value of a text column of `table` (nulls left out).
pub async fn column_values(db: &Database, table: &str, column: &str) -> Vec<String> {
    use sea_query::{Alias, Query};
    let q = Query::select()
        .column(Alias::new(column))
        .from(Alias::new(table))
        .to_owned();
    let rows: Vec<(Option<String>,)> = db.fetch_all(&q).await.expect("read column");
    rows.into_iter().filter_map(|(v,)| v).collect()
}
