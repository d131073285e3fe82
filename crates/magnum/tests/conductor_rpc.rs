//! `magnum conductor` on RabbitMQ answers upstream Magnum's own conductor
//! clients (`magnum.conductor.api.ListenerAPI` / `API` from PyPI magnum).

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::process::Command;

use serde_json::Value;
use support::*;

#[test]
fn upstream_clients_reach_our_conductor() {
    let dir = tempdir("conductor-rpc");
    let topic = format!("magnum-conductor-test-{}", std::process::id());
    let conf = write_conf(
        &dir,
        &format!(
            "[DEFAULT]\nhost = cond-1\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\nreport_interval = 1\n\
             [database]\nconnection = sqlite:///{}/magnum.sqlite\n[conductor]\ntopic = {topic}\n",
            dir.display()
        ),
    );
    let conf = conf.to_str().unwrap();
    let out = run(Command::new(MAGNUM).args(["--config-file", conf, "db-manage", "upgrade"]));
    assert!(out.status.success(), "{}", text(&out));
    let conductor = start_until(
        &["--config-file", conf, "conductor"],
        "conductor serving RPC topic",
    );

    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/conductor_peer.py");
    let out = run(Command::new(venv().join("bin/python")).arg(script).args([
        "rabbit://guest:guest@127.0.0.1:5672/",
        &topic,
        "cond-1",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["ping"], true, "{stdout}");
    // Failures come back as upstream's own exception types.
    assert_eq!(lines[1]["delete"], "ClusterNotFound_Remote", "{stdout}");
    assert!(
        lines[1]["text"]
            .as_str()
            .unwrap()
            .starts_with("Cluster 0c6c8f5e-0000-4000-8000-000000000000 could not be found."),
        "{stdout}"
    );
    drop(conductor);
    std::fs::remove_dir_all(dir).ok();
}

/// Upstream's `API.cluster_create` (a call, with the cluster as a
/// versioned object) and `cluster_delete_async` (a cast) drive our
/// conductor: it stores the cluster with its default node groups, builds
/// it, answers with the object, and deletes it.
#[test]
fn upstream_api_creates_and_deletes_through_our_conductor() {
    let dir = tempdir("upstream-api");
    let cloud = dir.join("cloud");
    let topic = format!("magnum-conductor-up-{}", std::process::id());
    let conf = write_conf(
        &dir,
        &format!(
            "[DEFAULT]\nauth_strategy = noauth\nhost = cond-up\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\nreport_interval = 1\n\
             [database]\nconnection = sqlite:///{}/magnum.sqlite\n[conductor]\ntopic = {topic}\nsync_interval = 1\n\
             [api]\nport = 0\n",
            dir.display()
        ),
    );
    let conf = conf.to_str().unwrap();
    let out = run(Command::new(MAGNUM).args(["--config-file", conf, "db-manage", "upgrade"]));
    assert!(out.status.success(), "{}", text(&out));
    let env = [("MAGNUM_FAKE_CLOUD", cloud.to_str().unwrap())];
    let api = start_env(&["--config-file", conf, "api"], &env, "listening on ");
    let conductor = start_env(
        &["--config-file", conf, "conductor"],
        &env,
        "conductor serving RPC topic",
    );
    let (status, body) = http(
        &api.url,
        "POST",
        "/v1/clustertemplates",
        Some(r#"{"name": "t", "coe": "kubernetes", "image_id": "fcos", "driver": "fake"}"#),
    );
    assert_eq!(status, 201, "{body}");
    let template: Value = serde_json::from_str(&body).unwrap();

    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/upstream_api_peer.py");
    let out = run(Command::new(venv().join("bin/python")).arg(&script).args([
        "rabbit://guest:guest@127.0.0.1:5672/",
        &topic,
        template["uuid"].as_str().unwrap(),
        "default",
    ]));
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let created: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(created["type"], "Cluster", "{stdout}");
    assert_eq!(created["status"], "CREATE_IN_PROGRESS", "{stdout}");
    let uuid = created["uuid"].as_str().unwrap().to_string();
    assert_eq!(created["stack_id"], format!("fake-{uuid}"));
    let path = format!("/v1/clusters/{uuid}");
    let c = wait_for(&api.url, &path, 30, |_, c| c["status"] == "CREATE_COMPLETE");
    assert_eq!(c["node_count"], 2);
    assert_eq!(c["master_count"], 1);
    assert_eq!(c["name"], "from-upstream");
    // Counts come from the default node groups the conductor made.

    // Its CA and a signed CSR, asked for as upstream's API asks.
    let out = run(Command::new("openssl").current_dir(&dir).args([
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "u.key",
        "-out",
        "u.csr",
        "-subj",
        "/CN=upstream-user",
    ]));
    assert!(out.status.success(), "{}", text(&out));
    let out = run(Command::new(venv().join("bin/python")).arg(&script).args([
        "rabbit://guest:guest@127.0.0.1:5672/",
        &topic,
        "-",
        "default",
        "certs",
        &uuid,
        dir.join("u.csr").to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{}", text(&out));
    let certs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(certs["ca_type"], "Certificate");
    assert_eq!(certs["ca_cluster"], uuid.as_str());
    let (_, ours) = http(&api.url, "GET", &format!("/v1/certificates/{uuid}"), None);
    let ours: Value = serde_json::from_str(&ours).unwrap();
    assert_eq!(certs["ca"], ours["pem"], "the same CA as our API serves");
    assert_ne!(certs["etcd"], certs["ca"], "the etcd CA is another one");
    std::fs::write(dir.join("ca.pem"), certs["ca"].as_str().unwrap()).unwrap();
    std::fs::write(dir.join("u.pem"), certs["signed"].as_str().unwrap()).unwrap();
    let out = run(Command::new("openssl")
        .current_dir(&dir)
        .args(["verify", "-CAfile", "ca.pem", "u.pem"]));
    assert!(out.status.success(), "{}", text(&out));

    // Another one, deleted with upstream's cast.
    let out = run(Command::new(venv().join("bin/python")).arg(&script).args([
        "rabbit://guest:guest@127.0.0.1:5672/",
        &topic,
        template["uuid"].as_str().unwrap(),
        "default",
        "delete",
    ]));
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let second: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    let second_uuid = second["uuid"].as_str().unwrap().to_string();
    wait_for(
        &api.url,
        &format!("/v1/clusters/{second_uuid}"),
        30,
        |s, _| s == 404,
    );
    drop(conductor);
    drop(api);
    std::fs::remove_dir_all(dir).ok();
}
