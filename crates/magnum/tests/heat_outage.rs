//! Heat down while a cluster is made: the cluster says why it waits, the
//! conductor tries again, and once Heat is back the cluster is built. A
//! test binary of its own, since it stops the shared Heat.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::cloud::*;
use support::*;

fn heat(cmd: &str) {
    let out = run(Command::new("bash")
        .arg(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/heat.sh"))
        .arg(cmd));
    assert!(out.status.success(), "heat.sh {cmd}: {}", text(&out));
}

/// The cluster says Heat is unreachable and that it retries, and a few
/// retries later it is still `status`, not failed.
fn waits_for_heat(url: &str, uuid: &str, status: &str) {
    let show = || {
        let tok = token("a-member", "project-a");
        call(
            url,
            "GET",
            &format!("/v1/clusters/{uuid}"),
            Some(&tok),
            None,
        )
        .2
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let waiting = loop {
        let c = show();
        let reason = c["status_reason"].as_str().unwrap_or_default();
        if reason.contains("Heat is unreachable") && reason.contains("retr") {
            break c;
        }
        assert!(Instant::now() < deadline, "no reason given: {c}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(waiting["status"], status, "{waiting}");
    std::thread::sleep(Duration::from_secs(6));
    let c = show();
    assert_eq!(c["status"], status, "{c}");
}

#[test]
fn heat_unreachable_is_said_and_retried() {
    keystone(&["start"]);
    heat_start();
    let dir = tempdir("heat-outage");
    let _cloud = cloud_double(&dir);
    glance_with_image(&token("a-member", "project-a"));
    let conf = heat_conf(&dir, "operation_retry_delay = 2\n");
    let server = all_in_one(&dir, &conf);
    let url = server.url.clone();
    keystone(&["endpoint", &format!("{url}/v1")]);
    let member = || token("a-member", "project-a");
    let (s, _, t) = call(
        &url,
        "POST",
        "/v1/clustertemplates",
        Some(&member()),
        Some(
            json!({"name": "k8s-outage", "coe": "kubernetes", "image_id": "fedora-coreos-40",
                    "flavor_id": "m1.small", "master_flavor_id": "m1.medium", "keypair_id": "kp",
                    "external_network_id": "public"}),
        ),
    );
    assert_eq!(s, 201, "{t}");

    heat("stop");
    let (s, _, c) = call(
        &url,
        "POST",
        "/v1/clusters",
        Some(&member()),
        Some(json!({"name": "outage", "cluster_template_id": "k8s-outage", "node_count": 1})),
    );
    assert_eq!(s, 202, "{c}");
    let uuid = c["uuid"].as_str().unwrap().to_string();
    // Still in progress, saying Heat cannot be reached and that it retries.
    waits_for_heat(&url, &uuid, "CREATE_IN_PROGRESS");

    heat_start();
    let c = wait_status(
        &url,
        &uuid,
        "a-member",
        &["CREATE_COMPLETE", "CREATE_FAILED"],
        240,
    );
    assert_eq!(c["status"], "CREATE_COMPLETE", "{c}");

    // Heat down again for the delete: it waits and says why, not
    // DELETE_FAILED, and the cluster goes once Heat is back.
    heat("stop");
    let (s, _, b) = call(
        &url,
        "DELETE",
        &format!("/v1/clusters/{uuid}"),
        Some(&member()),
        None,
    );
    assert_eq!(s, 204, "{b}");
    waits_for_heat(&url, &uuid, "DELETE_IN_PROGRESS");
    heat_start();
    wait_status(&url, &uuid, "a-member", &["gone"], 240);
    drop(server);
    std::fs::remove_dir_all(dir).ok();
}
