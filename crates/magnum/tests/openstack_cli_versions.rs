//! The README's quick start driven by both lines of python-magnumclient
//! from PyPI, unchanged, against `magnum all-in-one` without Keystone:
//! 5.0.0 (the peers virtualenv, python-openstackclient 10.5.0) and the last
//! 4.x, 4.11.0 (`scripts/peers.sh magnumclient4`, with the
//! python-openstackclient 10.1.0 openstack/requirements paired it with).
//! Clusters run on the fake driver, as in `openstack_cli_clusters.rs`.
//!
//! The two differ in `update`: 4.x takes JSON-patch style arguments
//! (`cluster update c1 replace node_count=3`) and drops `--rollback`; 5.0
//! takes named flags (`cluster update c1 --node-count 3`) and sends
//! `--rollback` as `PATCH /v1/clusters/c1/?rollback=True`. The requests
//! each sends are read from its `--debug` log and checked here.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::*;

#[derive(Clone, Copy, PartialEq)]
enum Client {
    /// python-magnumclient 4.11.0: JSON-patch style `update`.
    V4,
    /// python-magnumclient 5.0.0: `update` with named flags.
    V5,
}

struct Cli {
    venv: PathBuf,
    endpoint: String,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = openstack_command_in(&self.venv);
        cmd.args(["--os-auth-type", "none", "--os-endpoint", &self.endpoint])
            .args(args);
        run(&mut cmd)
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "openstack {args:?} ({}) failed:\n{}",
            self.venv.display(),
            text(&out)
        );
        out
    }

    fn stdout(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.ok(args).stdout).to_string()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-f", "json"]);
        let stdout = self.stdout(&args);
        let start = stdout.find(['{', '[']).unwrap_or(0);
        serde_json::from_str(&stdout[start..])
            .unwrap_or_else(|e| panic!("openstack {args:?}: not JSON ({e}):\n{stdout}"))
    }

    /// The requests keystoneauth logged under `--debug`: the `REQ: curl`
    /// lines, each with its method, URL and body.
    fn requests(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec!["--debug"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("REQ: curl"))
            .map(str::to_string)
            .collect()
    }
}

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// The one request of `reqs` with `method` on a path ending in `tail`.
fn request<'a>(reqs: &'a [String], method: &str, tail: &str) -> &'a str {
    reqs.iter()
        .find(|r| {
            r.contains(&format!("-X {method} ")) && r.split_whitespace().any(|w| w.ends_with(tail))
        })
        .unwrap_or_else(|| panic!("no {method} …{tail} among {reqs:#?}"))
}

/// Fail loudly when `venv` holds another python-magnumclient than `version`.
fn assert_magnumclient(venv: &Path, version: &str) {
    let dist = format!("python_magnumclient-{version}.dist-info");
    let found = std::fs::read_dir(venv.join("lib")).unwrap().any(|py| {
        py.unwrap()
            .path()
            .join("site-packages")
            .join(&dist)
            .exists()
    });
    assert!(found, "{} has no {dist}", venv.display());
}

