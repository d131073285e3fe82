//! Upstream Magnum's own API test suite, `magnum_tempest_plugin.tests.api`
//! (PyPI `magnum-tempest-plugin`, run by PyPI `tempest`, both pinned in
//! `scripts/tempest-requirements.txt`), against ours: a real Keystone
//! (tempest makes a project and users for each test), a real Glance with
//! the image the suite names, our all-in-one with its Heat drivers on the
//! real Heat (the test environment standing in for Nova's servers and the
//! network, as in `heat_clusters.rs`), and the Nova/Neutron double, which
//! keeps the keypairs the suite makes per user.
//!
//! Every test runs but those `tempest-exclude.txt` names, each with its
//! reason; the test fails when any other fails, or when none ran.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::cloud::*;
use support::*;

/// The image the suite's templates name, public so that every project
/// tempest makes can see it.
const IMAGE: &str = "fedora-coreos-tempest";

/// The whole run's bound (it takes a few minutes).
const RUN_SECS: u64 = 40 * 60;

/// The tempest virtualenv: `MAGNUM_TEMPEST_VENV`, else made by
/// `scripts/tempest.sh venv`.
fn tempest_venv() -> PathBuf {
    if let Some(v) = std::env::var_os("MAGNUM_TEMPEST_VENV") {
        return PathBuf::from(v);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/tempest.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg("venv")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/tempest.sh venv failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
}

/// The public image of [`IMAGE`] in the real Glance (made once).
fn public_image() {
    glance_with_image(&token("a-member", "project-a"));
    let admin = admin_token();
    let glance = "http://127.0.0.1:9393";
    let (s, _, list) = http_with(
        glance,
        "GET",
        &format!("/v2/images?name={IMAGE}&visibility=public"),
        &[("X-Auth-Token", &admin)],
        None,
    );
    assert_eq!(s, 200, "{list}");
    if serde_json::from_str::<Value>(&list).unwrap()["images"] == json!([]) {
        let body = json!({"name": IMAGE, "os_distro": "fedora-coreos", "visibility": "public",
                          "disk_format": "qcow2", "container_format": "bare"});
        let (s, _, b) = http_with(
            glance,
            "POST",
            "/v2/images",
            &[("X-Auth-Token", &admin)],
            Some(&body.to_string()),
        );
        assert_eq!(s, 201, "{b}");
    }
}

/// tempest.conf: identity v3 against the test Keystone, whose admin makes
/// each test's project and users; the cloud as the double knows it.
fn tempest_conf(ws: &Path) -> PathBuf {
    let conf = ws.join("etc/tempest.conf");
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\nlog_file = {log}\n\
             [auth]\nuse_dynamic_credentials = True\nadmin_username = admin\n\
             admin_password = admin-secret\nadmin_project_name = admin\n\
             admin_domain_name = Default\n\
             [identity]\nauth_version = v3\nuri_v3 = {KEYSTONE}/v3\nregion = RegionOne\n\
             [identity-feature-enabled]\napi_v2 = False\n\
             [service_available]\nmagnum = True\nnova = True\nneutron = False\n\
             glance = True\ncinder = False\nswift = False\n\
             [enforce_scope]\nmagnum = True\n\
             [magnum]\nimage_id = {IMAGE}\nnic_id = public\nkeypair_name = magnum-test\n\
             flavor_id = m1.small\nmaster_flavor_id = m1.medium\ndns_nameserver = 8.8.8.8\n\
             coe = kubernetes\ncopy_logs = False\ncopy_logs_success = False\n\
             cluster_creation_timeout = 10\ncluster_delete_timeout = 10\n",
            log = ws.join("tempest.log").display(),
        ),
    )
    .unwrap();
    conf
}

/// The counts of a tempest run's closing "Totals".
#[derive(Debug, Default)]
struct Totals {
    ran: u64,
    passed: u64,
    skipped: u64,
    failed: u64,
    unexpected: u64,
}

fn totals(out: &str) -> Totals {
    let mut t = Totals::default();
    let after = out.rsplit_once("Totals").map_or("", |(_, rest)| rest);
    let number = |line: &str| {
        line.split([':', ' '])
            .filter_map(|w| w.trim().parse().ok())
            .next()
            .unwrap_or(0)
    };
    for line in after.lines() {
        let line = line.trim().trim_start_matches("- ");
        if line.starts_with("Ran:") {
            t.ran = number(line);
        } else if line.starts_with("Passed:") {
            t.passed = number(line);
        } else if line.starts_with("Skipped:") {
            t.skipped = number(line);
        } else if line.starts_with("Failed:") {
            t.failed = number(line);
        } else if line.starts_with("Unexpected Success:") {
            t.unexpected = number(line);
        }
    }
    t
}

