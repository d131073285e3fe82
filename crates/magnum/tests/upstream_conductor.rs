//! Our API with upstream's own `magnum-conductor` (PyPI magnum) on the same
//! MariaDB database and RabbitMQ: the conductor receives our API's cast of
//! `cluster_update` (upstream's method, arguments and versioned objects)
//! and answers it by storing the new health status.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::process::{Command, Stdio};

use magnum_core::objects::{Cluster, NodeGroup};
use magnum_db::testing::{mysql_server, TestDb};
use magnum_db::Backend;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_conductor_answers_our_api() {
    let testdb = TestDb::create_migrated(Backend::MySql).await;
    let db = testdb.migrated().await;
    let dir = tempdir("upstream-conductor");
    let id = uuid_str();
    // SQLAlchemy's spelling, which both sides read.
    let server = mysql_server();
    let host_part = server.split("://").nth(1).unwrap().trim_end_matches('/');
    let url = format!("mysql+pymysql://{host_part}/{}", testdb.name());
    let conf = write_conf(
        &dir,
        &format!(
            "[DEFAULT]\nauth_strategy = noauth\nhost = upstream-1\ndebug = true\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\n\
             control_exchange = magnum-up-{id}\n\
             [database]\nconnection = {url}\n[conductor]\ntopic = magnum-conductor-up-{id}\n\
             [api]\nport = 0\n"
        ),
    );
    let conf = conf.to_str().unwrap();
    let api = start(&["--config-file", conf, "api"]);

    // A built cluster, as either side would have stored it.
    let uuid = "5a7e0000-0000-4000-8000-000000000001";
    let (s, b) = http(
        &api.url,
        "POST",
        "/v1/clustertemplates",
        Some(r#"{"name": "t", "coe": "kubernetes", "image_id": "fcos"}"#),
    );
    assert_eq!(s, 201, "{b}");
    let template: serde_json::Value = serde_json::from_str(&b).unwrap();
    let cluster = Cluster {
        uuid: uuid.into(),
        name: Some("c1".into()),
        project_id: Some("default".into()),
        user_id: Some("admin".into()),
        cluster_template_id: Some(template["uuid"].as_str().unwrap().into()),
        status: Some("CREATE_COMPLETE".into()),
        stack_id: Some("stack-1".into()),
        create_timeout: Some(60),
        labels: Some(Default::default()),
        floating_ip_enabled: Some(true),
        master_lb_enabled: Some(false),
        ..Default::default()
    };
    let ng = |n: &str, role: &str| NodeGroup {
        uuid: format!("5a7e0000-0000-4000-8000-00000000010{n}"),
        name: format!("default-{role}"),
        cluster_id: uuid.into(),
        project_id: "default".into(),
        role: Some(role.into()),
        node_count: Some(1),
        min_node_count: Some(0),
        is_default: Some(true),
        status: Some("CREATE_COMPLETE".into()),
        labels: Some(Default::default()),
        ..Default::default()
    };
    db.cluster_create(&cluster, &[ng("1", "master"), ng("2", "worker")])
        .await
        .unwrap();

    let mut conductor = Command::new(venv().join("bin/magnum-conductor"))
        .args(["--config-file", conf])
        .stdout(Stdio::from(
            std::fs::File::create(dir.join("conductor.out")).unwrap(),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("conductor.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    // Wait until it has registered itself.
    wait_for(&api.url, "/v1/mservices", 60, |_, v| {
        v["mservices"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["host"] == "upstream-1"))
    });

    let patch = json!([
        {"op": "replace", "path": "/health_status", "value": "HEALTHY"},
        {"op": "replace", "path": "/health_status_reason", "value": {"api": "ok"}},
    ]);
    let (s, b) = http(
        &api.url,
        "PATCH",
        &format!("/v1/clusters/{uuid}"),
        Some(&patch.to_string()),
    );
    assert_eq!(s, 202, "{b}");
    let got = std::panic::catch_unwind(|| {
        wait_for(&api.url, &format!("/v1/clusters/{uuid}"), 60, |_, v| {
            v["health_status"] == "HEALTHY"
        })
    });
    let _ = conductor.kill();
    let _ = conductor.wait();
    let c = got.unwrap_or_else(|_| {
        panic!(
            "upstream's conductor did not apply the update; its log:\n{}",
            std::fs::read_to_string(dir.join("conductor.out")).unwrap_or_default()
        )
    });
    assert_eq!(c["health_status_reason"], json!({"api": "ok"}));
    assert_eq!(c["status"], "CREATE_COMPLETE");
    drop(api);
    db.close().await;
    std::fs::remove_dir_all(dir).ok();
}
