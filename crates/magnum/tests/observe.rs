//! What operators see of a running program: Prometheus metrics on
//! `[metrics] listen` counting what was done (by route template, never by
//! id), and JSON log lines (`[DEFAULT] use_json`) carrying the request or
//! operation each belongs to. (Guru meditation reports: `guru_report.rs`.)

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use serde_json::Value;
use support::*;

/// The `http://host:port` of the metrics listener a server logged.
fn metrics_url(logs: &str) -> String {
    let rest = logs
        .split("metrics at http://")
        .nth(1)
        .unwrap_or_else(|| panic!("no metrics listener in:\n{logs}"));
    let addr = rest.split('/').next().unwrap();
    format!("http://{addr}")
}

fn scrape(metrics: &str) -> (String, prom::Scrape) {
    let (status, headers, body) = http_with(metrics, "GET", "/metrics", &[], None);
    assert_eq!(status, 200, "{body}");
    let ctype = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let parsed = prom::parse(&body);
    (body, parsed)
}

#[test]
fn metrics_count_what_was_done_and_name_no_ids() {
    let dir = tempdir("metrics");
    let conf = write_conf(
        &dir,
        "[conductor]\nsync_interval = 1\noperation_retry_delay = 1\n[api]\nport = 0\n\
         [metrics]\nlisten = 127.0.0.1:0\n",
    );
    let server = all_in_one_on_fake_cloud(&dir, &conf);
    let metrics = metrics_url(&server.logs());
    let (_, before) = scrape(&metrics);
    assert_eq!(
        before.value("magnum_build_info", &[("program", "magnum-all-in-one")]),
        Some(1.0)
    );

    let (s, b) = http(
        &server.url,
        "POST",
        "/v1/clustertemplates",
        Some(
            r#"{"name": "observed-template", "coe": "kubernetes", "image_id": "fcos", "driver": "fake", "labels": {"fake_seconds": "0"}}"#,
        ),
    );
    assert_eq!(s, 201, "{b}");
    for _ in 0..7 {
        let (s, b) = http(
            &server.url,
            "GET",
            "/v1/clustertemplates/observed-template",
            None,
        );
        assert_eq!(s, 200, "{b}");
    }
    for _ in 0..3 {
        let (s, _) = http(
            &server.url,
            "GET",
            "/v1/clustertemplates/no-such-template",
            None,
        );
        assert_eq!(s, 404);
    }
    let (s, _) = http(&server.url, "GET", "/no/such/route", None);
    assert_eq!(s, 404);
    let (s, b) = http(
        &server.url,
        "POST",
        "/v1/clusters",
        Some(r#"{"name": "observed-cluster", "cluster_template_id": "observed-template"}"#),
    );
    assert_eq!(s, 202, "{b}");
    let cluster = serde_json::from_str::<Value>(&b).unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(
        &server.url,
        &format!("/v1/clusters/{cluster}"),
        60,
        |_, v| v["status"] == "CREATE_COMPLETE",
    );

    // One the driver refuses: a failure.
    let (s, b) = http(
        &server.url,
        "POST",
        "/v1/clusters",
        Some(
            r#"{"name": "refused", "cluster_template_id": "observed-template", "labels": {"fake_refuse": "create", "fake_seconds": "0"}}"#,
        ),
    );
    assert_eq!(s, 202, "{b}");
    let refused = serde_json::from_str::<Value>(&b).unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(
        &server.url,
        &format!("/v1/clusters/{refused}"),
        60,
        |_, v| v["status"] == "CREATE_FAILED",
    );
    // One the cloud cannot take at first: retried, then done.
    let outage = dir.join("cloud/outage");
    std::fs::write(&outage, "").unwrap();
    let (s, b) = http(
        &server.url,
        "POST",
        "/v1/clusters",
        Some(r#"{"name": "retried", "cluster_template_id": "observed-template"}"#),
    );
    assert_eq!(s, 202, "{b}");
    let retried = serde_json::from_str::<Value>(&b).unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let until = |what: &str, ok: &dyn Fn(&prom::Scrape) -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (body, m) = scrape(&metrics);
            if ok(&m) {
                return (body, m);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never {what}:\n{body}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let create = [("method", "cluster_create")];
    until("retried", &|m| {
        m.value("magnum_operations_retried_total", &create) >= Some(1.0)
    });
    std::fs::remove_file(&outage).unwrap();
    wait_for(
        &server.url,
        &format!("/v1/clusters/{retried}"),
        60,
        |_, v| v["status"] == "CREATE_COMPLETE",
    );
    // An attempt's end is counted just after its write: give it a moment.
    let (body, m) = until("done twice", &|m| {
        m.value("magnum_operations_done_total", &create) == Some(2.0)
    });
    let req = |route: &str, method: &str, code: &str| {
        let labels = [("route", route), ("method", method), ("code", code)];
        let n = m.value("magnum_http_requests_total", &labels);
        let count = m.value("magnum_http_request_duration_seconds_count", &labels);
        assert_eq!(
            n, count,
            "{route} {method} {code}: counter and histogram differ"
        );
        n
    };
    assert_eq!(
        req("/v1/clustertemplates", "POST", "201"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        req("/v1/clustertemplates/{ident}", "GET", "200"),
        Some(7.0),
        "{body}"
    );
    assert_eq!(
        req("/v1/clustertemplates/{ident}", "GET", "404"),
        Some(3.0),
        "{body}"
    );
    assert_eq!(req("/v1/clusters", "POST", "202"), Some(3.0), "{body}");
    assert_eq!(req("unmatched", "GET", "404"), Some(1.0), "{body}");
    assert!(
        req("/v1/clusters/{ident}", "GET", "200").unwrap() >= 1.0,
        "{body}"
    );

    let op = |name: &str| m.value(name, &[("method", "cluster_create")]);
    let retries = op("magnum_operations_retried_total").unwrap();
    assert_eq!(op("magnum_operations_queued_total"), Some(3.0), "{body}");
    assert_eq!(
        op("magnum_operation_attempts_total"),
        Some(3.0 + retries),
        "{body}"
    );
    assert_eq!(op("magnum_operations_done_total"), Some(2.0), "{body}");
    assert_eq!(op("magnum_operations_failed_total"), Some(1.0), "{body}");
    assert_eq!(op("magnum_operations_running"), Some(0.0), "{body}");
    for call in ["create", "status"] {
        let n = m
            .value(
                "magnum_driver_call_duration_seconds_count",
                &[("call", call)],
            )
            .unwrap_or_else(|| panic!("no {call} driver call counted:\n{body}"));
        assert!(n >= 1.0, "{body}");
    }
    assert!(
        m.value("magnum_status_sync_duration_seconds_count", &[])
            .unwrap()
            >= 1.0,
        "{body}"
    );
    let size = m.value("magnum_db_pool_size", &[]).unwrap();
    let idle = m.value("magnum_db_pool_idle", &[]).unwrap();
    let in_use = m.value("magnum_db_pool_in_use", &[]).unwrap();
    let max = m.value("magnum_db_pool_max", &[]).unwrap();
    assert!(
        size >= 1.0 && size <= max && idle + in_use == size,
        "{body}"
    );
    // No bus configured: no bus state to show.
    assert_eq!(m.types.get("magnum_bus_up"), None);

    // Bounded labels: no ids, no names.
    for s in &m.samples {
        for (k, v) in &s.labels {
            assert!(!prom::has_uuid(v), "{}: label {k}={v:?}", s.name);
        }
    }
    for what in [
        cluster.as_str(),
        refused.as_str(),
        retried.as_str(),
        "observed-cluster",
        "observed-template",
        "no-such",
    ] {
        assert!(!body.contains(what), "{what} in the metrics:\n{body}");
    }

    // The metrics listener serves nothing else.
    let (s, _, _) = http_with(&metrics, "GET", "/v1/clusters", &[], None);
    assert_eq!(s, 404);
}

#[test]
fn json_logs_are_one_object_a_line_with_their_ids() {
    let dir = tempdir("json-logs");
    let conf = write_conf(
        &dir,
        "[DEFAULT]\nuse_json = true\n[conductor]\nsync_interval = 1\n[api]\nport = 0\n",
    );
    let server = all_in_one_on_fake_cloud(&dir, &conf);
    let (request, cluster) = template_and_cluster(&server.url);

    // A report in a JSON log is one more JSON line, and the program goes on.
    let mut server = server;
    let out = std::process::Command::new("kill")
        .args(["-USR2", &server.child.id().to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.logs().contains("guru meditation report") {
        assert!(
            std::time::Instant::now() < deadline,
            "no report in:\n{}",
            server.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (s, _) = http(&server.url, "GET", "/v1/clusters", None);
    assert_eq!(s, 200);
    assert!(server.child.try_wait().unwrap().is_none());

    let logs = server.logs();
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}"));
            assert!(v.is_object(), "{l}");
            for key in ["timestamp", "level", "target", "fields"] {
                assert!(v.get(key).is_some(), "no {key} in {l}");
            }
            v
        })
        .collect();
    assert!(lines.len() > 5, "{logs}");
    let message = |v: &Value| v["fields"]["message"].as_str().unwrap_or("").to_string();
    let access = lines
        .iter()
        .find(|v| message(v) == "POST /v1/clustertemplates 201")
        .unwrap_or_else(|| panic!("no access line in:\n{logs}"));
    assert_eq!(access["span"]["name"], "request", "{access}");
    assert_eq!(access["span"]["id"], request.as_str(), "{access}");
    let running = lines
        .iter()
        .find(|v| message(v).starts_with("running cluster_create"))
        .unwrap_or_else(|| panic!("no operation line in:\n{logs}"));
    assert_eq!(running["span"]["name"], "operation", "{running}");
    assert_eq!(running["span"]["method"], "cluster_create", "{running}");
    assert_eq!(running["span"]["cluster"], cluster.as_str(), "{running}");
    let op = running["span"]["id"].as_str().unwrap();
    assert_eq!(op.len(), 36, "{running}");
    let report = lines
        .iter()
        .find(|v| message(v) == "guru meditation report")
        .and_then(|v| v["fields"]["report"].as_str())
        .unwrap_or_else(|| panic!("no report line in:\n{logs}"));
    assert!(report.contains("program = magnum-all-in-one"), "{report}");
    assert!(report.contains("\n  use_json = true\n"), "{report}");
}

#[test]
fn metrics_are_off_by_default_and_a_bad_address_stops_start_up() {
    let dir = tempdir("metrics-conf");
    let conf = write_conf(&dir, "[api]\nport = 0\n");
    let server = all_in_one_on_fake_cloud(&dir, &conf);
    assert!(!server.logs().contains("metrics at"), "{}", server.logs());
    drop(server);
    let conf = write_conf(
        &dir,
        "[api]\nport = 0\n[metrics]\nlisten = not an address\n",
    );
    let data = dir.join("data");
    let out = run(std::process::Command::new(MAGNUM).args([
        "--config-file",
        conf.to_str().unwrap(),
        "all-in-one",
        "--data-dir",
        data.to_str().unwrap(),
    ]));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("[metrics] listen: cannot listen on not an address"),
        "{}",
        text(&out)
    );
}
