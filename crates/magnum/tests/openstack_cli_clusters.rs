//! The real `openstack coe cluster …` and `openstack coe nodegroup …`
//! commands (python-openstackclient and python-magnumclient from PyPI,
//! unchanged, no Keystone) driving clusters through their whole life on the
//! fake driver: against `magnum all-in-one`, and against separate `magnum
//! api` and `magnum conductor` processes talking over RabbitMQ.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::process::{Command, Output};

use serde_json::Value;
use support::*;

fn osc(endpoint: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(venv().join("bin/openstack"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("LANG", "C.UTF-8")
        .env("SHELL", "/bin/bash")
        .args(["--os-auth-type", "none", "--os-endpoint", endpoint])
        .args(args);
    run(&mut cmd)
}

fn ok(endpoint: &str, args: &[&str]) -> String {
    let out = osc(endpoint, args);
    assert!(
        out.status.success(),
        "openstack {args:?} failed:\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn ok_json(endpoint: &str, args: &[&str]) -> Value {
    let stdout = ok(endpoint, args);
    let start = stdout.find(['{', '[']).unwrap_or(0);
    serde_json::from_str(&stdout[start..])
        .unwrap_or_else(|e| panic!("openstack {args:?}: not JSON ({e}):\n{stdout}"))
}

fn status_is(url: &str, cluster: &str, status: &str) -> Value {
    wait_for(url, &format!("/v1/clusters/{cluster}"), 90, |_, v| {
        v["status"] == status
    })
}

/// One cluster's whole life through the CLI.
fn scenario(url: &str) {
    let endpoint = format!("{url}/v1");
    let ep = endpoint.as_str();
    for name in ["t1", "t2"] {
        ok(
            ep,
            &[
                "coe",
                "cluster",
                "template",
                "create",
                name,
                "--coe",
                "kubernetes",
                "--image",
                "fcos",
                "--external-network",
                "public",
                "--driver",
                "fake",
                "--flavor",
                "m1.small",
                "--master-flavor",
                "m1.medium",
                "--keypair",
                "kp",
                "--labels",
                "fake_seconds=1",
            ],
        );
    }
    let out = ok(
        ep,
        &[
            "coe",
            "cluster",
            "create",
            "c1",
            "--cluster-template",
            "t1",
            "--node-count",
            "2",
            "--timeout",
            "30",
        ],
    );
    assert!(out.contains("accepted"), "{out}");
    let c = status_is(url, "c1", "CREATE_COMPLETE");
    let uuid = c["uuid"].as_str().unwrap().to_string();

    let list = ok_json(ep, &["coe", "cluster", "list", "-f", "json"]);
    let row = &list.as_array().unwrap()[0];
    assert_eq!(row["name"], "c1", "{list}");
    assert_eq!(row["status"], "CREATE_COMPLETE");
    assert_eq!(row["node_count"], 2);
    let shown = ok_json(ep, &["coe", "cluster", "show", "c1", "-f", "json"]);
    assert_eq!(shown["uuid"], uuid.as_str());
    assert_eq!(shown["keypair"], "kp");
    assert_eq!(shown["api_address"], "https://10.0.0.1:6443");
    assert_eq!(shown["master_flavor_id"], "m1.medium");

    ok(ep, &["coe", "cluster", "update", "c1", "--node-count", "3"]);
    let c = status_is(url, "c1", "UPDATE_COMPLETE");
    assert_eq!(c["node_count"], 3);

    ok(ep, &["coe", "cluster", "resize", "c1", "1"]);
    wait_for(url, &format!("/v1/clusters/{uuid}"), 90, |_, v| {
        v["status"] == "UPDATE_COMPLETE" && v["node_count"] == 1
    });

    let t2 = ok_json(
        ep,
        &["coe", "cluster", "template", "show", "t2", "-f", "json"],
    );
    ok(ep, &["coe", "cluster", "upgrade", "c1", "t2"]);
    wait_for(url, &format!("/v1/clusters/{uuid}"), 90, |_, v| {
        v["status"] == "UPDATE_COMPLETE" && v["cluster_template_id"] == t2["uuid"]
    });

    let ngs = ok_json(ep, &["coe", "nodegroup", "list", "c1", "-f", "json"]);
    let mut names: Vec<&str> = ngs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["default-master", "default-worker"], "{ngs}");
    let ng = ok_json(
        ep,
        &[
            "coe",
            "nodegroup",
            "show",
            "c1",
            "default-worker",
            "-f",
            "json",
        ],
    );
    assert_eq!(ng["node_count"], 1);
    assert_eq!(ng["status"], "UPDATE_COMPLETE");

    // A node group of its own: create, update, delete.
    ok(
        ep,
        &[
            "coe",
            "nodegroup",
            "create",
            "c1",
            "ng1",
            "--node-count",
            "2",
            "--max-nodes",
            "5",
        ],
    );
    wait_for(url, &format!("/v1/clusters/{uuid}"), 90, |_, v| {
        v["status"] == "UPDATE_COMPLETE" && v["node_count"] == 3
    });
    let ng = ok_json(ep, &["coe", "nodegroup", "show", "c1", "ng1", "-f", "json"]);
    assert_eq!(ng["status"], "CREATE_COMPLETE", "{ng}");
    assert_eq!(ng["max_node_count"], 5);
    ok(
        ep,
        &[
            "coe",
            "nodegroup",
            "update",
            "c1",
            "ng1",
            "--max-nodes",
            "4",
        ],
    );
    wait_for(url, &format!("/v1/clusters/{uuid}"), 90, |_, v| {
        v["status"] == "UPDATE_COMPLETE"
    });
    let ng = ok_json(ep, &["coe", "nodegroup", "show", "c1", "ng1", "-f", "json"]);
    assert_eq!(ng["max_node_count"], 4, "{ng}");
    ok(ep, &["coe", "nodegroup", "delete", "c1", "ng1"]);
    wait_for(url, &format!("/v1/clusters/{uuid}"), 90, |_, v| {
        v["status"] == "UPDATE_COMPLETE" && v["node_count"] == 1
    });

    // `stats list` prints a property table.
    let stats = ok(ep, &["coe", "stats", "list", "default"]);
    assert!(
        stats.contains("| clusters | 1 ") && stats.contains("| nodes    | 2 "),
        "{stats}"
    );
    let services = ok_json(ep, &["coe", "service", "list", "-f", "json"]);
    assert!(
        services
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["binary"] == "magnum-conductor" && s["state"] == "up"),
        "{services}"
    );

    // `cluster config` writes a kubeconfig with a client certificate our
    // CA signed.
    let cfg_dir = std::env::temp_dir().join(format!("magnum-kubeconfig-{}", uuid_str()));
    std::fs::create_dir_all(&cfg_dir).unwrap();
    let out = ok(
        ep,
        &[
            "coe",
            "cluster",
            "config",
            "c1",
            "--dir",
            cfg_dir.to_str().unwrap(),
            "--output-certs",
        ],
    );
    assert!(out.contains("KUBECONFIG"), "{out}");
    let kubeconfig = std::fs::read_to_string(cfg_dir.join("config")).unwrap();
    assert!(
        kubeconfig.contains("server: https://10.0.0.1:6443"),
        "{kubeconfig}"
    );
    assert!(kubeconfig.contains("name: c1"), "{kubeconfig}");
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        assert!(cfg_dir.join(f).exists(), "{f} missing");
    }
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile", "ca.pem", "cert.pem"])
        .current_dir(&cfg_dir)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let subject = Command::new("openssl")
        .args(["x509", "-in", "cert.pem", "-noout", "-subject"])
        .current_dir(&cfg_dir)
        .output()
        .unwrap();
    let subject = String::from_utf8_lossy(&subject.stdout).to_string();
    assert!(subject.contains("admin"), "{subject}");
    std::fs::remove_dir_all(&cfg_dir).ok();

    // A refused update says why and changes nothing.
    let out = osc(ep, &["coe", "cluster", "update", "c1", "--name", "x"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("cannot change cluster property(ies) name"),
        "{}",
        text(&out)
    );

    let out = ok(ep, &["coe", "cluster", "delete", "c1"]);
    assert!(out.contains("accepted"), "{out}");
    wait_for(url, &format!("/v1/clusters/{uuid}"), 90, |s, _| s == 404);
    let list = ok_json(ep, &["coe", "cluster", "list", "-f", "json"]);
    assert_eq!(list, serde_json::json!([]));
}

#[test]
fn cluster_commands_against_all_in_one() {
    let dir = tempdir("osc-clusters");
    let conf = write_conf(&dir, "[api]\nport = 0\n[conductor]\nsync_interval = 1\n");
    let cloud = dir.join("cloud");
    let server = start_env(
        &[
            "--config-file",
            conf.to_str().unwrap(),
            "all-in-one",
            "--data-dir",
            dir.join("data").to_str().unwrap(),
        ],
        &[("MAGNUM_FAKE_CLOUD", cloud.to_str().unwrap())],
        "listening on ",
    );
    scenario(&server.url);
    drop(server);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn cluster_commands_against_api_and_conductor() {
    let dir = tempdir("osc-split");
    let cloud = dir.join("cloud");
    let conf = write_conf(
        &dir,
        &format!(
            "[DEFAULT]\nauth_strategy = noauth\nhost = split-1\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\n\
             control_exchange = magnum-split-{}\nreport_interval = 1\n\
             [database]\nconnection = sqlite:///{}/magnum.sqlite\n\
             [conductor]\nsync_interval = 1\n[api]\nport = 0\n",
            uuid_str(),
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
    scenario(&api.url);
    drop(conductor);
    drop(api);
    std::fs::remove_dir_all(dir).ok();
}
