//! Conductors over a shared test database and fake cloud, in one process.

#![allow(dead_code)] // each test binary uses part of it

use std::path::PathBuf;
use std::sync::Arc;

use magnum_conductor::{Conductor, Notifier, Settings};
use magnum_core::config::Config;
use magnum_core::objects::status::*;
use magnum_core::objects::{default_nodegroup, Cluster, ClusterTemplate};
use magnum_db::{Database, Operation};
use serde_json::{json, Map, Value};

#[path = "../fake_driver/mod.rs"]
pub mod fake_driver;

pub use fake_driver::FakeDriver;

/// A fresh fake cloud directory.
pub fn cloud_dir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("magnum-{what}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).expect("cloud directory");
    d
}

/// A conductor on `host` whose fake driver logs status calls as `host`.
pub fn conductor(db: &Database, cloud: &FakeDriver, host: &str, conf: &str) -> Conductor {
    let conf = Config::parse(conf, "test.conf").expect("test configuration");
    let driver = cloud.clone().counting(host);
    let drivers = magnum_core::drivers::registry_with(vec![Arc::new(driver)], &conf);
    let mut settings = Settings::from_conf(&conf, host);
    settings.grace = 0;
    Conductor::new(db.clone(), drivers, settings, Notifier::none())
}

/// The fake driver's template, TLS off (no certificates to make).
pub async fn template(db: &Database) -> ClusterTemplate {
    let t = ClusterTemplate {
        uuid: uuid::Uuid::new_v4().to_string(),
        name: Some("fake".into()),
        project_id: Some("p".into()),
        coe: Some("kubernetes".into()),
        image_id: Some("fcos".into()),
        driver: Some("fake".into()),
        tls_disabled: Some(true),
        server_type: Some("vm".into()),
        ..Default::default()
    };
    db.cluster_template_create(&t).await.expect("template")
}

fn labels(v: Value) -> Option<Map<String, Value>> {
    v.as_object().cloned()
}

/// A new cluster of `template` in `status`, its two default node groups.
pub fn cluster(template: &ClusterTemplate, status: &str, l: Value) -> Cluster {
    let uuid = uuid::Uuid::new_v4().to_string();
    Cluster {
        name: Some(format!("c-{}", &uuid[..8])),
        uuid,
        project_id: Some("p".into()),
        user_id: Some("u".into()),
        cluster_template_id: Some(template.uuid.clone()),
        status: Some(status.into()),
        labels: labels(l),
        create_timeout: Some(60),
        ..Default::default()
    }
}

/// Store a cluster whose build has started: its stack exists in the fake
/// cloud (started now) and `stack_id` is recorded; no operation is queued.
pub async fn building(
    db: &Database,
    cloud_dir: &std::path::Path,
    template: &ClusterTemplate,
    l: Value,
) -> Cluster {
    let mut c = cluster(template, CREATE_IN_PROGRESS, l);
    let stack = format!("fake-{}", c.uuid);
    c.stack_id = Some(stack.clone());
    let ngs = [
        default_nodegroup(&c, template, 1, true),
        default_nodegroup(&c, template, 2, false),
    ];
    db.cluster_create(&c, &ngs).await.expect("cluster");
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let record = json!({"action": "create", "what": "create", "started": started});
    std::fs::write(cloud_dir.join(format!("{stack}.json")), record.to_string())
        .expect("fake stack");
    db.cluster_get(&c.uuid)
        .await
        .expect("read")
        .expect("stored")
}

/// Start the builds of these clusters' stacks again, now.
pub fn restart_stacks(cloud_dir: &std::path::Path, ids: &[String]) {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    for id in ids {
        let record = json!({"action": "create", "what": "create", "started": started});
        std::fs::write(
            cloud_dir.join(format!("fake-{id}.json")),
            record.to_string(),
        )
        .expect("fake stack");
    }
}

/// Store a new cluster with its queued create, as the API does.
pub async fn queued_create(
    db: &Database,
    template: &ClusterTemplate,
    l: Value,
) -> (Cluster, Operation) {
    let c = cluster(template, CREATE_IN_PROGRESS, l);
    let ngs = [
        default_nodegroup(&c, template, 1, true),
        default_nodegroup(&c, template, 1, false),
    ];
    let op = Operation::new(&c.uuid, "cluster_create", Map::new(), Map::new());
    db.cluster_create_queued(&c, &ngs, &op, None)
        .await
        .expect("queued");
    (c, op)
}
