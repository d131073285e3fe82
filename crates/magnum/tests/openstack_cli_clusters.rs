//! The real `openstack coe cluster …` and `openstack coe nodegroup …`
//! commands (python-openstackclient and python-magnumclient from PyPI,
//! unchanged, no Keystone) driving clusters through their whole life on the
//! fake driver: against `magnum all-in-one`, and against separate `magnum
//! api` and `magnum conductor` processes talking over RabbitMQ.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::process::Command;

use serde_json::Value;
use support::*;

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

/// openssl's verdict on `args`, run in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The files `cluster config` wrote for a TLS cluster: ca.pem is the CA our
/// API serves; cert.pem is signed by it, for the user Magnum's client asks
/// as; key.pem is that certificate's key.
fn check_cert_files(url: &str, uuid: &str, dir: &std::path::Path) {
    let (s, ca) = http(url, "GET", &format!("/v1/certificates/{uuid}"), None);
    assert_eq!(s, 200, "{ca}");
    let ca: Value = serde_json::from_str(&ca).unwrap();
    let written = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    assert_eq!(written.trim(), ca["pem"].as_str().unwrap().trim());
    assert!(openssl(dir, &["verify", "-CAfile", "ca.pem", "cert.pem"]).contains("cert.pem: OK"));
    let subject = openssl(dir, &["x509", "-in", "cert.pem", "-noout", "-subject"]);
    assert!(subject.contains("admin"), "{subject}");
    let cert_key = openssl(dir, &["x509", "-in", "cert.pem", "-noout", "-pubkey"]);
    let key = openssl(dir, &["pkey", "-in", "key.pem", "-pubout"]);
    assert_eq!(cert_key, key, "key.pem is not cert.pem's key");
    let dates = openssl(
        dir,
        &["x509", "-in", "cert.pem", "-noout", "-checkend", "3600"],
    );
    assert!(dates.contains("will not expire"), "{dates}");
}

