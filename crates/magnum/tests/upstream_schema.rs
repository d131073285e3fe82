//! Our schema against upstream's, on a real MariaDB: upstream's own
//! `magnum-db-manage upgrade` (PyPI magnum, in the peers virtualenv) builds
//! one database, ours builds another, and their information_schema must be
//! identical. Then each side takes over the other's database. On PostgreSQL
//! and SQLite, where upstream's migrations cannot run, the same tables,
//! columns, nullability and unique constraints must exist.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::process::Command;

use support::venv;

use magnum_db::schema::TABLES;
use magnum_db::testing::{mysql_server, postgres_server, TestDb};
use magnum_db::{Backend, HEAD_REVISION};
use sqlx::{Connection, Row};

fn db_manage(venv: &std::path::Path, url: &str, args: &[&str]) -> std::process::Output {
    let tool = venv.join("bin/magnum-db-manage");
    assert!(
        tool.exists(),
        "upstream's magnum-db-manage is missing from {}: run scripts/peers.sh",
        venv.display()
    );
    let dir = std::env::temp_dir().join(format!("magnum-upstream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join(format!("{}.conf", url.rsplit('/').next().unwrap()));
    let url = url.replacen("mysql://", "mysql+pymysql://", 1);
    std::fs::write(&conf, format!("[database]\nconnection = {url}\n")).unwrap();
    Command::new(tool)
        .arg("--config-file")
        .arg(&conf)
        .args(args)
        .output()
        .unwrap()
}

type Rows = Vec<Vec<Option<String>>>;

async fn query(conn: &mut sqlx::MySqlConnection, sql: &str, schema: &str) -> Rows {
    let rows = sqlx::query(sql).bind(schema).fetch_all(conn).await.unwrap();
    rows.iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.try_get::<Option<String>, _>(i).unwrap())
                .collect()
        })
        .collect()
}

