//! The live conductors share the status sync: with three of them, each
//! cluster in progress is asked of its driver by exactly one conductor per
//! round; a conductor whose heartbeat is missing syncs every cluster, and
//! a dead one's part is taken by the others.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::collections::HashMap;
use std::time::Duration;

use magnum_core::objects::status::*;
use magnum_db::testing::TestDb;
use magnum_db::{Backend, Database};
use serde_json::json;
use support::*;

/// Status calls per cluster, and per conductor, since `from` calls.
fn counts(cloud: &FakeDriver, from: usize) -> (HashMap<String, usize>, HashMap<String, usize>) {
    let mut per_cluster = HashMap::new();
    let mut per_host = HashMap::new();
    for call in cloud.status_calls().into_iter().skip(from) {
        *per_cluster.entry(call.cluster).or_default() += 1;
        *per_host.entry(call.tag).or_default() += 1;
    }
    (per_cluster, per_host)
}

async fn beat(db: &Database, hosts: &[&str]) {
    for h in hosts {
        db.service_heartbeat(h, "magnum-conductor").await.unwrap();
    }
}

async fn three_conductors_ask_each_cluster_once(backend: Backend) {
    let t = TestDb::create_migrated(backend).await;
    let db = t.migrated().await;
    let dir = cloud_dir("sync-share");
    let cloud = FakeDriver::new(dir.clone());
    let template = template(&db).await;
    const N: usize = 60;
    let mut ids = Vec::new();
    for _ in 0..N {
        let c = building(&db, &dir, &template, json!({"fake_seconds": "6"})).await;
        ids.push(c.uuid);
    }
    // Conductors count as down two seconds after their last heartbeat.
    let conf = "[DEFAULT]\nservice_down_time = 2\n";
    let hosts = ["c1", "c2", "c3"];
    let conductors: Vec<_> = hosts
        .iter()
        .map(|h| conductor(&db, &cloud, h, conf))
        .collect();
    // c0 beat once and died: it is no longer among the live ones.
    beat(&db, &["c0"]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while db
        .hosts_up("magnum-conductor", 2)
        .await
        .unwrap()
        .iter()
        .any(|h| h == "c0")
    {
        assert!(std::time::Instant::now() < deadline, "c0 still up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Round one: every cluster is asked exactly once, and each conductor
    // takes part.
    // The builds take six seconds from here.
    let builds_done = tokio::time::Instant::now() + Duration::from_millis(6500);
    restart_stacks(&dir, &ids);
    beat(&db, &hosts).await;
    let (a, b, c) = (&conductors[0], &conductors[1], &conductors[2]);
    tokio::join!(a.sync_status(), b.sync_status(), c.sync_status());
    let (per_cluster, per_host) = counts(&cloud, 0);
    for id in &ids {
        assert_eq!(
            per_cluster.get(id),
            Some(&1),
            "cluster {id}: {per_cluster:?}"
        );
    }
    assert_eq!(per_cluster.len(), N);
    for h in hosts {
        assert!(
            per_host.get(h).copied().unwrap_or(0) > 0,
            "{h}: {per_host:?}"
        );
    }
    // Still building; the nodes' addresses are recorded once.
    let before: Vec<_> = {
        let mut v = Vec::new();
        for id in &ids {
            let c = db.cluster_get(id).await.unwrap().unwrap();
            assert_eq!(c.status.as_deref(), Some(CREATE_IN_PROGRESS));
            assert_eq!(c.api_address.as_deref(), Some("https://10.0.0.1:6443"));
            v.push(c.updated_at);
        }
        v
    };

    // A conductor that has no heartbeat yet syncs every cluster. Nothing
    // changed since round one, so nothing is written.
    let newcomer = conductor(&db, &cloud, "c4", conf);
    let seen = cloud.status_calls().len();
    newcomer.sync_status().await;
    let (per_cluster, per_host) = counts(&cloud, seen);
    assert_eq!(per_cluster.len(), N);
    assert_eq!(per_host.get("c4"), Some(&N));
    for (id, was) in ids.iter().zip(&before) {
        let c = db.cluster_get(id).await.unwrap().unwrap();
        assert_eq!(
            &c.updated_at, was,
            "cluster {id} rewritten without a change"
        );
    }

    // Once the builds are done, one round completes every cluster, each
    // asked once.
    tokio::time::sleep_until(builds_done).await;
    beat(&db, &hosts).await;
    let seen = cloud.status_calls().len();
    tokio::join!(a.sync_status(), b.sync_status(), c.sync_status());
    let (per_cluster, _) = counts(&cloud, seen);
    for id in &ids {
        assert_eq!(per_cluster.get(id), Some(&1), "cluster {id}");
        let c = db.cluster_get(id).await.unwrap().unwrap();
        assert_eq!(c.status.as_deref(), Some(CREATE_COMPLETE), "cluster {id}");
        for ng in db.nodegroups_of(id).await.unwrap() {
            assert_eq!(ng.status.as_deref(), Some(CREATE_COMPLETE));
            assert!(ng.node_addresses.is_some_and(|a| !a.is_empty()));
        }
    }
    db.close().await;
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_three_conductors_ask_each_cluster_once() {
    three_conductors_ask_each_cluster_once(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_three_conductors_ask_each_cluster_once() {
    three_conductors_ask_each_cluster_once(Backend::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_three_conductors_ask_each_cluster_once() {
    three_conductors_ask_each_cluster_once(Backend::MySql).await
}