fn base64_decode(s: &str) -> Vec<u8> {
    let out = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(s.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

/// `openstack coe cluster config`, unchanged, for a Kubernetes cluster, a
/// Swarm cluster and a cluster without TLS: every file it writes checked.
#[test]
fn cluster_config_writes_what_each_coe_needs() {
    let dir = tempdir("osc-config");
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
        &[
            ("MAGNUM_FAKE_CLOUD", cloud.to_str().unwrap()),
            ("MAGNUM_LOG", "debug"),
        ],
        "listening on ",
    );
    let url = server.url.as_str();
    let endpoint = format!("{url}/v1");
    let ep = endpoint.as_str();
    for (name, coe, extra) in [
        ("k8s", "kubernetes", None),
        ("swarm", "swarm-mode", None),
        ("plain", "kubernetes", Some("--tls-disabled")),
    ] {
        let mut args = vec![
            "coe",
            "cluster",
            "template",
            "create",
            name,
            "--coe",
            coe,
            "--image",
            "img",
            "--external-network",
            "public",
            "--driver",
            "fake",
            "--labels",
            "fake_seconds=0",
        ];
        args.extend(extra);
        ok(ep, &args);
        ok(
            ep,
            &["coe", "cluster", "create", name, "--cluster-template", name],
        );
    }
    let uuid_of = |name: &str| {
        status_is(url, name, "CREATE_COMPLETE")["uuid"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // Kubernetes: a kubeconfig with the CA, a client certificate and its
    // key embedded, and the same three as files with --output-certs.
    let k8s = uuid_of("k8s");
    let out_dir = dir.join("k8s");
    std::fs::create_dir_all(&out_dir).unwrap();
    let d = out_dir.to_str().unwrap();
    let out = ok(
        ep,
        &[
            "coe",
            "cluster",
            "config",
            "k8s",
            "--dir",
            d,
            "--output-certs",
        ],
    );
    assert_eq!(out.trim(), format!("export KUBECONFIG={d}/config"));
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["ca.pem", "cert.pem", "config", "key.pem"]);
    check_cert_files(url, &k8s, &out_dir);
    let kubeconfig: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(out_dir.join("config")).unwrap()).unwrap();
    let cluster = &kubeconfig["clusters"][0];
    assert_eq!(cluster["name"].as_str(), Some("k8s"));
    assert_eq!(
        cluster["cluster"]["server"].as_str(),
        Some("https://10.0.0.1:6443")
    );
    let user = &kubeconfig["users"][0]["user"];
    for (field, file) in [
        (&cluster["cluster"]["certificate-authority-data"], "ca.pem"),
        (&user["client-certificate-data"], "cert.pem"),
        (&user["client-key-data"], "key.pem"),
    ] {
        let embedded = base64_decode(field.as_str().unwrap());
        assert_eq!(
            embedded,
            std::fs::read(out_dir.join(file)).unwrap(),
            "{file} differs from the kubeconfig's"
        );
    }
    assert_eq!(kubeconfig["current-context"].as_str(), Some("default"));

    // Swarm: a Docker environment pointing at the three files beside it.
    let swarm = uuid_of("swarm");
    let out_dir = dir.join("swarm");
    std::fs::create_dir_all(&out_dir).unwrap();
    let d = out_dir.to_str().unwrap();
    let out = ok(
        ep,
        &[
            "coe",
            "cluster",
            "config",
            "swarm",
            "--dir",
            d,
            "--output-certs",
        ],
    );
    assert_eq!(
        out.trim(),
        format!(
            "export DOCKER_HOST=tcp://10.0.0.1:2376\nexport DOCKER_CERT_PATH={d}\nexport DOCKER_TLS_VERIFY=True"
        )
    );
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["ca.pem", "cert.pem", "key.pem"]);
    check_cert_files(url, &swarm, &out_dir);

    // Without TLS: a kubeconfig with no credentials, nothing else.
    uuid_of("plain");
    let out_dir = dir.join("plain");
    std::fs::create_dir_all(&out_dir).unwrap();
    let d = out_dir.to_str().unwrap();
    ok(ep, &["coe", "cluster", "config", "plain", "--dir", d]);
    let names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, ["config"]);
    let plain = std::fs::read_to_string(out_dir.join("config")).unwrap();
    assert!(!plain.contains("-data:"), "{plain}");

    // No private key reached a log line, even at debug level: not the
    // client keys, not the CA keys the conductor made (read back from the
    // x509keypair table).
    let logs = server.logs();
    assert!(logs.contains("POST /v1/certificates"), "{logs}");
    assert!(!logs.contains("PRIVATE KEY"), "a key in the log");
    let stored = Command::new(venv().join("bin/python"))
        .args([
            "-c",
            "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); \
             print('\\n'.join(k for (k,) in db.execute('select private_key from x509keypair')))",
            dir.join("data/magnum.sqlite").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let mut keys = String::from_utf8_lossy(&stored.stdout).to_string();
    assert!(keys.contains("ENCRYPTED PRIVATE KEY"), "{}", text(&stored));
    for d in ["k8s", "swarm"] {
        keys.push_str(&std::fs::read_to_string(dir.join(d).join("key.pem")).unwrap());
    }
    for line in keys
        .lines()
        .filter(|l| l.len() > 20 && !l.starts_with("-----"))
    {
        assert!(
            !logs.contains(line),
            "a private key line in the log: {line}"
        );
    }

    drop(server);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn cluster_commands_against_all_in_one() {
    let dir = tempdir("osc-clusters");
    let conf = write_conf(&dir, "[api]\nport = 0\n[conductor]\nsync_interval = 1\n");
    let server = all_in_one_on_fake_cloud(&dir, &conf);
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
    // `magnum api` without authentication refuses requests without
    // identity headers, which the client with no auth sends none of.
    scenario(&identity_proxy(&api.url));
    drop(conductor);
    drop(api);
    std::fs::remove_dir_all(dir).ok();
}
