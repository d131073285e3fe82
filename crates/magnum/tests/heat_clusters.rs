//! Clusters as real Heat stacks: our API and conductor (all-in-one, with
//! Keystone) drive PyPI Heat (`scripts/heat.sh`) through the cluster's
//! trust; Nova, Neutron, Cinder and Octavia resources are stood in for by
//! the test environment `tests/heat/fake-cloud-env.yaml`, so the stacks
//! live their whole life in the real Heat engine.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::cloud::*;
use support::*;

#[test]
fn kubernetes_cluster_is_a_heat_stack() {
    keystone(&["start"]);
    heat_start();
    let dir = tempdir("heat-k8s");
    let _cloud = cloud_double(&dir);
    glance_with_image(&token("a-member", "project-a"));
    let conf = heat_conf(&dir, "");
    let server = all_in_one(&dir, &conf);
    let url = server.url.clone();
    keystone(&["endpoint", &format!("{url}/v1")]);
    // The test Keystone's tokens live 30 s: a fresh one per call.
    let member = || token("a-member", "project-a");
    let (s, _, t) = call(
        &url,
        "POST",
        "/v1/clustertemplates",
        Some(&member()),
        Some(
            json!({"name": "k8s-heat", "coe": "kubernetes", "image_id": "fedora-coreos-40",
                    "flavor_id": "m1.small", "master_flavor_id": "m1.medium", "keypair_id": "kp",
                    "external_network_id": "public", "docker_volume_size": 5}),
        ),
    );
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["cluster_distro"], "fedora-coreos");

    // Create: a stack in Heat, CREATE_COMPLETE with addresses.
    let (s, _, c) = call(
        &url,
        "POST",
        "/v1/clusters",
        Some(&member()),
        Some(json!({"name": "k1", "cluster_template_id": "k8s-heat", "node_count": 2})),
    );
    assert_eq!(s, 202, "{c}");
    let uuid = c["uuid"].as_str().unwrap().to_string();
    let c = wait_status(
        &url,
        &uuid,
        "a-member",
        &["CREATE_COMPLETE", "CREATE_FAILED"],
        240,
    );
    assert_eq!(c["status"], "CREATE_COMPLETE", "{c}");
    let api = c["api_address"].as_str().unwrap_or_default();
    assert!(
        api.starts_with("https://172.24.4.") && api.ends_with(":6443"),
        "{c}"
    );
    assert_eq!(c["coe_version"], "v1.30.4");
    assert_eq!(c["master_addresses"].as_array().unwrap().len(), 1, "{c}");
    assert_eq!(c["node_addresses"].as_array().unwrap().len(), 2, "{c}");
    // Newer microversions call the stack id cluster_id.
    let stack_id = c["cluster_id"].as_str().unwrap().to_string();
    let stacks = heat_stacks(&format!("k1-{}", &uuid[..12]));
    assert_eq!(stacks.len(), 1, "{stacks:?}");
    assert_eq!(stacks[0]["id"], stack_id.as_str());
    assert_eq!(stacks[0]["stack_status"], "CREATE_COMPLETE");

    // Scale up through the stack: three workers.
    let (s, _, b) = call(
        &url,
        "PATCH",
        &format!("/v1/clusters/{uuid}"),
        Some(&member()),
        Some(json!([{"op": "replace", "path": "/node_count", "value": 3}])),
    );
    assert_eq!(s, 202, "{b}");
    let c = wait_status(
        &url,
        &uuid,
        "a-member",
        &["UPDATE_COMPLETE", "UPDATE_FAILED"],
        240,
    );
    assert_eq!(c["status"], "UPDATE_COMPLETE", "{c}");
    assert_eq!(c["node_addresses"].as_array().unwrap().len(), 3, "{c}");

    // Resize down to one, removing a named node.
    let (s, _, b) = call(
        &url,
        "POST",
        &format!("/v1/clusters/{uuid}/actions/resize"),
        Some(&member()),
        Some(json!({"node_count": 1, "nodes_to_remove": ["k1-node-0"]})),
    );
    assert_eq!(s, 202, "{b}");
    let c = wait_status(
        &url,
        &uuid,
        "a-member",
        &["UPDATE_COMPLETE", "UPDATE_FAILED"],
        240,
    );
    assert_eq!(c["status"], "UPDATE_COMPLETE", "{c}");
    assert_eq!(c["node_count"], 1, "{c}");
    assert_eq!(c["node_addresses"].as_array().unwrap().len(), 1, "{c}");
    // Heat removed the named node (index 0), then the newest (2).
    let tok = token("a-member", "project-a");
    let (s, _, res) = http_with(
        "http://127.0.0.1:8004",
        "GET",
        &format!(
            "/v1/{}/stacks/k1-{}/{stack_id}/resources?nested_depth=2",
            project_a(&tok),
            &uuid[..12]
        ),
        &[("X-Auth-Token", &tok)],
        None,
    );
    assert_eq!(s, 200, "{res}");
    let res: Value = serde_json::from_str(&res).unwrap();
    let workers: Vec<&str> = res["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["parent_resource"] == "group")
        .filter_map(|r| r["resource_name"].as_str())
        .collect();
    assert_eq!(workers, ["1"], "{res}");

    // Upgrade to a template with a newer Kubernetes.
    let (s, _, t2) = call(
        &url,
        "POST",
        "/v1/clustertemplates",
        Some(&member()),
        Some(
            json!({"name": "k8s-heat-2", "coe": "kubernetes", "image_id": "fedora-coreos-40",
                    "flavor_id": "m1.small", "master_flavor_id": "m1.medium", "keypair_id": "kp",
                    "external_network_id": "public", "docker_volume_size": 5,
                    "labels": {"kube_tag": "v1.31.2"}}),
        ),
    );
    assert_eq!(s, 201, "{t2}");
    let (s, _, b) = call(
        &url,
        "POST",
        &format!("/v1/clusters/{uuid}/actions/upgrade"),
        Some(&member()),
        Some(json!({"cluster_template": "k8s-heat-2"})),
    );
    assert_eq!(s, 202, "{b}");
    let c = wait_status(
        &url,
        &uuid,
        "a-member",
        &["UPDATE_COMPLETE", "UPDATE_FAILED"],
        240,
    );
    assert_eq!(c["status"], "UPDATE_COMPLETE", "{c}");
    assert_eq!(c["coe_version"], "v1.31.2", "{c}");

    // A node group of its own: a stack of its own, joining the cluster's.
    let (s, _, ng) = call(
        &url,
        "POST",
        &format!("/v1/clusters/{uuid}/nodegroups"),
        Some(&member()),
        Some(json!({"name": "ng1", "node_count": 2, "flavor_id": "m1.small"})),
    );
    assert_eq!(s, 202, "{ng}");
    let c = wait_status(
        &url,
        &uuid,
        "a-member",
        &["UPDATE_COMPLETE", "UPDATE_FAILED"],
        240,
    );
    assert_eq!(c["status"], "UPDATE_COMPLETE", "{c}");
    let ng_path = format!("/v1/clusters/{uuid}/nodegroups/ng1");
    let deadline = Instant::now() + Duration::from_secs(60);
    let ng = loop {
        let (_, _, ng) = call(&url, "GET", &ng_path, Some(&member()), None);
        if ng["status"] == "CREATE_COMPLETE" {
            break ng;
        }
        assert!(Instant::now() < deadline, "{ng}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(ng["node_addresses"].as_array().unwrap().len(), 2, "{ng}");
    let ng_stack = format!("k1-{}-ng1", &uuid[..12]);
    let stacks = heat_stacks(&ng_stack);
    assert_eq!(stacks.len(), 1, "{stacks:?}");
    assert_eq!(stacks[0]["stack_status"], "CREATE_COMPLETE");
    // ... and goes with it.
    let (s, _, b) = call(&url, "DELETE", &ng_path, Some(&member()), None);
    assert_eq!(s, 204, "{b}");
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let (s, _, _) = call(&url, "GET", &ng_path, Some(&member()), None);
        if s == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "node group ng1 not deleted");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(heat_stacks(&ng_stack).is_empty());

    // A node that fails to boot: CREATE_FAILED naming it.
    let (s, _, bad) = call(
        &url,
        "POST",
        "/v1/clusters",
        Some(&member()),
        Some(json!({"name": "fail-me", "cluster_template_id": "k8s-heat", "node_count": 1})),
    );
    assert_eq!(s, 202, "{bad}");
    let bad_uuid = bad["uuid"].as_str().unwrap().to_string();
    let bad = wait_status(
        &url,
        &bad_uuid,
        "a-member",
        &["CREATE_COMPLETE", "CREATE_FAILED"],
        240,
    );
    assert_eq!(bad["status"], "CREATE_FAILED", "{bad}");
    let reason = bad["status_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("nova_boot") && reason.contains("Test Resource failed"),
        "{reason}"
    );

    // Delete: the stacks go from Heat, the clusters from our database.
    for id in [&uuid, &bad_uuid] {
        let tok = token("a-member", "project-a");
        let (s, _, b) = call(
            &url,
            "DELETE",
            &format!("/v1/clusters/{id}"),
            Some(&tok),
            None,
        );
        assert_eq!(s, 204, "{b}");
    }
    for id in [&uuid, &bad_uuid] {
        wait_status(&url, id, "a-member", &["gone"], 240);
    }
    assert!(heat_stacks(&format!("k1-{}", &uuid[..12])).is_empty());
    drop(server);
    std::fs::remove_dir_all(dir).ok();
}

/// Every driver's templates pass Heat's own validation, for each OS.
#[test]
fn templates_pass_heat_validation() {
    keystone(&["start"]);
    heat_start();
    let tok = token("a-member", "project-a");
    let project = project_a(&tok);
    let env = [fake_cloud_env().display().to_string()];
    for os in [magnum_heat::Os::FedoraCoreos, magnum_heat::Os::Ubuntu] {
        let body = magnum_heat::validation_body(magnum_heat::Coe::Kubernetes, os, &env).unwrap();
        let (s, _, out) = http_with(
            "http://127.0.0.1:8004",
            "POST",
            &format!("/v1/{project}/validate"),
            &[("X-Auth-Token", &tok)],
            Some(&body.to_string()),
        );
        assert_eq!(s, 200, "{os:?}: {out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert!(v["Parameters"]["kube_tag"].is_object(), "{os:?}: {out}");
        assert!(
            v["Parameters"]["trustee_password"]["NoEcho"] == "true",
            "{out}"
        );
    }
}
