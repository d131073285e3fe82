//! `magnum api` when its database goes away, on PostgreSQL and MariaDB: the
//! database is reached through a relay the test takes down (connections
//! closed, new ones refused) and then stalls (connections half-open:
//! nothing answers, ever). Either way reads and writes answer 503 in
//! upstream's error body within a bound set by `[database] pool_timeout`
//! and `statement_timeout`, naming the database and nothing secret; once
//! the relay is back the same process serves again, and what it accepted
//! before the outage is still there. Below the API, a transaction whose
//! connection stalls gives that connection up.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::time::{Duration, Instant};

use magnum_db::testing::TestDb;
use magnum_db::{Backend, Database, DbError, PoolSettings};
use serde_json::{json, Value};
use support::relay::Relay;
use support::*;

/// The bound the test holds every 503 to, with `pool_timeout` and
/// `statement_timeout` at 2 s: at most one of the two waits, and slack for
/// a busy machine.
const BOUND: Duration = Duration::from_secs(5);

/// A password the database never asks for (PostgreSQL trusts local
/// connections here) that must never be shown.
const PASSWORD: &str = "hunter2-never-shown";

/// The test database's URL through a relay on `port`, and where the relay
/// must go; PostgreSQL's URL gets [`PASSWORD`] when it has no password.
fn through_relay(url: &str, backend: Backend) -> (String, Box<dyn Fn(u16) -> String>) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((user, hostport)) => (Some(user.to_string()), hostport.to_string()),
        None => (None, authority.to_string()),
    };
    let user = match (user, backend) {
        (Some(u), Backend::Postgres) if !u.contains(':') => Some(format!("{u}:{PASSWORD}")),
        (u, _) => u,
    };
    let (scheme, path) = (scheme.to_string(), path.to_string());
    let make = move |port: u16| {
        let user = user.as_ref().map(|u| format!("{u}@")).unwrap_or_default();
        format!("{scheme}://{user}127.0.0.1:{port}/{path}")
    };
    (hostport, Box::new(make))
}

/// A request and how long its answer took: (status, body, elapsed).
fn timed(url: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value, Duration) {
    let started = Instant::now();
    let body = body.map(|b| b.to_string());
    let (status, text) = http(url, method, path, body.as_deref());
    let elapsed = started.elapsed();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value, elapsed)
}

/// The answer is upstream's error body for 503, naming the database.
fn assert_unreachable(what: &str, (status, body, elapsed): (u16, Value, Duration)) {
    assert_eq!(status, 503, "{what}: {body}");
    assert!(elapsed < BOUND, "{what}: 503 only after {elapsed:?}");
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{what}: {body}");
    let e = &errors[0];
    assert_eq!(e["status"], 503, "{what}: {body}");
    assert_eq!(e["code"], "server", "{what}: {body}");
    assert_eq!(e["title"], "The database is unreachable", "{what}: {body}");
    assert_eq!(
        e["detail"], "The database is unreachable. Please try again later.",
        "{what}: {body}"
    );
    assert_eq!(e["links"], json!([]), "{what}: {body}");
    assert!(e["request_id"].is_string(), "{what}: {body}");
    assert!(!body.to_string().contains(PASSWORD), "{what}: {body}");
}

