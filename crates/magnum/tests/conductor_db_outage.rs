//! Operations survive database outages exactly once. An API and two
//! conductors share a database (PostgreSQL, then MariaDB) and RabbitMQ;
//! the conductors reach the database through a relay this test cuts while
//! creates, updates and deletes are in flight (TLS on: certificates in
//! upstream's x509keypair table), a conductor is killed at a random
//! moment of the create burst, and another after the cloud started a
//! build whose answer had not come back. Whatever the timing: every operation
//! finishes (nothing lost, nothing falsely failed, nothing stuck), no
//! cluster's driver calls ever overlap (no attempt runs twice at once),
//! each stack is built once, no certificate row is left unreferenced, and
//! no stack is left that no cluster tracks.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use magnum_db::testing::{column_values, count_rows, TestDb};
use magnum_db::Backend;
use serde_json::{json, Value};
use support::relay::Relay;
use support::*;

const CLUSTERS: usize = 6;
const FLAPPING: Duration = Duration::from_secs(14);

/// Each driver call that blocked, by cluster: (action, start, end).
fn calls(cloud: &Path) -> HashMap<String, Vec<(String, f64, f64)>> {
    let mut out: HashMap<String, Vec<(String, f64, f64)>> = HashMap::new();
    let text = std::fs::read_to_string(cloud.join("calls.log")).unwrap_or_default();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [action, cluster, start, end] = f.as_slice() {
            out.entry(cluster.to_string()).or_default().push((
                action.to_string(),
                start.parse().unwrap(),
                end.parse().unwrap(),
            ));
        }
    }
    out
}

fn history(cloud: &Path, uuid: &str) -> Vec<String> {
    std::fs::read_to_string(cloud.join(format!("fake-{uuid}.log")))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// No two driver calls of one cluster overlapped in time.
fn assert_one_at_a_time(cloud: &Path) {
    for (cluster, mut c) in calls(cloud) {
        c.sort_by(|a, b| a.1.total_cmp(&b.1));
        for w in c.windows(2) {
            assert!(
                w[1].1 >= w[0].2,
                "cluster {cluster}: {} and {} ran at once: {c:?}",
                w[0].0,
                w[1].0
            );
        }
    }
}

/// Every certificate row is one a cluster names, and every name has its row.
async fn assert_no_orphan_keys(db: &magnum_db::Database, clusters: &[String]) {
    let rows: HashSet<String> = column_values(db, "x509keypair", "uuid")
        .await
        .into_iter()
        .collect();
    let mut named = HashSet::new();
    for c in clusters {
        if let Some(c) = db.cluster_get(c).await.unwrap() {
            for r in [
                c.ca_cert_ref,
                c.etcd_ca_cert_ref,
                c.front_proxy_ca_cert_ref,
                c.magnum_cert_ref,
            ]
            .into_iter()
            .flatten()
            {
                named.insert(r);
            }
        }
    }
    assert_eq!(
        rows, named,
        "certificate rows and the clusters' references differ"
    );
}

/// A small deterministic generator (the seed is printed, so a failing
/// run can be replayed).
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below.max(1)
    }
}

/// Cut and restore the relay at random for `total` (cuts of 0.5 to 3 s,
/// openings of 0.3 to 1.5 s), so statements fail in every stage of the
/// operations in flight; then leave it open.
fn flap(relay: &Relay, rng: &mut Rng, total: Duration) -> usize {
    let end = Instant::now() + total;
    let mut cuts = 0;
    while Instant::now() < end {
        relay.down();
        cuts += 1;
        std::thread::sleep(Duration::from_millis(500 + rng.next(2500)));
        relay.up();
        std::thread::sleep(Duration::from_millis(300 + rng.next(1200)));
    }
    cuts
}

