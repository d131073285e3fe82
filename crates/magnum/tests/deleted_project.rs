//! A delete always completes: a cluster whose owner's project was deleted
//! in Keystone (taking the owner's trust with it) is still deleted to the
//! end, its stack by the service's own credentials, and its events say
//! so. On the way, a create that fails in Heat names the failed resource
//! and its class in the cluster's events, and is driven again (Heat
//! updates the failed stack) with `actions/retry`. Real Keystone and Heat (group
//! `openstack` in .config/nextest.toml: it shares them).

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::cloud::*;
use support::*;

/// Keystone's admin API: the status and body.
fn kcall(method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let admin = admin_token();
    let body = body.map(|b| b.to_string());
    let (s, _, text) = http_with(
        KEYSTONE,
        method,
        path,
        &[("X-Auth-Token", &admin)],
        body.as_deref(),
    );
    (s, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The cluster as the admin sees it (every project's), `None` once gone.
fn admin_show(url: &str, uuid: &str) -> Option<Value> {
    let (s, _, c) = call(
        url,
        "GET",
        &format!("/v1/clusters/{uuid}"),
        Some(&admin_token()),
        None,
    );
    match s {
        404 => None,
        200 => Some(c),
        _ => panic!("GET cluster: {s} {c}"),
    }
}

fn wait_for_status(url: &str, uuid: &str, want: &[&str], secs: u64) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let c = admin_show(url, uuid);
        match &c {
            None if want.contains(&"gone") => return None,
            Some(c) if want.contains(&c["status"].as_str().unwrap_or_default()) => {
                return Some(c.clone())
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "cluster {uuid} stuck: {c:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_cluster_of_a_deleted_project_is_deleted_to_the_end() {
    keystone(&["start"]);
    heat_start();
    let dir = tempdir("deleted-project");
    let _cloud = cloud_double(&dir);
    let conf = heat_conf(&dir, "");
    let server = all_in_one(&dir, &conf);
    let url = server.url.clone();

    // A project of its own, with a member who owns the cluster.
    let tag = &uuid_str()[..8];
    let (project_name, user_name) = (format!("gone-{tag}"), format!("gone-member-{tag}"));
    let (s, p) = kcall(
        "POST",
        "/v3/projects",
        Some(json!({"project": {"name": project_name, "domain_id": "default"}})),
    );
    assert_eq!(s, 201, "{p}");
    let project = p["project"]["id"].as_str().unwrap().to_string();
    let (s, u) = kcall(
        "POST",
        "/v3/users",
        Some(json!({"user": {"name": user_name, "password": "secret",
                             "domain_id": "default", "default_project_id": project}})),
    );
    assert_eq!(s, 201, "{u}");
    let user = u["user"]["id"].as_str().unwrap().to_string();
    let (_, roles) = kcall("GET", "/v3/roles?name=member", None);
    let member_role = roles["roles"][0]["id"].as_str().unwrap().to_string();
    let (s, r) = kcall(
        "PUT",
        &format!("/v3/projects/{project}/users/{user}/roles/{member_role}"),
        None,
    );
    assert_eq!(s, 204, "{r}");
    let owner = token(&user_name, &project_name);
    glance_with_image(&owner);

    // A create that fails in Heat (the fake Nova fails servers named
    // fail-me): its events name the failed resource and its class.
    let (s, _, t) = call(
        &url,
        "POST",
        "/v1/clustertemplates",
        Some(&owner),
        Some(
            json!({"name": "gone-t", "coe": "kubernetes", "image_id": "fedora-coreos-40",
                    "external_network_id": "public", "keypair_id": "kp",
                    "flavor_id": "m1.small"}),
        ),
    );
    assert_eq!(s, 201, "{t}");
    let (s, _, c) = call(
        &url,
        "POST",
        "/v1/clusters",
        Some(&owner),
        Some(json!({"name": "fail-me-gone", "cluster_template_id": "gone-t", "node_count": 1})),
    );
    assert_eq!(s, 202, "{c}");
    let uuid = c["uuid"].as_str().unwrap().to_string();
    let c = wait_for_status(&url, &uuid, &["CREATE_COMPLETE", "CREATE_FAILED"], 600).unwrap();
    assert_eq!(c["status"], "CREATE_FAILED", "{c}");
    let db = dir.join("data/magnum.sqlite");
    let sql = |q: String| {
        let out = run(std::process::Command::new("sqlite3").arg(&db).arg(q));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let stack_id = sql(format!(
        "SELECT stack_id FROM cluster WHERE uuid = '{uuid}'"
    ));
    assert_eq!(stack_id.len(), 36, "{stack_id}");
    let (s, _, ev) = call(
        &url,
        "GET",
        &format!("/v1/clusters/{uuid}/events"),
        Some(&owner),
        None,
    );
    assert_eq!(s, 200, "{ev}");
    let events = ev["events"].as_array().unwrap();
    let driver: Vec<&Value> = events.iter().filter(|e| e["kind"] == "driver").collect();
    assert!(
        driver.iter().any(|e| {
            e["resource"]
                .as_str()
                .unwrap_or_default()
                .contains("nova_boot")
                && e["reason_class"] == "driver_error"
                && e["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("Test Resource failed")
        }),
        "{ev}"
    );
    let failed = events.iter().find(|e| e["kind"] == "failed").unwrap();
    assert_eq!(failed["status"], "CREATE_FAILED", "{ev}");
    assert_eq!(failed["reason_class"], "driver_error", "{ev}");
    // status_reason stays as upstream fills it.
    assert!(c["status_reason"]
        .as_str()
        .unwrap()
        .contains("Test Resource failed"));

    // The failed create driven again (actions/retry): Heat updates the
    // failed stack, which fails the same way here (the fake Nova still
    // fails it), and the cluster says so again, as a create.
    let (s, _, r) = call(
        &url,
        "POST",
        &format!("/v1/clusters/{uuid}/actions/retry"),
        Some(&owner),
        None,
    );
    assert_eq!(s, 202, "{r}");
    let deadline = Instant::now() + Duration::from_secs(600);
    let again = loop {
        let (s, _, ev) = call(
            &url,
            "GET",
            &format!("/v1/clusters/{uuid}/events"),
            Some(&owner),
            None,
        );
        assert_eq!(s, 200, "{ev}");
        let failures = ev["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "failed")
            .count();
        if failures == 2 {
            break ev;
        }
        assert!(Instant::now() < deadline, "the retry never ended: {ev}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let events = again["events"].as_array().unwrap();
    let queued = events
        .iter()
        .filter(|e| e["kind"] == "queued" && e["method"] == "cluster_create")
        .count();
    assert_eq!(queued, 2, "{again}");
    assert_eq!(events.last().unwrap()["status"], "CREATE_FAILED", "{again}");
    let c = admin_show(&url, &uuid).unwrap();
    assert_eq!(c["status"], "CREATE_FAILED", "{c}");
    assert_eq!(
        sql(format!(
            "SELECT stack_id FROM cluster WHERE uuid = '{uuid}'"
        )),
        stack_id,
        "the retry drove the same stack"
    );
    let (s, st) = heat_stack_as_admin(&stack_id);
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["stack"]["stack_status"], "UPDATE_FAILED", "{st}");

    // The owner's project goes (and their trust with it).
    let (s, p) = kcall(
        "PATCH",
        &format!("/v3/projects/{project}"),
        Some(json!({"project": {"enabled": false}})),
    );
    assert_eq!(s, 200, "{p}");
    let (s, p) = kcall("DELETE", &format!("/v3/projects/{project}"), None);
    assert_eq!(s, 204, "{p}");
    // As days later: no token of the owner's is left anywhere (this
    // conductor's sessions, Heat's token cache), so the trust is asked.
    drop(server);
    let server = all_in_one(&dir, &conf);
    let url = server.url.clone();

    // The admin deletes the cluster: it is gone to the end, stack included.
    let (s, _, d) = call(
        &url,
        "DELETE",
        &format!("/v1/clusters/{uuid}"),
        Some(&admin_token()),
        None,
    );
    assert_eq!(s, 204, "{d}");
    wait_for_status(&url, &uuid, &["gone"], 600);
    let (s, st) = heat_stack_as_admin(&stack_id);
    assert!(
        s == 404 || st["stack"]["stack_status"] == "DELETE_COMPLETE",
        "the stack is left: {s} {st}"
    );
    // Its events (kept until pruned) say how it was deleted.
    let history = sql(format!(
        "SELECT kind || ' ' || IFNULL(reason_class, '') || ' ' || IFNULL(message, '') \
         FROM rs_cluster_event WHERE cluster_uuid = '{uuid}' ORDER BY id"
    ));
    let fallback = history
        .lines()
        .find(|l| l.starts_with("service_credentials credentials_refused "))
        .unwrap_or_else(|| panic!("no service credentials event:\n{history}"));
    assert!(
        fallback.contains("deleting with the service's own credentials"),
        "{history}"
    );
    let after: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("service_credentials"))
        .collect();
    assert!(
        after.iter().any(|l| l.starts_with("finished ")),
        "{history}"
    );
    assert!(
        history
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("completed ") && l.contains("DELETE_COMPLETE")),
        "{history}"
    );
    assert!(
        !history
            .lines()
            .any(|l| l.starts_with("failed ") && l.contains("DELETE")),
        "{history}"
    );
    // Nothing of the cluster is left in Keystone either: its trustee.
    let (_, users) = kcall("GET", &format!("/v3/users?name={uuid}_{project}"), None);
    assert_eq!(users["users"], json!([]), "{users}");
    let (s, u) = kcall("DELETE", &format!("/v3/users/{user}"), None);
    assert_eq!(s, 204, "{u}");
    drop(server);
    std::fs::remove_dir_all(dir).ok();
}

/// Heat's view of a stack by id, as the cloud's admin (any project's).
fn heat_stack_as_admin(id: &str) -> (u16, Value) {
    let admin = admin_token();
    let (_, p) = kcall("GET", "/v3/projects?name=admin", None);
    let admin_project = p["projects"][0]["id"].as_str().unwrap().to_string();
    // Heat answers a lookup by id with a redirect to the stack's own path.
    let (s, headers, text) = http_with(
        "http://127.0.0.1:8004",
        "GET",
        &format!("/v1/{admin_project}/stacks/{id}"),
        &[("X-Auth-Token", &admin)],
        None,
    );
    if s == 302 {
        let location = headers
            .iter()
            .find(|(k, _)| k == "location")
            .map(|(_, v)| v.clone())
            .unwrap();
        let path = &location[location.find("/v1/").unwrap()..];
        let (s, _, text) = http_with(
            "http://127.0.0.1:8004",
            "GET",
            path,
            &[("X-Auth-Token", &admin)],
            None,
        );
        return (s, serde_json::from_str(&text).unwrap_or(Value::Null));
    }
    (s, serde_json::from_str(&text).unwrap_or(Value::Null))
}
