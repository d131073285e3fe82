//! Guru meditation reports: SIGUSR2 makes a running program write one
//! (to a new file in `[oslo_reports] log_dir`, else to standard error)
//! and carry on. A conductor's names the operation it holds, with its
//! lease; no report holds a secret of the configuration, each shows the
//! secret options masked. On PostgreSQL (which takes any password here)
//! and RabbitMQ, with a user of the test's own, so every secret is one
//! the test chose; and the conductor's metrics show the bus up.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use magnum_db::testing::TestDb;
use magnum_db::Backend;
use serde_json::json;
use support::*;

/// A RabbitMQ user of this test, removed when dropped.
struct RabbitUser(String);

impl RabbitUser {
    fn add(name: &str, password: &str) -> Self {
        let ctl = |args: &[&str]| {
            let out = Command::new("rabbitmqctl").args(args).output().unwrap();
            assert!(out.status.success(), "rabbitmqctl {args:?}: {}", text(&out));
        };
        ctl(&["add_user", name, password]);
        let user = RabbitUser(name.to_string());
        ctl(&["set_permissions", "-p", "/", name, ".*", ".*", ".*"]);
        user
    }
}

impl Drop for RabbitUser {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_user", &self.0])
            .output();
    }
}

fn usr2(server: &Server) {
    let out = Command::new("kill")
        .args(["-USR2", &server.child.id().to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// The lines of `report` under `[section]`.
fn section<'a>(report: &'a str, section: &str) -> &'a str {
    let start = report
        .find(&format!("\n[{section}]\n"))
        .unwrap_or_else(|| panic!("no [{section}] in:\n{report}"));
    let rest = &report[start + section.len() + 4..];
    &rest[..rest.find("\n[").unwrap_or(rest.len())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr2_reports_held_operations_and_no_secret() {
    let testdb = TestDb::create_migrated(Backend::Postgres).await;
    let db = testdb.migrated().await;
    let id = uuid_str();
    let db_password = format!("PgPass{}", id.replace('-', ""));
    let bus_password = format!("BusPass{}", id.replace('-', ""));
    let ks_password = format!("KsPass{}", id.replace('-', ""));
    let trustee_password = format!("TrusteePass{}", id.replace('-', ""));
    let secrets = [&db_password, &bus_password, &ks_password, &trustee_password];
    let rabbit_user = format!("magnum-report-{id}");
    let _user = RabbitUser::add(&rabbit_user, &bus_password);
    assert!(testdb.url.contains("//postgres@"), "{}", testdb.url);
    let db_url = testdb
        .url
        .replacen("//postgres@", &format!("//postgres:{db_password}@"), 1);

    let dir = tempdir("guru-report");
    let reports = dir.join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    let cloud = dir.join("cloud");
    let base = write_conf(
        &dir,
        &format!(
            "[DEFAULT]\nauth_strategy = noauth\n\
             transport_url = rabbit://{rabbit_user}:{bus_password}@127.0.0.1:5672/\n\
             control_exchange = magnum-report-{id}\n\
             [database]\nconnection = {db_url}\n\
             [keystone_authtoken]\npassword = {ks_password}\n\
             [trust]\ntrustee_domain_admin_password = {trustee_password}\n\
             [conductor]\ntopic = magnum-conductor-report-{id}\nsync_interval = 1\n\
             [api]\nport = 0\n"
        ),
    );
    let base = base.to_str().unwrap().to_string();
    let own = dir.join("conductor.conf");
    std::fs::write(
        &own,
        format!(
            "[oslo_reports]\nlog_dir = {}\n[metrics]\nlisten = 127.0.0.1:0\n",
            reports.display()
        ),
    )
    .unwrap();
    let env = [("MAGNUM_FAKE_CLOUD", cloud.to_str().unwrap())];
    let api = start_env(&["--config-file", &base, "api"], &env, "listening on ");
    let conductor = start_env(
        &[
            "--config-file",
            &base,
            "--config-file",
            own.to_str().unwrap(),
            "conductor",
        ],
        &env,
        "conductor serving RPC topic",
    );
    let url = api.url.clone();
    created(
        &url,
        "/v1/clustertemplates",
        json!({"name": "t", "coe": "kubernetes", "image_id": "fcos", "driver": "fake",
               "labels": {"fake_seconds": "1"}}),
    );
    // A create whose driver call takes 8 s: the report comes mid-call.
    let cluster = created(
        &url,
        "/v1/clusters",
        json!({"name": "slow", "cluster_template_id": "t",
               "labels": {"fake_call_seconds": "8", "fake_seconds": "1"}}),
    )["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let op = support::claimed_operation(&db, &cluster).await;

    usr2(&conductor);
    let deadline = Instant::now() + Duration::from_secs(10);
    let report = loop {
        let files: Vec<_> = std::fs::read_dir(&reports)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        if let Some(f) = files.first() {
            let name = f.file_name().unwrap().to_str().unwrap().to_string();
            assert!(
                name.starts_with("magnum-conductor_gurumeditation_"),
                "{name}"
            );
            // Give the writer a moment to finish the file.
            tokio::time::sleep(Duration::from_millis(300)).await;
            break std::fs::read_to_string(f).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no report in {}",
            reports.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for s in secrets {
        assert!(
            !report.contains(s.as_str()),
            "a secret in the report:\n{report}"
        );
    }
    assert!(report.contains("program = magnum-conductor"), "{report}");
    assert!(report.contains("version = magnum "), "{report}");
    let held = report
        .lines()
        .find(|l| l.starts_with(&format!("operation {}", op.uuid)))
        .unwrap_or_else(|| panic!("operation {} not in:\n{report}", op.uuid));
    assert!(held.contains("cluster_create"), "{held}");
    assert!(held.contains(&cluster), "{held}");
    assert!(held.contains("lease until 20"), "{held}");
    assert!(
        held.contains(op.owner.as_deref().unwrap()),
        "{held} (owner {:?})",
        op.owner
    );
    assert!(
        report.contains("RPC server of topic magnum-conductor-report-"),
        "{report}"
    );
    assert!(report.contains("conductor loops: sweep"), "{report}");
    assert!(report.contains(" tasks alive"), "{report}");
    assert!(report.contains("pool: "), "{report}");
    assert!(
        report.contains(&format!(
            "bus = rabbit://{rabbit_user}@127.0.0.1:5672/%2f: connected"
        )),
        "{report}"
    );
    assert!(
        section(&report, "DEFAULT").contains("\n  transport_url = ***\n"),
        "{report}"
    );
    assert!(
        section(&report, "database").contains("\n  connection = ***\n"),
        "{report}"
    );
    assert!(
        section(&report, "keystone_authtoken").contains("\n  password = ***\n"),
        "{report}"
    );
    assert!(
        section(&report, "trust").contains("\n  trustee_domain_admin_password = ***\n"),
        "{report}"
    );
    assert!(
        section(&report, "conductor").contains("\n  sync_interval = 1\n"),
        "{report}"
    );

    // The API, without log_dir, writes its report to standard error.
    usr2(&api);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !api
        .logs()
        .contains("====                         Configuration")
    {
        assert!(
            Instant::now() < deadline,
            "no report from the API:\n{}",
            api.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let api_logs = api.logs();
    assert!(api_logs.contains("program = magnum-api"), "{api_logs}");
    assert!(
        api_logs.contains("(no conductor in this program)"),
        "{api_logs}"
    );
    assert!(api_logs.contains("\n  connection = ***\n"), "{api_logs}");

    // Both carry on: the create finishes, and the programs still run.
    wait_for(&url, &format!("/v1/clusters/{cluster}"), 60, |_, v| {
        v["status"] == "CREATE_COMPLETE"
    });
    let mut conductor = conductor;
    let mut api = api;
    assert!(
        conductor.child.try_wait().unwrap().is_none(),
        "the conductor stopped"
    );
    assert!(api.child.try_wait().unwrap().is_none(), "the API stopped");
    for s in secrets {
        assert!(
            !conductor.logs().contains(s.as_str()),
            "a secret in the log"
        );
        assert!(!api.logs().contains(s.as_str()), "a secret in the log");
    }

    // The conductor's metrics: its bus is up, its attempt counted.
    let logs = conductor.logs();
    let addr = logs
        .split("metrics at http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no metrics listener in:\n{logs}"))
        .to_string();
    let (status, _, body) = http_with(&format!("http://{addr}"), "GET", "/metrics", &[], None);
    assert_eq!(status, 200);
    let m = prom::parse(&body);
    assert_eq!(m.value("magnum_bus_up", &[]), Some(1.0), "{body}");
    assert_eq!(
        m.value(
            "magnum_operation_attempts_total",
            &[("method", "cluster_create")]
        ),
        Some(1.0),
        "{body}"
    );
    assert!(
        m.value(
            "magnum_driver_call_duration_seconds_sum",
            &[("call", "create")]
        )
        .unwrap()
            >= 8.0,
        "{body}"
    );
    assert_eq!(
        m.value("magnum_build_info", &[("program", "magnum-conductor")]),
        Some(1.0)
    );
    drop(db);
}
