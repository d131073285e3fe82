//! A mixed deployment: our `magnum api` and `magnum conductor` in front of
//! upstream's own `magnum-conductor` (PyPI magnum 23) running PyPI
//! `magnum-cluster-api`, a Cluster API driver we do not ship, declared in
//! `[drivers] external_drivers`; one MariaDB database, one RabbitMQ.
//!
//! There is no management cluster here: the Kubernetes API the driver
//! talks to is `tests/peers/k8s_standin.py`, which this test controls, an
//! empty cluster with Cluster API's core installed but not its OpenStack
//! provider (so the driver's create fails at its first OpenStack object,
//! in its own words), that also answers the few OpenStack calls and the
//! `helm` command the driver's delete makes. Through the real `openstack
//! coe` client: a template of that driver is created and shown, a cluster
//! create reaches the Python driver and fails with its reason, which our
//! API shows, and the delete completes; our conductor, syncing every
//! second, leaves that cluster alone.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use magnum_db::testing::{mysql_server, TestDb};
use magnum_db::Backend;
use support::*;

const DRIVER: &str = "k8s_cluster_api_ubuntu";

/// A child in a process group of its own, killed with the whole group
/// (upstream's conductor forks a worker and ignores SIGTERM for a while).
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-9", "--", &pgid]).status();
        let _ = self.0.wait();
    }
}

fn spawn_group(cmd: &mut Command) -> Group {
    Group(cmd.process_group(0).spawn().unwrap())
}

