//! A deleted cluster's trust and trustee go before its rows: while
//! Keystone cannot be reached the cluster stays `DELETE_IN_PROGRESS`
//! saying why, and once Keystone is back it is gone, trustee included.
//! Keystone is the real one, behind a relay the test can cut. A test
//! binary of its own, so no other test shares the relay's outage.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::cloud::*;
use support::*;

#[test]
fn a_trust_keystone_cannot_delete_keeps_the_cluster_until_it_can() {
    keystone(&["start"]);
    let dir = tempdir("trust-cleanup");
    let _cloud = cloud_double(&dir);
    let member = token("a-member", "project-a");
    glance_with_image(&member);
    let relay = support::relay::Relay::start(KEYSTONE.trim_start_matches("http://"));
    // Everything this Magnum asks Keystone goes through the relay.
    let conf = conf(&dir, &format!("http://127.0.0.1:{}/v3", relay.port));
    let server = all_in_one(&dir, &conf);
    let url = server.url.clone();

    let (s, _, t) = call(
        &url,
        "POST",
        "/v1/clustertemplates",
        Some(&member),
        Some(
            json!({"name": "trust-t", "coe": "kubernetes", "image_id": "fedora-coreos-40",
                    "driver": "fake", "labels": {"fake_seconds": "0"},
                    "external_network_id": "public", "keypair_id": "kp",
                    "flavor_id": "m1.small"}),
        ),
    );
    assert_eq!(s, 201, "{t}");
    let (s, _, c) = call(
        &url,
        "POST",
        "/v1/clusters",
        Some(&token("a-member", "project-a")),
        Some(json!({"name": "trusted", "cluster_template_id": "trust-t"})),
    );
    assert_eq!(s, 202, "{c}");
    let uuid = c["uuid"].as_str().unwrap().to_string();
    wait_status(&url, &uuid, "a-member", &["CREATE_COMPLETE"], 60);
    let admin = admin_token();
    let project = project_a(&token("a-member", "project-a"));
    let users = kget(&admin, &format!("/v3/users?name={uuid}_{project}"))["users"].clone();
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");
    let trustee = users[0]["id"].as_str().unwrap().to_string();

    // A token the API has validated (and cached) before Keystone goes.
    let tok = token("a-member", "project-a");
    let show = || {
        let (s, _, c) = call(
            &url,
            "GET",
            &format!("/v1/clusters/{uuid}"),
            Some(&tok),
            None,
        );
        (s, c)
    };
    // Whether Keystone still has the trustee.
    let trustee_status = || {
        http_with(
            KEYSTONE,
            "GET",
            &format!("/v3/users/{trustee}"),
            &[("X-Auth-Token", &admin)],
            None,
        )
        .0
    };
    assert_eq!(show().0, 200);
    relay.down();
    let (s, _, b) = call(
        &url,
        "DELETE",
        &format!("/v1/clusters/{uuid}"),
        Some(&tok),
        None,
    );
    assert_eq!(s, 204, "{b}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let waiting = loop {
        let (s, c) = show();
        assert_eq!(s, 200, "the cluster went while its trust could not: {c}");
        let reason = c["status_reason"].as_str().unwrap_or_default();
        if reason.contains("trust") {
            break c;
        }
        assert!(Instant::now() < deadline, "no reason given: {c}");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(waiting["status"], "DELETE_IN_PROGRESS", "{waiting}");
    assert!(
        waiting["status_reason"]
            .as_str()
            .unwrap()
            .ends_with("will retry"),
        "{waiting}"
    );
    // Several status syncs later it still waits; the trustee is still there.
    std::thread::sleep(Duration::from_secs(3));
    let (s, c) = show();
    assert_eq!(
        (s, c["status"].as_str()),
        (200, Some("DELETE_IN_PROGRESS")),
        "{c}"
    );
    assert_eq!(trustee_status(), 200);

    // Keystone is back: the trustee goes, then the cluster.
    relay.up();
    wait_status(&url, &uuid, "a-member", &["gone"], 60);
    assert_eq!(trustee_status(), 404, "the trustee outlived its cluster");
    assert_eq!(
        call(
            &url,
            "DELETE",
            "/v1/clustertemplates/trust-t",
            Some(&token("a-member", "project-a")),
            None
        )
        .0,
        204
    );
    drop(server);
    std::fs::remove_dir_all(dir).ok();
}