async fn survives(backend: Backend) {
    let testdb = TestDb::create_migrated(backend).await;
    let db = testdb.migrated().await;
    let (server, port) = match backend {
        Backend::Postgres => ("127.0.0.1:5432", "5432"),
        _ => ("127.0.0.1:3306", "3306"),
    };
    let relay = Relay::start(server);
    let relayed = testdb.url.replace(
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{}", relay.port),
    );
    assert_ne!(relayed, testdb.url);
    let dir = tempdir("db-outage");
    let cloud = dir.join("cloud");
    let id = uuid_str();
    let common = format!(
        "[DEFAULT]\nauth_strategy = noauth\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\n\
         control_exchange = magnum-outage-{id}\nreport_interval = 1\nservice_down_time = 4\n\
         [certificates]\ncert_manager_type = x509keypair\n\
         [conductor]\ntopic = magnum-conductor-outage\noperation_lease = 3\n\
         operation_grace = 2\nsync_interval = 1\noperation_retry_delay = 1\n[api]\nport = 0\n"
    );
    let api_conf = write_conf(
        &dir,
        &format!("{common}[database]\nconnection = {}\n", testdb.url),
    );
    let env = [("MAGNUM_FAKE_CLOUD", cloud.to_str().unwrap())];
    let api = start_env(
        &["--config-file", api_conf.to_str().unwrap(), "api"],
        &env,
        "listening on ",
    );
    let conductor = |n: usize| {
        let conf = dir.join(format!("c{n}.conf"));
        std::fs::write(
            &conf,
            format!("{common}[database]\nconnection = {relayed}\n[DEFAULT]\nhost = c{n}\n"),
        )
        .unwrap();
        start_env(
            &["--config-file", conf.to_str().unwrap(), "conductor"],
            &env,
            "conductor serving RPC topic",
        )
    };
    let mut conductors = vec![Some(conductor(1)), Some(conductor(2))];
    let url = api.url.clone();
    created(
        &url,
        "/v1/clustertemplates",
        json!({"name": "t", "coe": "kubernetes", "image_id": "fcos", "driver": "fake",
               "labels": {"fake_seconds": "2", "fake_call_seconds": "2"}}),
    );

    // Creates (certificates, then the driver) in flight when the database
    // goes away for the conductors, and a conductor killed meanwhile.
    let ids: Vec<String> = (0..CLUSTERS)
        .map(|i| {
            created(
                &url,
                "/v1/clusters",
                json!({"name": format!("c{i}"), "cluster_template_id": "t"}),
            )["uuid"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let seed = std::env::var("OUTAGE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64 * 2654435761 + backend as u64 + 1);
    eprintln!("{backend}: outage seed {seed} (OUTAGE_SEED replays it)");
    let mut rng = Rng(seed);
    // A conductor dies at a random moment of the outages, and comes back.
    let kill_at = Duration::from_millis(500 + rng.next(FLAPPING.as_millis() as u64 - 500));
    let mut cuts = 0;
    std::thread::scope(|s| {
        let flapping = s.spawn(|| flap(&relay, &mut Rng(seed ^ 0x9e37), FLAPPING));
        std::thread::sleep(kill_at);
        drop(conductors[0].take());
        cuts = flapping.join().unwrap();
    });
    conductors[0] = Some(conductor(1));
    eprintln!("{backend}: {cuts} cuts during the creates, conductor c1 killed after {kill_at:?}");
    for c in &ids {
        let v = wait_for(&url, &format!("/v1/clusters/{c}"), 120, |_, v| {
            v["status"] != "CREATE_IN_PROGRESS"
        });
        assert_eq!(v["status"], "CREATE_COMPLETE", "{v}");
        assert_eq!(v["stack_id"], format!("fake-{c}"), "{v}");
        let built = history(&cloud, c).iter().filter(|a| *a == "create").count();
        assert_eq!(built, 1, "cluster {c}: {:?}", history(&cloud, c));
    }
    assert_one_at_a_time(&cloud);
    assert_eq!(count_rows(&db, "x509keypair").await, 4 * CLUSTERS as i64);
    assert_no_orphan_keys(&db, &ids).await;
    wait_empty_queue(&db).await;

    // The conductor dies after the cloud started building, before its
    // answer came back (and so before the stack is recorded): the next
    // attempt adopts the stack (by name, as Heat's driver does) rather
    // than building a second one.
    let late = created(
        &url,
        "/v1/clusters",
        json!({"name": "late", "cluster_template_id": "t",
               "labels": {"fake_seconds": "2", "fake_after_seconds": "30"}}),
    )["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !history(&cloud, &late).contains(&"create".to_string()) {
        assert!(
            Instant::now() < deadline,
            "the create never reached the cloud"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let owner = db.operations_of(&late).await.unwrap()[0]
        .owner
        .clone()
        .unwrap();
    let host = owner.split_whitespace().next().unwrap();
    let n: usize = host.trim_start_matches('c').parse().unwrap();
    drop(conductors[n - 1].take());
    conductors[n - 1] = Some(conductor(n));
    let v = wait_for(&url, &format!("/v1/clusters/{late}"), 90, |_, v| {
        v["status"] != "CREATE_IN_PROGRESS"
    });
    assert_eq!(v["status"], "CREATE_COMPLETE", "{v}");
    let seen = history(&cloud, &late);
    assert_eq!(
        seen.iter().filter(|a| *a == "create").count(),
        1,
        "{seen:?}"
    );
    assert!(seen.contains(&"adopt".to_string()), "{seen:?}");
    let mut ids = ids;
    ids.push(late);
    assert_no_orphan_keys(&db, &ids).await;
    wait_empty_queue(&db).await;

    // Updates in flight during an outage.
    for c in &ids {
        let (s, b) = http(
            &url,
            "PATCH",
            &format!("/v1/clusters/{c}"),
            Some(r#"[{"op": "replace", "path": "/node_count", "value": 2}]"#),
        );
        assert_eq!(s, 202, "{b}");
    }
    let cuts = flap(&relay, &mut rng, FLAPPING);
    eprintln!("{backend}: {cuts} cuts during the updates");
    for c in &ids {
        let v = wait_for(&url, &format!("/v1/clusters/{c}"), 120, |_, v| {
            v["status"] != "UPDATE_IN_PROGRESS"
        });
        assert_eq!(v["status"], "UPDATE_COMPLETE", "{v}");
        assert_eq!(v["node_count"], 2, "{v}");
    }
    assert_one_at_a_time(&cloud);
    wait_empty_queue(&db).await;

    // Deletes in flight during an outage: everything goes, keys included.
    for c in &ids {
        let (s, b) = http(&url, "DELETE", &format!("/v1/clusters/{c}"), None);
        assert_eq!(s, 204, "{b}");
    }
    let cuts = flap(&relay, &mut rng, FLAPPING);
    eprintln!("{backend}: {cuts} cuts during the deletes");
    for c in &ids {
        wait_for(&url, &format!("/v1/clusters/{c}"), 120, |s, _| s == 404);
        assert_eq!(
            history(&cloud, c).last().map(String::as_str),
            Some("delete"),
            "cluster {c}"
        );
    }
    assert_one_at_a_time(&cloud);
    wait_empty_queue(&db).await;
    assert_eq!(count_rows(&db, "x509keypair").await, 0);
    assert_eq!(count_rows(&db, "cluster").await, 0);
    assert_eq!(count_rows(&db, "nodegroup").await, 0);
    // No stack is left that no cluster tracks: each was deleted.
    for entry in std::fs::read_dir(&cloud).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with(".json") {
            let stack: Value =
                serde_json::from_str(&std::fs::read_to_string(entry.path()).unwrap()).unwrap();
            assert_eq!(stack["action"], "delete", "{name}: {stack}");
        }
    }
    let logs: String = conductors
        .iter()
        .flatten()
        .map(|c| c.logs())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!logs.contains("BEGIN PRIVATE KEY") && !logs.contains("ENCRYPTED PRIVATE KEY"));
    eprintln!(
        "{backend}: {} operations kept for a retry, {} attempts stopped on a lost lease",
        logs.matches("; again in ").count(),
        logs.matches("lease lost; this attempt stopped").count()
    );
    drop(conductors);
    drop(api);
    db.close().await;
    std::fs::remove_dir_all(dir).ok();
}

/// The queue empties (its last operations retire once the sync is done).
async fn wait_empty_queue(db: &magnum_db::Database) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = count_rows(db, "rs_cluster_operation").await;
        if n == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{n} operations left queued");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_survive_database_outages_on_postgres() {
    survives(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_survive_database_outages_on_mariadb() {
    survives(Backend::MySql).await;
}