const DESCRIBE: [(&str, &str); 4] = [
    (
        "tables",
        "SELECT TABLE_NAME, TABLE_COLLATION, ENGINE FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
    ),
    (
        "columns",
        "SELECT TABLE_NAME, COLUMN_NAME, CAST(ORDINAL_POSITION AS CHAR), COLUMN_TYPE, IS_NULLABLE, \
         COLUMN_DEFAULT, CHARACTER_SET_NAME, COLLATION_NAME, EXTRA FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION",
    ),
    (
        "indexes",
        "SELECT TABLE_NAME, INDEX_NAME, CAST(NON_UNIQUE AS CHAR), CAST(SEQ_IN_INDEX AS CHAR), COLUMN_NAME \
         FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? \
         ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
    ),
    (
        "constraints",
        "SELECT TABLE_NAME, CONSTRAINT_NAME, CONSTRAINT_TYPE FROM information_schema.TABLE_CONSTRAINTS \
         WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, CONSTRAINT_NAME",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_schema_equals_upstreams_on_mariadb() {
    let venv = venv();
    let theirs = TestDb::create(Backend::MySql).await;
    let ours = TestDb::create(Backend::MySql).await;

    let out = db_manage(&venv, &theirs.url, &["upgrade"]);
    assert!(
        out.status.success(),
        "upstream's magnum-db-manage upgrade failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = ours.migrated().await;
    db.close().await;

    let mut conn = sqlx::MySqlConnection::connect(&mysql_server())
        .await
        .unwrap();
    let mut differences = Vec::new();
    for (what, sql) in DESCRIBE {
        let a = query(&mut conn, sql, theirs.name()).await;
        let mut b = query(&mut conn, sql, ours.name()).await;
        assert!(!a.is_empty(), "upstream's database has no {what}");
        // Our own tables (schema::OWN_TABLES) and our own indexes (rs_…)
        // come on top of upstream's.
        let own = |r: &Vec<Option<String>>| {
            magnum_db::schema::OWN_TABLES
                .iter()
                .any(|t| r.first() == Some(&Some(t.name.to_string())))
                || (what == "indexes"
                    && magnum_db::schema::OWN_INDEXES
                        .iter()
                        .any(|(name, ..)| r.get(1) == Some(&Some(name.to_string()))))
        };
        assert!(b.iter().any(own), "our {what} lack our own tables");
        if what == "indexes" {
            for (name, ..) in magnum_db::schema::OWN_INDEXES {
                assert!(
                    b.iter().any(|r| r.get(1) == Some(&Some(name.to_string()))),
                    "our index {name} is missing"
                );
            }
        }
        b.retain(|r| !own(r));
        for row in a.iter().filter(|r| !b.contains(r)) {
            differences.push(format!("{what}: upstream has {row:?}, we do not"));
        }
        for row in b.iter().filter(|r| !a.contains(r)) {
            differences.push(format!("{what}: we have {row:?}, upstream does not"));
        }
    }
    for name in [theirs.name(), ours.name()] {
        let rows = sqlx::query(&format!("SELECT version_num FROM `{name}`.alembic_version"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let versions: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(versions, [HEAD_REVISION], "alembic_version of {name}");
    }
    conn.close().await.unwrap();
    assert!(
        differences.is_empty(),
        "schemas differ:\n{}",
        differences.join("\n")
    );

    // Each takes over the other's database.
    let db = theirs.connect().await;
    let outcome = db.migrate().await.unwrap();
    assert!(
        outcome.applied.is_empty(),
        "upstream's head needs nothing from us: {outcome:?}"
    );
    db.check_current().await.unwrap();
    db.close().await;
    let out = db_manage(&venv, &ours.url, &["upgrade"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = db_manage(&venv, &ours.url, &["version"]);
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        shown.contains(HEAD_REVISION),
        "upstream reads our revision: {shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_is_equivalent_on_postgres_and_sqlite() {
    // PostgreSQL: information_schema.
    let pg = TestDb::create(Backend::Postgres).await;
    pg.migrated().await.close().await;
    let server = postgres_server().replacen("postgresql", "postgres", 1);
    let base = server.rsplit_once('/').map(|(b, _)| b).unwrap();
    let mut conn = sqlx::PgConnection::connect(&format!("{base}/{}", pg.name()))
        .await
        .unwrap();
    for table in TABLES {
        let cols = sqlx::query(
            "SELECT column_name::text, is_nullable::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table.name)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let got: Vec<(String, String)> = cols.iter().map(|r| (r.get(0), r.get(1))).collect();
        let want: Vec<(String, String)> = table
            .columns
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    if c.nullable { "YES" } else { "NO" }.to_string(),
                )
            })
            .collect();
        assert_eq!(got, want, "PostgreSQL columns of {}", table.name);
        for (name, _) in table.unique {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.table_constraints \
                 WHERE table_name = $1 AND constraint_name = $2 AND constraint_type = 'UNIQUE'",
            )
            .bind(table.name)
            .bind(*name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
            assert_eq!(n, 1, "PostgreSQL unique constraint {name}");
        }
    }
    conn.close().await.unwrap();

    // SQLite: table_info and the stored CREATE TABLE text.
    let lite = TestDb::create(Backend::Sqlite).await;
    lite.migrated().await.close().await;
    let path = lite.url.trim_start_matches("sqlite:///");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
        .await
        .unwrap();
    for table in TABLES {
        let cols = sqlx::query(&format!(
            "SELECT name, \"notnull\" FROM pragma_table_info('{}')",
            table.name
        ))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let got: Vec<(String, bool)> = cols
            .iter()
            .map(|r| (r.get(0), r.get::<i64, _>(1) == 1))
            .collect();
        let want: Vec<(String, bool)> = table
            .columns
            .iter()
            .map(|c| (c.name.to_string(), !c.nullable))
            .collect();
        assert_eq!(got, want, "SQLite columns of {}", table.name);
        let sql: String = sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = ?")
            .bind(table.name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        for (name, _) in table.unique {
            assert!(
                sql.contains(name),
                "SQLite unique constraint {name} in {sql}"
            );
        }
    }
    conn.close().await.unwrap();
}
