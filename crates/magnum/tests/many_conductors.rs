//! Many conductors at once, on PostgreSQL and RabbitMQ: an API process and
//! three conductor processes share one database and one bus. Every
//! operation runs on exactly one conductor, and when the conductor running
//! an operation is killed mid-way, another one finishes it in bounded time.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use magnum_db::testing::TestDb;
use magnum_db::Backend;
use serde_json::json;
use support::*;

fn history(cloud: &Path, uuid: &str) -> Vec<String> {
    std::fs::read_to_string(cloud.join(format!("fake-{uuid}.log")))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_conductors_share_the_work_and_survive_a_kill() {
    let testdb = TestDb::create_migrated(Backend::Postgres).await;
    let db = testdb.migrated().await;
    let dir = tempdir("many-conductors");
    let cloud = dir.join("cloud");
    let id = uuid_str();
    let base = write_conf(
        &dir,
        &format!(
            "[DEFAULT]\nauth_strategy = noauth\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\n\
             control_exchange = magnum-many-{id}\nreport_interval = 1\nservice_down_time = 4\n\
             [database]\nconnection = {}\n\
             [conductor]\ntopic = magnum-conductor-many\noperation_lease = 3\n\
             operation_grace = 2\nsync_interval = 1\n[api]\nport = 0\n",
            testdb.url
        ),
    );
    let base = base.to_str().unwrap().to_string();
    let env = [("MAGNUM_FAKE_CLOUD", cloud.to_str().unwrap())];
    let api = start_env(&["--config-file", &base, "api"], &env, "listening on ");
    let mut conductors = Vec::new();
    for n in 1..=3 {
        let host = dir.join(format!("c{n}.conf"));
        std::fs::write(
            &host,
            format!("[DEFAULT]\nauth_strategy = noauth\nhost = c{n}\n"),
        )
        .unwrap();
        let host = host.to_str().unwrap().to_string();
        conductors.push(Some(start_env(
            &["--config-file", &base, "--config-file", &host, "conductor"],
            &env,
            "conductor serving RPC topic",
        )));
    }
    let url = api.url.clone();
    created(
        &url,
        "/v1/clustertemplates",
        json!({"name": "t", "coe": "kubernetes", "image_id": "fcos", "driver": "fake",
               "labels": {"fake_seconds": "1"}}),
    );

    // Several clusters at once: each create runs exactly once.
    let ids: Vec<String> = (0..6)
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
    for c in &ids {
        wait_for(&url, &format!("/v1/clusters/{c}"), 60, |_, v| {
            v["status"] == "CREATE_COMPLETE"
        });
        assert_eq!(history(&cloud, c), ["create"], "cluster {c}");
    }

    // A slow create: kill the conductor running it, mid-call.
    let slow = created(
        &url,
        "/v1/clusters",
        json!({"name": "slow", "cluster_template_id": "t",
               "labels": {"fake_call_seconds": "6", "fake_seconds": "1"}}),
    )["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let owner = support::claimed_operation(&db, &slow).await.owner.unwrap();
    // The claim names its host, then the attempt's own token.
    let host = owner.split_whitespace().next().unwrap();
    let n: usize = host.trim_start_matches('c').parse().unwrap();
    drop(conductors[n - 1].take());
    let killed_at = Instant::now();
    let c = wait_for(&url, &format!("/v1/clusters/{slow}"), 60, |_, v| {
        v["status"] == "CREATE_COMPLETE" || v["status"] == "CREATE_FAILED"
    });
    assert_eq!(c["status"], "CREATE_COMPLETE", "{c}");
    let took = killed_at.elapsed();
    // Lease (3 s) + sweep (1 s) + the slow call (6 s) + the build (1 s),
    // with room for a loaded machine.
    assert!(took < Duration::from_secs(40), "took over in {took:?}");
    assert_eq!(history(&cloud, &slow), ["create"]);

    // The dead conductor shows as down, the others as up.
    wait_for(&url, "/v1/mservices", 30, |_, v| {
        let services = v["mservices"].as_array().cloned().unwrap_or_default();
        let state = |h: &str| {
            services
                .iter()
                .find(|s| s["host"] == h)
                .map(|s| s["state"].as_str().unwrap_or_default().to_string())
        };
        (1..=3).all(|i| {
            let want = if i == n { "down" } else { "up" };
            state(&format!("c{i}")).as_deref() == Some(want)
        })
    });

    // The survivors delete everything.
    for c in ids.iter().chain([&slow]) {
        let (status, body) = http(&url, "DELETE", &format!("/v1/clusters/{c}"), None);
        assert_eq!(status, 204, "{body}");
    }
    for c in ids.iter().chain([&slow]) {
        wait_for(&url, &format!("/v1/clusters/{c}"), 60, |s, _| s == 404);
        assert_eq!(
            history(&cloud, c).last().map(String::as_str),
            Some("delete")
        );
    }
    drop(conductors);
    drop(api);
    db.close().await;
    std::fs::remove_dir_all(dir).ok();
}