#[test]
fn upstream_tempest_api_suite_passes() {
    let venv = tempest_venv();
    keystone(&["start"]);
    heat_start();
    let dir = tempdir("tempest");
    let _cloud = cloud_double(&dir);
    public_image();
    let conf = heat_conf(&dir, "");
    let server = all_in_one(&dir, &conf);
    keystone(&["endpoint", &format!("{}/v1", server.url)]);

    // A tempest workspace of its own (its registry under this HOME).
    let ws = dir.join("ws");
    let env = |cmd: &mut Command| {
        cmd.env_clear()
            .env("PATH", format!("{}/bin:/usr/bin:/bin", venv.display()))
            .env("HOME", &dir)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null());
    };
    let mut init = Command::new(venv.join("bin/tempest"));
    env(&mut init);
    let out = run(init.arg("init").arg(&ws));
    assert!(out.status.success(), "tempest init: {}", text(&out));
    let conf = tempest_conf(&ws);
    let exclude = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tempest-exclude.txt");

    let mut cmd = Command::new(venv.join("bin/tempest"));
    env(&mut cmd);
    let mut child = cmd
        .current_dir(&ws)
        .arg("run")
        .arg("--config-file")
        .arg(&conf)
        .args(["--regex", r"^magnum_tempest_plugin\.tests\.api\."])
        .arg("--exclude-list")
        .arg(&exclude)
        // Two workers: the machine's cores.
        .args(["--concurrency", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let stderr = child.stderr.take().unwrap();
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            s.push_str(&line);
            s.push('\n');
        }
        s
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut out = String::new();
    let deadline = Instant::now() + Duration::from_secs(RUN_SECS);
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => {
                out.push_str(&line);
                out.push('\n');
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("tempest did not finish in {RUN_SECS} s:\n{out}");
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait().unwrap();
    let errs = errs.join().unwrap();
    let t = totals(&out);
    // Past the test harness's capture, so every run shows it.
    let _ = writeln!(
        std::io::stderr(),
        "tempest (magnum_tempest_plugin.tests.api): {} passed, {} failed, {} skipped of {} run in {} s",
        t.passed,
        t.failed,
        t.skipped,
        t.ran,
        started.elapsed().as_secs()
    );
    let mut server = server;
    let logs = server.logs();
    let lines: Vec<&str> = logs.lines().collect();
    // Every 5xx's cause, wherever it is in the log.
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains(" ERROR "))
        .collect();
    let report = format!(
        "{out}\n{errs}\n(our errors:\n{}\ntempest's log: {}; ours at {} ({}), its last lines:\n{})",
        errors.join("\n"),
        ws.join("tempest.log").display(),
        server.url,
        match server.child.try_wait() {
            Ok(Some(status)) => format!("exited: {status}"),
            _ => "running".to_string(),
        },
        lines[lines.len().saturating_sub(40)..].join("\n")
    );
    // The test Keystone is the machine's: a test elsewhere that pointed
    // its catalog at a server or double of its own meanwhile would have
    // sent the suite there.
    let double = std::fs::read_to_string(dir.join("cloud.port")).unwrap();
    let admin = admin_token();
    let endpoint = |service_type: &str| {
        let services = kget(&admin, &format!("/v3/services?type={service_type}"));
        let id = services["services"][0]["id"].as_str().unwrap_or_default();
        let eps = kget(
            &admin,
            &format!("/v3/endpoints?service_id={id}&interface=public"),
        );
        eps["endpoints"][0]["url"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let catalog = [
        (endpoint("container-infra"), format!("{}/v1", server.url)),
        (
            endpoint("compute"),
            format!("http://127.0.0.1:{double}/compute/v2.1"),
        ),
    ];
    // The tests that failed, by name, to close each message with.
    let failed: Vec<&str> = out.lines().filter(|l| l.ends_with("... FAILED")).collect();
    let failed = failed.join("\n");
    for (found, ours) in &catalog {
        assert_eq!(
            found, ours,
            "another test repointed the test Keystone's catalog during the run, so the \
             suite may have met another server; its failures:\n{failed}"
        );
    }
    assert!(t.ran > 0, "tempest ran no test:\n{report}");
    assert_eq!(
        t.failed, 0,
        "tempest tests failed:\n{report}\nthe failed tests:\n{failed}"
    );
    assert_eq!(t.unexpected, 0, "{report}");
    assert_eq!(t.skipped, 0, "tests were skipped:\n{report}");
    assert_eq!(t.passed, t.ran, "{report}");
    assert!(status.success(), "tempest run: {status}\n{report}");
    drop(server);
    std::fs::remove_dir_all(dir).ok();
}