fn quick_start(client: Client, venv: PathBuf) {
    assert_magnumclient(
        &venv,
        match client {
            Client::V4 => "4.11.0",
            Client::V5 => "5.0.0",
        },
    );
    let dir = tempdir("osc-versions");
    let conf = write_conf(&dir, "[api]\nport = 0\n[conductor]\nsync_interval = 1\n");
    let server = all_in_one_on_fake_cloud(&dir, &conf);
    let url = server.url.as_str();
    let cli = Cli {
        venv,
        endpoint: format!("{url}/v1"),
    };

    // Templates, as the README has them.
    cli.ok(&[
        "coe",
        "cluster",
        "template",
        "create",
        "k8s",
        "--coe",
        "kubernetes",
        "--image",
        "fedora-coreos-40",
        "--external-network",
        "public",
        "--flavor",
        "m1.small",
        "--network-driver",
        "calico",
        "--labels",
        "kube_tag=v1.30",
    ]);
    let list = cli.json(&["coe", "cluster", "template", "list"]);
    assert_eq!(names(&list), ["k8s"], "{list}");
    let shown = cli.json(&["coe", "cluster", "template", "show", "k8s"]);
    assert_eq!(shown["coe"], "kubernetes", "{shown}");
    assert_eq!(shown["image_id"], "fedora-coreos-40");
    assert_eq!(shown["network_driver"], "calico");
    assert_eq!(shown["labels"]["kube_tag"], "v1.30");
    let update: &[&str] = match client {
        Client::V5 => &["--docker-volume-size", "10", "--label", "foo=bar"],
        Client::V4 => &[
            "replace",
            "docker_volume_size=10",
            "labels=kube_tag=v1.30,foo=bar",
        ],
    };
    let mut args = vec!["coe", "cluster", "template", "update", "k8s"];
    args.extend_from_slice(update);
    let reqs = cli.requests(&args);
    let patch = request(&reqs, "PATCH", "/v1/clustertemplates/k8s");
    match client {
        Client::V5 => {
            assert!(
                patch.contains(r#"{"op": "add", "path": "/labels/foo", "value": "bar"}"#),
                "{patch}"
            );
            assert!(
                patch.contains(r#"{"op": "replace", "path": "/docker_volume_size", "value": 10}"#),
                "{patch}"
            );
        }
        Client::V4 => {
            // The labels as a Python literal, which upstream reads with
            // ast.literal_eval.
            assert!(
                patch.contains(
                    r#""path": "/labels", "value": "{'kube_tag': 'v1.30', 'foo': 'bar'}""#
                ),
                "{patch}"
            );
        }
    }
    let shown = cli.json(&["coe", "cluster", "template", "show", "k8s"]);
    assert_eq!(shown["docker_volume_size"], 10, "{shown}");
    assert_eq!(shown["labels"]["foo"], "bar", "{shown}");
    assert_eq!(shown["labels"]["kube_tag"], "v1.30", "{shown}");

    // Clusters: on a template of the fake driver (the README's would need
    // Heat). 4.x has no `--driver`: it patches the template's.
    let mut args = vec![
        "coe",
        "cluster",
        "template",
        "create",
        "fake",
        "--coe",
        "kubernetes",
        "--image",
        "fedora-coreos-40",
        "--external-network",
        "public",
        "--flavor",
        "m1.small",
        "--keypair",
        "kp",
        "--labels",
        "fake_seconds=0",
    ];
    match client {
        Client::V5 => {
            args.extend(["--driver", "fake"]);
            cli.ok(&args);
        }
        Client::V4 => {
            cli.ok(&args);
            cli.ok(&[
                "coe",
                "cluster",
                "template",
                "update",
                "fake",
                "replace",
                "driver=fake",
            ]);
        }
    }
    let out = cli.stdout(&[
        "coe",
        "cluster",
        "create",
        "c1",
        "--cluster-template",
        "fake",
        "--node-count",
        "2",
    ]);
    assert!(out.contains("accepted"), "{out}");
    let c = wait_for(url, "/v1/clusters/c1", 90, |_, v| {
        v["status"] == "CREATE_COMPLETE"
    });
    let uuid = c["uuid"].as_str().unwrap().to_string();
    let list = cli.json(&["coe", "cluster", "list"]);
    assert_eq!(names(&list), ["c1"], "{list}");
    assert_eq!(list[0]["node_count"], 2, "{list}");
    let shown = cli.json(&["coe", "cluster", "show", "c1"]);
    assert_eq!(shown["uuid"], uuid.as_str(), "{shown}");
    assert_eq!(shown["status"], "CREATE_COMPLETE");
    assert_eq!(shown["api_address"], "https://10.0.0.1:6443");

    // update --rollback: 5.0 sends it as a query; 4.x never sends it.
    let update: &[&str] = match client {
        Client::V5 => &["--node-count", "3", "--rollback"],
        Client::V4 => &["replace", "node_count=3", "--rollback"],
    };
    let mut args = vec!["coe", "cluster", "update", "c1"];
    args.extend_from_slice(update);
    let reqs = cli.requests(&args);
    let tail = match client {
        Client::V5 => "/v1/clusters/c1/?rollback=True",
        Client::V4 => "/v1/clusters/c1",
    };
    let patch = request(&reqs, "PATCH", tail);
    assert!(
        patch.contains(r#"-d '[{"op": "replace", "path": "/node_count", "value": 3}]'"#),
        "{patch}"
    );
    if client == Client::V4 {
        assert!(!reqs.iter().any(|r| r.contains("rollback")), "{reqs:#?}");
    }
    wait_for(url, &format!("/v1/clusters/{uuid}"), 90, |_, v| {
        v["status"] == "UPDATE_COMPLETE" && v["node_count"] == 3
    });

    let reqs = cli.requests(&["coe", "cluster", "resize", "c1", "1"]);
    let post = request(
        &reqs,
        "POST",
        &format!("/v1/clusters/{uuid}/actions/resize"),
    );
    assert!(post.contains(r#"-d '{"node_count": 1}'"#), "{post}");
    wait_for(url, &format!("/v1/clusters/{uuid}"), 90, |_, v| {
        v["status"] == "UPDATE_COMPLETE" && v["node_count"] == 1
    });

    cli.ok(&[
        "coe",
        "nodegroup",
        "create",
        "c1",
        "ng1",
        "--node-count",
        "2",
    ]);
    wait_for(url, &format!("/v1/clusters/{uuid}"), 90, |_, v| {
        v["status"] == "UPDATE_COMPLETE" && v["node_count"] == 3
    });
    let ngs = cli.json(&["coe", "nodegroup", "list", "c1"]);
    assert_eq!(
        names(&ngs),
        ["default-master", "default-worker", "ng1"],
        "{ngs}"
    );

    let conf_dir = dir.join("c1");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let d = conf_dir.to_str().unwrap();
    let out = cli.stdout(&["coe", "cluster", "config", "c1", "--dir", d]);
    assert_eq!(out.trim(), format!("export KUBECONFIG={d}/config"));
    let kubeconfig = std::fs::read_to_string(Path::new(d).join("config")).unwrap();
    assert!(
        kubeconfig.contains("server: https://10.0.0.1:6443"),
        "{kubeconfig}"
    );
    assert!(
        kubeconfig.contains("client-certificate-data:"),
        "{kubeconfig}"
    );

    let services = cli.json(&["coe", "service", "list"]);
    assert!(
        services
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["binary"] == "magnum-conductor" && s["state"] == "up"),
        "{services}"
    );
    let stats = cli.stdout(&["coe", "stats", "list", "default"]);
    assert!(
        stats.contains("| clusters | 1 ") && stats.contains("| nodes    | 4 "),
        "{stats}"
    );
    cli.ok(&[
        "coe",
        "quotas",
        "create",
        "--project-id",
        "P",
        "--resource",
        "Cluster",
        "--hard-limit",
        "5",
    ]);
    let (s, body) = http(url, "GET", "/v1/quotas/P/Cluster", None);
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["hard_limit"],
        5
    );

    let out = cli.stdout(&["coe", "cluster", "delete", "c1"]);
    assert!(out.contains("accepted"), "{out}");
    wait_for(url, &format!("/v1/clusters/{uuid}"), 90, |s, _| s == 404);
    cli.ok(&["coe", "cluster", "template", "delete", "k8s", "fake"]);
    let list = cli.json(&["coe", "cluster", "template", "list"]);
    assert_eq!(list, serde_json::json!([]));

    drop(server);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn quick_start_with_magnumclient_5() {
    quick_start(Client::V5, venv());
}

#[test]
fn quick_start_with_magnumclient_4() {
    quick_start(Client::V4, named_venv("magnumclient4"));
}
