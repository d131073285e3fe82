//! A sweep runs the operations a dead conductor left behind concurrently,
//! within its bound: eight creates whose driver call blocks for 2 s are
//! all taken over together, not one after another.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::time::{Duration, Instant};

use magnum_core::objects::status::*;
use magnum_db::testing::TestDb;
use magnum_db::Backend;
use serde_json::json;
use support::*;

/// The most calls in flight at one moment.
fn most_at_once(calls: &[fake_driver::SlowCall]) -> usize {
    calls
        .iter()
        .map(|c| {
            calls
                .iter()
                .filter(|o| o.start <= c.start && c.start < o.end)
                .count()
        })
        .max()
        .unwrap_or(0)
}

async fn orphans_are_taken_over_together(backend: Backend, bound: usize) {
    let t = TestDb::create_migrated(backend).await;
    let db = t.migrated().await;
    let dir = cloud_dir("sweep");
    let cloud = FakeDriver::new(dir.clone());
    let template = template(&db).await;
    const N: usize = 8;
    let mut ids = Vec::new();
    for _ in 0..N {
        let (c, op) = queued_create(
            &db,
            &template,
            json!({"fake_call_seconds": "2", "fake_seconds": "600"}),
        )
        .await;
        // Claimed by a conductor that died: its lease has run out.
        let claimed = db.operation_claim(&op.uuid, "dead", -5).await.unwrap();
        assert!(claimed.is_some());
        ids.push(c.uuid);
    }
    let conf = format!("[conductor]\nsweep_concurrency = {bound}\n");
    let survivor = conductor(&db, &cloud, "alive", &conf);
    let started = Instant::now();
    survivor.tick().await;
    let took = started.elapsed();

    for id in &ids {
        let c = db.cluster_get(id).await.unwrap().unwrap();
        assert_eq!(c.stack_id.as_deref(), Some(format!("fake-{id}").as_str()));
        assert_eq!(cloud.history(id), ["create"], "cluster {id} built once");
        assert!(db.operations_of(id).await.unwrap().is_empty());
        assert_eq!(c.status.as_deref(), Some(CREATE_IN_PROGRESS));
    }
    let calls = cloud.slow_calls();
    assert_eq!(calls.len(), N, "{calls:?}");
    let overlap = most_at_once(&calls);
    assert!(overlap <= bound, "{overlap} calls at once, bound {bound}");
    // Generous for a loaded machine: at least half the bound in flight
    // together, and well under the 16 s one after another would take.
    assert!(
        overlap * 2 >= bound.min(N),
        "{overlap} calls at once: {calls:?}"
    );
    let serial = Duration::from_secs(2 * N as u64);
    assert!(took < serial * 3 / 4, "took {took:?}");
    db.close().await;
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_orphans_are_taken_over_together() {
    orphans_are_taken_over_together(Backend::Sqlite, 16).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_orphans_are_taken_over_together() {
    orphans_are_taken_over_together(Backend::Postgres, 16).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_sweep_keeps_its_bound() {
    orphans_are_taken_over_together(Backend::Postgres, 3).await
}
