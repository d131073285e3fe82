//! openstacksdk (PyPI, the version pinned in scripts/peers-requirements.txt,
//! unchanged) driving our container-infra API: its cluster template and
//! cluster calls, through the proxy and the cloud layer, against `magnum
//! all-in-one` with no Keystone (`auth_type='none'` and
//! `container_infra_endpoint_override`). The driver script is
//! `tests/peers/sdk_peer.py`; clusters run on the fake driver.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::process::Command;

use serde_json::{json, Value};
use support::*;

#[test]
fn openstacksdk_templates_and_clusters() {
    let dir = tempdir("sdk");
    let conf = write_conf(&dir, "[api]\nport = 0\n[conductor]\nsync_interval = 1\n");
    let server = all_in_one_on_fake_cloud(&dir, &conf);
    let url = server.url.as_str();
    // The SDK has no field for a template's driver: the cluster's template
    // is made here.
    let (s, body) = http(
        url,
        "POST",
        "/v1/clustertemplates",
        Some(
            &json!({
                "name": "fake", "coe": "kubernetes", "image_id": "fcos",
                "external_network_id": "public", "flavor_id": "m1.small",
                "keypair_id": "kp", "driver": "fake",
                "labels": {"fake_seconds": "0"},
            })
            .to_string(),
        ),
    );
    assert_eq!(s, 201, "{body}");
    let fake: Value = serde_json::from_str(&body).unwrap();

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/sdk_peer.py");
    let out = run(Command::new(venv().join("bin/python"))
        .env_clear()
        .env("HOME", &dir)
        .env("LANG", "C.UTF-8")
        .arg(&script)
        .arg(format!("{url}/v1"))
        .arg("fake"));
    assert!(out.status.success(), "sdk_peer.py failed:\n{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(&out)));

    // Templates: what the SDK sent came back, under its own field names.
    let t = &seen["template_created"];
    assert_eq!(t["name"], "sdk-t", "{t}");
    for (k, v) in [
        ("coe", json!("kubernetes")),
        ("image_id", json!("fcos")),
        ("external_network_id", json!("public")),
        ("keypair_id", json!("kp")),
        ("flavor_id", json!("m1.small")),
        ("master_flavor_id", json!("m1.medium")),
        ("network_driver", json!("calico")),
        ("docker_volume_size", json!(5)),
        ("labels", json!({"kube_tag": "v1.30"})),
        ("is_floating_ip_enabled", json!(false)),
        ("is_master_lb_enabled", json!(false)),
        ("is_public", json!(false)),
        ("is_tls_disabled", json!(false)),
        ("is_hidden", json!(false)),
        ("server_type", json!("vm")),
    ] {
        assert_eq!(t[k], v, "{k}: {t}");
        assert_eq!(seen["template_get"][k], v, "{k}: {}", seen["template_get"]);
    }
    let uuid = t["uuid"].as_str().unwrap();
    assert_eq!(t["id"], uuid);
    assert_eq!(seen["template_find"]["uuid"], uuid);
    let listed: Vec<&str> = seen["template_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.contains(&"sdk-t") && listed.contains(&"fake"));
    assert_eq!(seen["template_updated"]["docker_volume_size"], 10);
    assert_eq!(seen["cloud_template_created"]["name"], "sdk-t2");
    assert_eq!(
        seen["cloud_template_list"],
        json!(["fake", "sdk-t", "sdk-t2"])
    );
    assert_eq!(seen["cloud_template_get"]["image_id"], "fcos");
    assert_eq!(seen["cloud_template_updated"]["docker_volume_size"], 7);
    assert_eq!(seen["cloud_template_deleted"], true);
    assert_eq!(seen["template_missing"], true);
    assert_eq!(seen["template_names_left"], json!(["fake"]));

    // Clusters.
    let c = &seen["cluster_complete"];
    let cluster = c["uuid"].as_str().unwrap();
    assert_eq!(
        seen["cluster_created"]["id"], cluster,
        "{}",
        seen["cluster_created"]
    );
    assert_eq!(c["name"], "sdk-c");
    assert_eq!(c["status"], "CREATE_COMPLETE");
    assert_eq!(c["cluster_template_id"], fake["uuid"]);
    assert_eq!(c["node_count"], 2);
    assert_eq!(c["master_count"], 1);
    assert_eq!(c["create_timeout"], 30);
    assert_eq!(c["keypair"], "kp");
    assert_eq!(c["api_address"], "https://10.0.0.1:6443");
    assert_eq!(c["labels"], json!({"fake_seconds": "0"}));
    let list = seen["cluster_list"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["uuid"], cluster);
    assert_eq!(list[0]["status"], "CREATE_COMPLETE");
    assert_eq!(seen["cluster_get"]["uuid"], cluster);
    assert_eq!(seen["cluster_find"]["uuid"], cluster);
    assert_eq!(seen["cluster_updated"]["status"], "UPDATE_COMPLETE");
    assert_eq!(seen["cluster_updated"]["node_count"], 3);
    // Without a microversion the SDK asks at 1.1, where resize does not
    // exist: 406, as upstream answers.
    assert_eq!(seen["resize_at_1_1"][0], 406, "{}", seen["resize_at_1_1"]);
    assert_eq!(seen["cluster_resized"]["status"], "UPDATE_COMPLETE");
    assert_eq!(seen["cluster_resized"]["node_count"], 1);
    assert_eq!(seen["cloud_cluster_list"], json!(["sdk-c"]));
    assert_eq!(seen["cloud_cluster_get"]["uuid"], cluster);
    let services = seen["services"].as_array().unwrap();
    assert!(
        services
            .iter()
            .any(|s| s["binary"] == "magnum-conductor" && s["state"] == "up"),
        "{services:?}"
    );
    assert_eq!(seen["cluster_gone"], true);
    assert_eq!(seen["cluster_list_after"], json!([]));
    let (s, _) = http(url, "GET", &format!("/v1/clusters/{cluster}"), None);
    assert_eq!(s, 404);

    drop(server);
    std::fs::remove_dir_all(dir).ok();
}
