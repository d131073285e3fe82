//! Upstream's CADF notifications about cluster operations, published on
//! RabbitMQ when `[oslo_messaging_notifications] driver = messagingv2`, as
//! an oslo.messaging notification listener (from PyPI) receives them.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::*;

#[test]
fn cluster_operations_are_notified() {
    let dir = tempdir("notify");
    let exchange = format!("magnum-notify-{}", uuid_str());
    let url = "rabbit://guest:guest@127.0.0.1:5672/";
    let conf = write_conf(
        &dir,
        &format!(
            "[DEFAULT]\nhost = notifier-1\ntransport_url = {url}\ncontrol_exchange = {exchange}\n\
             [oslo_messaging_notifications]\ndriver = messagingv2\n\
             [conductor]\nsync_interval = 1\n[api]\nport = 0\n"
        ),
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers/notification_listener.py");
    let mut listener = Command::new(venv().join("bin/python"))
        .arg(script)
        .args([url, &exchange, "25"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(listener.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");

    let server = all_in_one_on_fake_cloud(&dir, &conf);
    let (s, b) = http(
        &server.url,
        "POST",
        "/v1/clustertemplates",
        Some(
            r#"{"name": "t", "coe": "kubernetes", "image_id": "fcos", "driver": "fake", "labels": {"fake_seconds": "0"}}"#,
        ),
    );
    assert_eq!(s, 201, "{b}");
    let (s, b) = http(
        &server.url,
        "POST",
        "/v1/clusters",
        Some(r#"{"name": "c1", "cluster_template_id": "t"}"#),
    );
    assert_eq!(s, 202, "{b}");
    let uuid = serde_json::from_str::<Value>(&b).unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/clusters/{uuid}");
    wait_for(&server.url, &path, 30, |_, v| {
        v["status"] == "CREATE_COMPLETE"
    });
    let (s, _) = http(&server.url, "DELETE", &path, None);
    assert_eq!(s, 204);
    wait_for(&server.url, &path, 30, |s, _| s == 404);
    // A create the cloud fails: an ERROR notification.
    let (s, b) = http(
        &server.url,
        "POST",
        "/v1/clusters",
        Some(r#"{"name": "c2", "cluster_template_id": "t", "labels": {"fake_refuse": "create"}}"#),
    );
    assert_eq!(s, 202, "{b}");
    let failed = serde_json::from_str::<Value>(&b).unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(
        &server.url,
        &format!("/v1/clusters/{failed}"),
        30,
        |_, v| v["status"] == "CREATE_FAILED",
    );

    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for line in lines.by_ref() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let outcome = v["payload"]["outcome"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let target = v["payload"]["target"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(v["publisher_id"], "container-infra.notifier-1");
        assert_eq!(
            v["payload"]["typeURI"],
            "http://schemas.dmtf.org/cloud/audit/1.0/event"
        );
        assert_eq!(v["payload"]["target"]["typeURI"], "service/magnum/cluster");
        assert_eq!(
            v["payload"]["initiator"]["typeURI"],
            "service/security/account/user"
        );
        seen.push(json!([
            v["event_type"],
            v["priority"],
            outcome,
            target == uuid
        ]));
        if seen.len() == 6 || std::time::Instant::now() > deadline {
            break;
        }
    }
    let _ = listener.kill();
    let _ = listener.wait();
    // Each priority has a queue of its own (notifications.info and
    // notifications.error), so only the order within one priority holds.
    let of = |priority: &str| -> Vec<Value> {
        seen.iter().filter(|v| v[1] == priority).cloned().collect()
    };
    assert_eq!(
        of("INFO"),
        [
            json!(["magnum.cluster.create", "INFO", "pending", true]),
            json!(["magnum.cluster.create", "INFO", "success", true]),
            json!(["magnum.cluster.delete", "INFO", "pending", true]),
            json!(["magnum.cluster.delete", "INFO", "success", true]),
            json!(["magnum.cluster.create", "INFO", "pending", false]),
        ],
        "{seen:?}"
    );
    assert_eq!(
        of("ERROR"),
        [json!(["magnum.cluster.create", "ERROR", "failure", false])],
        "{seen:?}"
    );
    drop(server);
    std::fs::remove_dir_all(dir).ok();
}
