//! The `magnum` program as an operator meets it: start-up on the embedded
//! default, configuration errors, `db-manage`, the upstream program names,
//! refusal to serve an unmigrated database, and HTTPS.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

use magnum_db::testing::TestDb;
use magnum_db::Backend;

#[test]
fn all_in_one_runs_on_the_embedded_default() {
    let dir = tempdir("aio");
    let conf = write_conf(
        &dir,
        "[api]\nport = 0\n[frobnicate]\nx = 1\n[api]\nhots = 1\n",
    );
    let data = dir.join("data");
    let server = start(&[
        "--config-file",
        conf.to_str().unwrap(),
        "all-in-one",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(
        server
            .log
            .contains(&format!("{}", data.join("magnum.sqlite").display())),
        "{}",
        server.log
    );
    assert!(
        server.log.contains("hots"),
        "unknown options are warned about:\n{}",
        server.log
    );
    assert!(data.join("magnum.sqlite").exists());
    let (status, body) = http(
        &server.url,
        "POST",
        "/v1/clustertemplates",
        Some(r#"{"name": "t", "coe": "kubernetes", "image_id": "i"}"#),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = http(&server.url, "GET", "/v1/clustertemplates/t", None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"project_id\":\"default\""), "{body}");
    // On a loopback address, a request without identity headers is the
    // default admin's, and start-up says so.
    let (status, body) = bare_get(&server.url, "/v1/clustertemplates/t");
    assert_eq!(status, 200, "{body}");
    assert!(
        server
            .log
            .contains("requests without identity headers act as an admin"),
        "{}",
        server.log
    );
    drop(server);

    // The data survives a restart, and the schema is not migrated twice.
    let server = start(&[
        "--config-file",
        conf.to_str().unwrap(),
        "all-in-one",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let (status, _) = http(&server.url, "GET", "/v1/clustertemplates/t", None);
    assert_eq!(status, 200);
    drop(server);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn all_in_one_off_loopback_refuses_requests_without_identity() {
    let dir = tempdir("aio-wide");
    let conf = write_conf(&dir, "[api]\nhost = 0.0.0.0\nport = 0\n");
    let data = dir.join("data");
    let server = start(&[
        "--config-file",
        conf.to_str().unwrap(),
        "all-in-one",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let port = server.url.rsplit(':').next().unwrap().trim_end_matches('/');
    let url = format!("http://127.0.0.1:{port}");
    let (status, body) = bare_get(&url, "/v1/clustertemplates");
    assert_eq!(status, 403, "{body}");
    assert!(server.log.contains("are refused (403)"), "{}", server.log);
    let (status, body) = http(&url, "GET", "/v1/clustertemplates", None);
    assert_eq!(status, 200, "{body}");
    drop(server);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bad_configuration_stops_start_up_naming_the_place() {
    let dir = tempdir("badconf");
    let conf = write_conf(&dir, "[api]\nport = eleven\n");
    let out = run(Command::new(MAGNUM).args([
        "--config-file",
        conf.to_str().unwrap(),
        "all-in-one",
        "--data-dir",
        dir.to_str().unwrap(),
    ]));
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("[api]") && t.contains("port") && t.contains(conf.to_str().unwrap()),
        "{t}"
    );

    let out = run(Command::new(MAGNUM).args(["--config-file", "/nonexistent/magnum.conf", "api"]));
    assert!(!out.status.success());
    assert!(
        text(&out).contains("/nonexistent/magnum.conf"),
        "{}",
        text(&out)
    );

    // External drivers: well-formed, on a topic of their own, over a bus.
    for (conf, says) in [
        (
            "[drivers]\nexternal_drivers = k8s_capi:vm:ubuntu\n",
            "\"k8s_capi:vm:ubuntu\" is not name:server_type:os_distro:coe",
        ),
        (
            "[drivers]\nexternal_drivers = k8s_capi:vm:ubuntu:kubernetes\n",
            "[drivers] external_topic and [conductor] topic are both \"magnum-conductor\"",
        ),
        (
            "[drivers]\nexternal_drivers = k8s_capi:vm:ubuntu:kubernetes\n\
             [conductor]\ntopic = magnum-conductor-rs\n",
            "set [DEFAULT] transport_url",
        ),
    ] {
        let conf = write_conf(&dir, conf);
        let out = run(Command::new(MAGNUM).args([
            "--config-file",
            conf.to_str().unwrap(),
            "all-in-one",
            "--data-dir",
            dir.to_str().unwrap(),
        ]));
        assert!(!out.status.success());
        assert!(text(&out).contains(says), "{}", text(&out));
    }

    let empty = write_conf(&dir, "[DEFAULT]\n");
    let out = run(Command::new(MAGNUM).args(["--config-file", empty.to_str().unwrap(), "api"]));
    assert!(!out.status.success());
    assert!(
        text(&out).contains("[database] connection"),
        "{}",
        text(&out)
    );
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_manage_and_the_upstream_names() {
    for backend in [Backend::Sqlite, Backend::Postgres, Backend::MySql] {
        let testdb = TestDb::create(backend).await;
        let dir = tempdir("dbm");
        let conf = write_conf(
            &dir,
            &format!(
                "[DEFAULT]\nauth_strategy = noauth\n[database]\nconnection = {}\n[api]\nport = 0\n",
                testdb.url
            ),
        );
        let conf = conf.to_str().unwrap().to_string();

        let out = run(Command::new(MAGNUM).args(["--config-file", &conf, "db-manage", "version"]));
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "None");

        // The API refuses an unmigrated database and says what to do.
        let out = run(Command::new(bin("magnum-api")).args(["--config-file", &conf]));
        assert!(!out.status.success());
        assert!(text(&out).contains("db-manage upgrade"), "{}", text(&out));

        let out =
            run(Command::new(bin("magnum-db-manage")).args(["--config-file", &conf, "upgrade"]));
        assert!(out.status.success(), "{backend}: {}", text(&out));
        let out = run(Command::new(MAGNUM).args(["db-manage", "--config-file", &conf, "upgrade"]));
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains("already at b3e1cf4a2d5e"),
            "{}",
            text(&out)
        );
        let out =
            run(Command::new(bin("magnum-db-manage")).args(["--config-file", &conf, "version"]));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "b3e1cf4a2d5e");

        let server = start(&["--config-file", &conf, "api"]);
        let (status, body) = http(&server.url, "GET", "/v1/clustertemplates", None);
        assert_eq!(status, 200, "{body}");
        // Without authentication and without identity headers: no identity,
        // refused by the policy as upstream refuses it.
        let (status, body) = bare_get(&server.url, "/v1/clustertemplates");
        assert_eq!(status, 403, "{body}");
        assert!(
            body.contains("Policy doesn't allow clustertemplate:get_all"),
            "{body}"
        );
        assert!(server.log.contains("are refused (403)"), "{}", server.log);
        drop(server);

        // Keystone is the API's default, and needs its settings.
        let ks = dir.join("keystone.conf");
        std::fs::write(&ks, "[DEFAULT]\nauth_strategy = keystone\n").unwrap();
        let out = run(Command::new(MAGNUM).args([
            "--config-file",
            &conf,
            "--config-file",
            ks.to_str().unwrap(),
            "api",
        ]));
        assert!(!out.status.success());
        assert!(
            text(&out).contains("[keystone_authtoken] auth_url is not set"),
            "{}",
            text(&out)
        );

        // The conductor registers itself in magnum_service.
        let mut conductor = Command::new(bin("magnum-conductor"))
            .args(["--config-file", &conf])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let db = testdb.connect().await;
        let deadline = Instant::now() + Duration::from_secs(20);
        let rows = loop {
            let rows = db.service_list().await.unwrap();
            if !rows.is_empty() || Instant::now() > deadline {
                break rows;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let _ = conductor.kill();
        let _ = conductor.wait();
        assert_eq!(rows.len(), 1, "{backend}: conductor heartbeat row");
        assert_eq!(rows[0].binary.as_deref(), Some("magnum-conductor"));
        assert!(rows[0].report_count >= 1);
        db.close().await;
        std::fs::remove_dir_all(dir).ok();
    }
}

/// GET over TLS, trusting only `ca`.
fn https_get(
    addr: &str,
    ca: &rustls_pki_types::CertificateDer<'static>,
    path: &str,
) -> (u16, String) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    exchange(&mut tls, addr, "GET", path, None)
}

#[test]
fn https_when_enabled_ssl() {
    let dir = tempdir("tls");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = cert.cert.pem();
    std::fs::write(dir.join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let conf = write_conf(
        &dir,
        &format!(
            "[api]\nport = 0\nenabled_ssl = true\nssl_cert_file = {0}/cert.pem\nssl_key_file = {0}/key.pem\n",
            dir.display()
        ),
    );
    let server = start(&[
        "--config-file",
        conf.to_str().unwrap(),
        "all-in-one",
        "--data-dir",
        dir.join("data").to_str().unwrap(),
    ]);
    assert!(server.url.starts_with("https://"), "{}", server.log);
    let addr = server.url.trim_start_matches("https://").to_string();

    let (status, body) = https_get(&addr, cert.cert.der(), "/v1");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("https://"),
        "links use the https scheme: {body}"
    );

    // Plain HTTP on the TLS port gets no answer, and does not stop the server.
    let plain = http(&format!("http://{addr}"), "GET", "/v1", None);
    assert_ne!(plain.0, 200);
    assert_eq!(https_get(&addr, cert.cert.der(), "/").0, 200);
    drop(server);

    // A missing key stops start-up with a message naming the option.
    let bad = write_conf(&dir, &format!("[api]\nport = 0\nenabled_ssl = true\nssl_cert_file = {0}/cert.pem\nssl_key_file = {0}/nope.pem\n", dir.display()));
    let out = run(Command::new(MAGNUM).args([
        "--config-file",
        bad.to_str().unwrap(),
        "all-in-one",
        "--data-dir",
        dir.join("data").to_str().unwrap(),
    ]));
    assert!(!out.status.success());
    assert!(text(&out).contains("ssl_key_file"), "{}", text(&out));
    std::fs::remove_dir_all(dir).ok();
}

/// `magnum-driver-manage list-drivers` prints upstream's table; `-d` one row
/// per cluster type, `-p` the template path; a disabled driver is not listed.
#[test]
fn driver_manage_lists_the_drivers() {
    let out = run(Command::new(bin("magnum-driver-manage")).args(["list-drivers", "-d", "-p"]));
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        table.contains("| Name ")
            && table.contains("| Server_Type | OS ")
            && table.contains("Template Path"),
        "{table}"
    );
    assert!(
        table.contains("| k8s_fedora_coreos_v1 | vm          | fedora-coreos | kubernetes | (built in) kubernetes/ + common/cluster.yaml |"),
        "{table}"
    );
    for name in ["k8s_ubuntu_v1", "swarm_mode_ubuntu_v1", "mesos_ubuntu_v1"] {
        assert!(table.contains(name), "{table}");
    }
    let dir = tempdir("drivers");
    let conf = write_conf(&dir, "[drivers]\ndisabled_drivers = mesos_ubuntu_v1\n");
    let out =
        run(Command::new(MAGNUM).args(["--config-file", conf.to_str().unwrap(), "driver", "list"]));
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && table.contains("k8s_ubuntu_v1"),
        "{table}"
    );
    assert!(!table.contains("mesos_ubuntu_v1"), "{table}");
    std::fs::remove_dir_all(dir).ok();
}