/// Start the stand-in management cluster; its port comes back.
fn standin(dir: &Path) -> (Group, u16) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/k8s_standin.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("standin.log")).unwrap(),
        ))
        .process_group(0)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the stand-in printed {line:?} instead of its port"));
    // The driver's delete runs `helm`: the stand-in answers as helm with
    // no release of that name.
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::os::unix::fs::symlink(&script, dir.join("bin/helm")).unwrap();
    (Group(child), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_api_driver_behind_our_api() {
    let capi = named_venv("capi");
    let conductor_bin = capi.join("bin/magnum-conductor");
    assert!(
        conductor_bin.exists(),
        "{} is missing: run scripts/peers.sh capi",
        conductor_bin.display()
    );
    let testdb = TestDb::create_migrated(Backend::MySql).await;
    let db = testdb.migrated().await;
    let dir = tempdir("external-conductor");
    let id = uuid_str();
    let (_standin, port) = standin(&dir);
    let server = mysql_server();
    let host_part = server.split("://").nth(1).unwrap().trim_end_matches('/');
    let db_url = format!("mysql+pymysql://{host_part}/{}", testdb.name());
    let exchange = format!("magnum-ext-{id}");
    let theirs = format!("magnum-conductor-capi-{id}");
    let ours = format!("magnum-conductor-rs-{id}");
    let bus = "rabbit://guest:guest@127.0.0.1:5672/";

    // Upstream's conductor: its own topic, certificates in the database,
    // Keystone (for the driver's delete) and the management cluster both
    // the stand-in.
    let identity = format!("http://127.0.0.1:{port}/identity/v3");
    let auth = format!(
        "auth_url = {identity}\nauth_type = password\nusername = magnum\npassword = secret\n\
         project_name = service\nuser_domain_name = Default\nproject_domain_name = Default\n"
    );
    let upstream_dir = dir.join("upstream");
    std::fs::create_dir_all(upstream_dir.join("lock")).unwrap();
    let upstream_conf = write_conf(
        &upstream_dir,
        &format!(
            "[DEFAULT]\ntransport_url = {bus}\ncontrol_exchange = {exchange}\nhost = capi-{id}\n\
             periodic_interval_max = 5\nstate_path = {state}\n\
             [database]\nconnection = {db_url}\n\
             [conductor]\ntopic = {theirs}\nworkers = 1\n\
             [certificates]\ncert_manager_type = x509keypair\n\
             [keystone_authtoken]\n{auth}[keystone_auth]\n{auth}\
             [oslo_concurrency]\nlock_path = {state}/lock\n\
             [oslo_messaging_notifications]\ndriver = noop\n\
             [kubernetes]\nhealth_polling_interval = 3600\n",
            state = upstream_dir.display()
        ),
    );
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    \
             server: http://127.0.0.1:{port}\ncontexts:\n- name: standin\n  context:\n    \
             cluster: standin\n    user: standin\ncurrent-context: standin\nusers:\n\
             - name: standin\n  user:\n    token: standin\n"
        ),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let _upstream = spawn_group(
        Command::new(&conductor_bin)
            .args(["--config-file", upstream_conf.to_str().unwrap()])
            .env("KUBECONFIG", &kubeconfig)
            // magnum 23 runs its conductor on plain threads, and the driver
            // calls its Rust half through eventlet's thread pool, which then
            // blocks for good on any thread but the first: no pool.
            .env("EVENTLET_THREADPOOL_SIZE", "0")
            .env("PATH", &path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("upstream-conductor.log")).unwrap(),
            )),
    );

    // Ours: the API and a conductor that syncs every second, both told
    // that the driver is served on upstream's topic.
    let conf = write_conf(
        &dir,
        &format!(
            "[DEFAULT]\nauth_strategy = noauth\nhost = ours-{id}\ntransport_url = {bus}\n\
             control_exchange = {exchange}\nreport_interval = 1\n\
             [database]\nconnection = {db_url}\n\
             [conductor]\ntopic = {ours}\nsync_interval = 1\n\
             [drivers]\nexternal_drivers = {DRIVER}:vm:ubuntu:kubernetes\n\
             external_topic = {theirs}\n[api]\nport = 0\n"
        ),
    );
    let conf = conf.to_str().unwrap();
    let api = start(&["--config-file", conf, "api"]);
    let conductor = start_until(
        &["--config-file", conf, "conductor"],
        "conductor serving RPC topic",
    );
    // `magnum api` without authentication refuses requests without
    // identity headers, which the client with no auth sends none of.
    let endpoint = format!("{}/v1", identity_proxy(&api.url));
    let upstream_log =
        || std::fs::read_to_string(dir.join("upstream-conductor.log")).unwrap_or_default();
    let registered = std::panic::catch_unwind(|| {
        wait_for(&api.url, "/v1/mservices", 90, |_, v| {
            v["mservices"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["host"] == format!("capi-{id}")))
        })
    });
    assert!(
        registered.is_ok(),
        "upstream's conductor did not register; its log:\n{}",
        upstream_log()
    );

    // The template, through the real client: our API selects the driver
    // it does not run.
    let t = ok_json(
        &endpoint,
        &[
            "coe",
            "cluster",
            "template",
            "create",
            "capi",
            "--coe",
            "kubernetes",
            "--image",
            "ubuntu-2204-kube-v1.31",
            "--external-network",
            "public",
            "--flavor",
            "m1.small",
            "--master-flavor",
            "m1.medium",
            "--keypair",
            "kp",
            "--network-driver",
            "calico",
            "--driver",
            DRIVER,
            // The driver cannot read a cluster without it ("failed to
            // extract field Cluster.labels").
            "--labels",
            "kube_tag=v1.31.1",
            "-f",
            "json",
        ],
    );
    assert_eq!(t["driver"], DRIVER, "{t}");
    assert_eq!(t["labels"]["kube_tag"], "v1.31.1", "{t}");
    let shown = ok_json(
        &endpoint,
        &["coe", "cluster", "template", "show", "capi", "-f", "json"],
    );
    assert_eq!(shown["uuid"], t["uuid"]);
    assert_eq!(shown["driver"], DRIVER);

    // The create reaches the Python driver, which fails it in its own
    // words (no OpenStack provider in the management cluster).
    let out = osc(
        &endpoint,
        &[
            "coe",
            "cluster",
            "create",
            "k1",
            "--cluster-template",
            "capi",
            "--master-count",
            "1",
            "--node-count",
            "1",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let failed = std::panic::catch_unwind(|| {
        wait_for(&api.url, "/v1/clusters/k1", 90, |_, v| {
            v["status"] == "CREATE_FAILED"
        })
    })
    .unwrap_or_else(|_| {
        panic!(
            "the cluster did not fail as the driver says; upstream's conductor:\n{}",
            upstream_log()
        )
    });
    let uuid = failed["uuid"].as_str().unwrap().to_string();
    let shown = ok_json(&endpoint, &["coe", "cluster", "show", "k1", "-f", "json"]);
    let reason = shown["status_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("openstackclustertemplates") && reason.contains("NotFound"),
        "the driver's own reason: {shown}"
    );
    assert_eq!(shown["status"], "CREATE_FAILED");
    // Upstream's conductor stored it with its node groups and CA, which
    // our API serves like any other.
    let groups = ok_json(&endpoint, &["coe", "nodegroup", "list", "k1", "-f", "json"]);
    assert_eq!(groups.as_array().unwrap().len(), 2, "{groups}");
    // Its CA, and a CSR signed by it with the key upstream's conductor
    // stored: the certificate verifies against that CA.
    let ca = ok(&endpoint, &["coe", "ca", "show", "k1"]);
    assert!(ca.contains("BEGIN CERTIFICATE"), "{ca}");
    std::fs::write(dir.join("ca.pem"), &ca).unwrap();
    let out = run(Command::new("openssl").current_dir(&dir).args([
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=admin",
        "-keyout",
        "client.key",
        "-out",
        "client.csr",
    ]));
    assert!(out.status.success(), "{}", text(&out));
    let csr = dir.join("client.csr");
    let signed = ok(
        &endpoint,
        &["coe", "ca", "sign", "k1", csr.to_str().unwrap()],
    );
    std::fs::write(dir.join("client.pem"), &signed).unwrap();
    let out = run(Command::new("openssl").current_dir(&dir).args([
        "verify",
        "-CAfile",
        "ca.pem",
        "client.pem",
    ]));
    assert!(out.status.success(), "{}\n{signed}", text(&out));

    // The delete is upstream's conductor's, to the end.
    let out = osc(&endpoint, &["coe", "cluster", "delete", "k1"]);
    assert!(out.status.success(), "{}", text(&out));
    let gone = std::panic::catch_unwind(|| {
        wait_for(&api.url, &format!("/v1/clusters/{uuid}"), 120, |s, _| {
            s == 404
        })
    });
    assert!(
        gone.is_ok(),
        "the delete did not complete; upstream's conductor:\n{}",
        upstream_log()
    );

    // Ours left it alone all along: no claim, no sync, no verdict.
    let ours_log = conductor.logs();
    assert!(
        !ours_log.contains(&uuid),
        "our conductor touched the external cluster:\n{ours_log}"
    );
    assert!(
        ours_log.contains(DRIVER),
        "start-up names the external driver:\n{ours_log}"
    );
    drop(conductor);
    drop(api);
    db.close().await;
    std::fs::remove_dir_all(&dir).ok();
}
