//! The real `openstack coe cluster template …` commands (python-openstackclient
//! and python-magnumclient from PyPI, unchanged) against a running
//! `magnum all-in-one`, without Keystone.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use support::*;

#[test]
fn cluster_template_commands() {
    let dir = tempdir("osc");
    let conf = write_conf(&dir, "[api]\nport = 0\n");
    let server = start(&[
        "--config-file",
        conf.to_str().unwrap(),
        "all-in-one",
        "--data-dir",
        dir.join("data").to_str().unwrap(),
    ]);
    let endpoint = format!("{}/v1", server.url);
    let ep = endpoint.as_str();

    let created = ok_json(
        ep,
        &[
            "coe",
            "cluster",
            "template",
            "create",
            "k8s-a",
            "--coe",
            "kubernetes",
            "--image",
            "ubuntu-22.04",
            "--external-network",
            "public",
            "--flavor",
            "m1.small",
            "--master-flavor",
            "m1.medium",
            "--network-driver",
            "calico",
            "--docker-volume-size",
            "5",
            "--labels",
            "kube_tag=v1.30,foo=bar",
            "--driver",
            "k8s_ubuntu_v1",
            "-f",
            "json",
        ],
    );
    assert_eq!(created["name"], "k8s-a", "{created}");

    let list = ok_json(ep, &["coe", "cluster", "template", "list", "-f", "json"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["k8s-a"]);

    let shown = ok_json(
        ep,
        &["coe", "cluster", "template", "show", "k8s-a", "-f", "json"],
    );
    assert_eq!(shown["coe"], "kubernetes");
    assert_eq!(shown["image_id"], "ubuntu-22.04");
    assert_eq!(shown["external_network_id"], "public");
    assert_eq!(shown["flavor_id"], "m1.small");
    assert_eq!(shown["master_flavor_id"], "m1.medium");
    assert_eq!(shown["network_driver"], "calico");
    assert_eq!(shown["docker_volume_size"], 5);
    assert_eq!(shown["labels"]["kube_tag"], "v1.30");
    assert_eq!(shown["labels"]["foo"], "bar");
    assert_eq!(shown["driver"], "k8s_ubuntu_v1");
    assert_eq!(shown["project_id"], "default");

    let updated = ok_json(
        ep,
        &[
            "coe",
            "cluster",
            "template",
            "update",
            "k8s-a",
            "--name",
            "k8s-b",
            "--docker-volume-size",
            "10",
            "--label",
            "extra=1",
            "-f",
            "json",
        ],
    );
    assert_eq!(updated["name"], "k8s-b", "{updated}");
    assert_eq!(updated["docker_volume_size"], 10);
    assert_eq!(updated["labels"]["extra"], "1");
    let updated = ok_json(
        ep,
        &[
            "coe",
            "cluster",
            "template",
            "update",
            "k8s-b",
            "--no-label",
            "foo",
            "-f",
            "json",
        ],
    );
    assert!(updated["labels"].get("foo").is_none(), "{updated}");
    assert_eq!(updated["labels"]["kube_tag"], "v1.30");

    // Without an os_distro the default driver for the COE is taken.
    let public = ok_json(
        ep,
        &[
            "coe",
            "cluster",
            "template",
            "create",
            "shared",
            "--coe",
            "kubernetes",
            "--image",
            "fedora-coreos-40",
            "--external-network",
            "public",
            "--public",
            "-f",
            "json",
        ],
    );
    assert_eq!(public["public"], true);
    assert_eq!(public["driver"], "k8s_fedora_coreos_v1");

    // Refusals come back with our error text and a non-zero exit.
    let out = osc(
        ep,
        &[
            "coe",
            "cluster",
            "template",
            "create",
            "bad",
            "--coe",
            "dcos",
            "--image",
            "i",
            "--external-network",
            "public",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("Requested COE type dcos is not supported"),
        "{}",
        text(&out)
    );
    let out = osc(
        ep,
        &[
            "coe",
            "cluster",
            "template",
            "update",
            "k8s-b",
            "--network-driver",
            "docker",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("Network driver type docker is not supported"),
        "{}",
        text(&out)
    );

    let out = osc(ep, &["coe", "cluster", "template", "delete", "k8s-b"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = osc(ep, &["coe", "cluster", "template", "show", "k8s-b"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("ClusterTemplate k8s-b could not be found"),
        "{}",
        text(&out)
    );
    let list = ok_json(ep, &["coe", "cluster", "template", "list", "-f", "json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Clusters can be listed (none yet), and a missing one is reported.
    assert_eq!(
        ok_json(ep, &["coe", "cluster", "list", "-f", "json"]),
        serde_json::json!([])
    );
    let out = osc(ep, &["coe", "cluster", "show", "nope"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("Cluster nope could not be found"),
        "{}",
        text(&out)
    );

    // The all-in-one's conductor heartbeats, so it is listed as up.
    let services = ok_json(ep, &["coe", "service", "list", "-f", "json"]);
    let first = &services.as_array().unwrap()[0];
    assert_eq!(first["binary"], "magnum-conductor", "{services}");
    assert_eq!(first["state"], "up");
    let out = osc(ep, &["coe", "stats", "list", "default"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("clusters"), "{}", text(&out));

    // Quotas (the default identity is an admin).
    let q = &["--project-id", "proj-a", "--resource", "Cluster"];
    let run_q = |verb: &str, extra: &[&str]| {
        let mut args = vec!["coe", "quotas", verb];
        args.extend_from_slice(q);
        args.extend_from_slice(extra);
        osc(ep, &args)
    };
    let out = run_q("create", &["--hard-limit", "5"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run_q("show", &[]);
    assert!(
        text(&out).contains("proj-a") && text(&out).contains('5'),
        "{}",
        text(&out)
    );
    let out = run_q("update", &["--hard-limit", "9"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = osc(ep, &["coe", "quotas", "list", "--all-tenants"]);
    assert!(
        out.status.success() && text(&out).contains("proj-a"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains('9'), "{}", text(&out));
    let out = run_q("delete", &[]);
    assert!(out.status.success(), "{}", text(&out));
    // python-magnumclient reports a failed delete but exits 0.
    let out = run_q("delete", &[]);
    assert!(
        text(&out).contains("Quota could not be found"),
        "{}",
        text(&out)
    );

    drop(server);
    std::fs::remove_dir_all(dir).ok();
}