/// Poll `path` until it answers 200 (the API recovering by itself).
fn recovers(url: &str, path: &str) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body, _) = timed(url, "GET", path, None);
        if status == 200 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{path} still {status} after the database came back: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn cluster_names(url: &str) -> Vec<String> {
    let (status, body, _) = timed(url, "GET", "/v1/clusters", None);
    assert_eq!(status, 200, "{body}");
    let mut names: Vec<String> = body["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn create_cluster(url: &str, name: &str) -> (u16, Value, Duration) {
    timed(
        url,
        "POST",
        "/v1/clusters",
        Some(json!({"name": name, "cluster_template_id": "t"})),
    )
}

async fn outages_answer_503_and_pass(backend: Backend) {
    let testdb = TestDb::create_migrated(backend).await;
    testdb.migrated().await.close().await;
    let (target, via) = through_relay(&testdb.url, backend);
    let relay = Relay::start(&target);
    let dir = tempdir("db-outage");
    // One connection: a connection the pool loses track of (one left
    // waiting on a half-open connection, say) would leave none at all, and
    // the API would not recover.
    let conf = write_conf(
        &dir,
        &format!(
            "[DEFAULT]\nauth_strategy = noauth\n\
             [database]\nconnection = {}\nmax_pool_size = 1\n\
             pool_timeout = 2\nstatement_timeout = 2\n\
             [api]\nport = 0\n",
            via(relay.port)
        ),
    );
    let server = start(&["--config-file", conf.to_str().unwrap(), "api"]);
    let url = server.url.clone();
    let (s, b, _) = timed(
        &url,
        "POST",
        "/v1/clustertemplates",
        Some(json!({"name": "t", "coe": "kubernetes", "image_id": "i"})),
    );
    assert_eq!(s, 201, "{b}");
    let (s, b, _) = create_cluster(&url, "before");
    assert_eq!(s, 202, "{b}");
    let uuid = b["uuid"].as_str().unwrap().to_string();
    let show = format!("/v1/clusters/{uuid}");
    // Let the pool take back the connections of those answers.
    std::thread::sleep(Duration::from_millis(300));

    // The database goes away: connections closed, new ones refused.
    relay.down();
    let gone = timed(&url, "GET", &show, None);
    eprintln!("{backend} down: GET {} after {:?}", gone.0, gone.2);
    assert_unreachable("GET while down", gone);
    let post = create_cluster(&url, "while-down");
    eprintln!("{backend} down: POST {} after {:?}", post.0, post.2);
    assert_unreachable("POST while down", post);
    // The pool's connection was closed under it; new ones are refused
    // until pool_timeout.
    let mut longest = Duration::ZERO;
    for _ in 0..2 {
        let again = timed(&url, "GET", "/v1/clusters", None);
        longest = longest.max(again.2);
        assert_unreachable("GET again while down", again);
    }
    eprintln!("{backend} down: refused connections, 503 after {longest:?}");
    assert!(longest >= Duration::from_millis(1500), "{longest:?}");
    relay.up();
    let back = recovers(&url, &show);
    eprintln!("{backend} up again: served after {back:?}");
    assert_eq!(cluster_names(&url), ["before"]);

    // Half-open: every connection, old and new, hears nothing more.
    std::thread::sleep(Duration::from_millis(300));
    relay.stall();
    let list = timed(&url, "GET", "/v1/clusters", None);
    eprintln!("{backend} stalled: GET {} after {:?}", list.0, list.2);
    assert_unreachable("GET while stalled", list);
    let post = create_cluster(&url, "while-stalled");
    eprintln!("{backend} stalled: POST {} after {:?}", post.0, post.2);
    assert_unreachable("POST while stalled", post);
    let again = timed(&url, "GET", &show, None);
    eprintln!("{backend} stalled: GET {} after {:?}", again.0, again.2);
    assert_unreachable("GET again while stalled", again);
    // The stalled connections stay stalled: the pool must do without them.
    relay.up();
    let back = recovers(&url, &show);
    eprintln!("{backend} relayed again: served after {back:?}");
    let (s, b, _) = create_cluster(&url, "after");
    assert_eq!(s, 202, "{b}");
    assert_eq!(cluster_names(&url), ["after", "before"]);

    // The cause is logged (without the password); the process never restarted.
    let logs = server.logs();
    assert!(logs.contains("the database cannot be reached"), "{logs}");
    assert!(!logs.contains(PASSWORD), "{logs}");
    let mut server = server;
    assert!(server.child.try_wait().unwrap().is_none());
    drop(server);
    drop(relay);
    std::fs::remove_dir_all(dir).ok();
}

/// A transaction whose connection stalls gives that connection up within
/// the statement bound, instead of handing it back to the pool (where it
/// would wait for an answer that never comes): on a one-connection pool the
/// next statement, once the relay is back, finds a fresh connection.
async fn a_stalled_transaction_gives_its_connection_up(backend: Backend) {
    let testdb = TestDb::create_migrated(backend).await;
    testdb.migrated().await.close().await;
    let (target, via) = through_relay(&testdb.url, backend);
    let relay = Relay::start(&target);
    let settings = PoolSettings {
        max_connections: 1,
        acquire_timeout: Duration::from_secs(2),
        statement_timeout: Some(Duration::from_secs(1)),
    };
    let db = Database::connect_with(&via(relay.port), settings)
        .await
        .unwrap();
    let uuid = "c3333333-3333-3333-3333-333333333333";
    // A transaction (delete node groups, then the cluster) on a healthy link.
    assert!(!db.cluster_destroy(uuid, &[]).await.unwrap());
    std::thread::sleep(Duration::from_millis(300));
    relay.stall();
    let started = Instant::now();
    let failed = db.cluster_destroy(uuid, &[]).await;
    let elapsed = started.elapsed();
    eprintln!("{backend}: stalled transaction failed after {elapsed:?}");
    assert!(matches!(failed, Err(DbError::Unavailable(_))), "{failed:?}");
    assert!(elapsed < BOUND, "{elapsed:?}");
    relay.up();
    let started = Instant::now();
    loop {
        match db.cluster_destroy(uuid, &[]).await {
            Ok(gone) => break assert!(!gone),
            Err(e) => assert!(
                started.elapsed() < Duration::from_secs(10),
                "still failing after the relay came back: {e}"
            ),
        }
    }
    eprintln!(
        "{backend}: next transaction done after {:?}",
        started.elapsed()
    );
    db.close().await;
    drop(relay);
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outages_answer_503_and_pass() {
        super::outages_answer_503_and_pass(magnum_db::Backend::Postgres).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_transaction_gives_its_connection_up() {
        super::a_stalled_transaction_gives_its_connection_up(magnum_db::Backend::Postgres).await
    }
}

mod mysql {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outages_answer_503_and_pass() {
        super::outages_answer_503_and_pass(magnum_db::Backend::MySql).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_transaction_gives_its_connection_up() {
        super::a_stalled_transaction_gives_its_connection_up(magnum_db::Backend::MySql).await
    }
}
