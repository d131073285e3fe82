//! `/v1/clusters` read side over HTTP on every backend: summary and full
//! views, microversion 1.13's `cluster_id`, label differences, counts and
//! addresses from node groups, faults, tenancy, paging.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use magnum_core::objects::{Cluster, NodeGroup};
use serde_json::{json, Value};

on_all_backends!(
    cluster_views,
    cluster_access_and_paging,
    nodegroup_views,
    reads_cost_a_fixed_number_of_statements
);

fn ng(cluster: &str, i: u32, role: &str, count: i64, addrs: &[&str], status: &str) -> NodeGroup {
    NodeGroup {
        uuid: format!("{}{i:04}", &cluster[..32]),
        name: format!("default-{role}-{i}"),
        cluster_id: cluster.into(),
        project_id: "p1".into(),
        role: Some(role.into()),
        node_count: Some(count),
        node_addresses: Some(addrs.iter().map(|a| a.to_string()).collect()),
        is_default: Some(true),
        status: Some(status.into()),
        status_reason: Some(format!("{role} says {status}")),
        ..Default::default()
    }
}

async fn add(app: &TestApp, uuid: &str, name: &str, project: &str, template: &str, status: &str) {
    let cluster = Cluster {
        uuid: uuid.into(),
        name: Some(name.into()),
        project_id: Some(project.into()),
        user_id: Some(format!("user-{project}")),
        cluster_template_id: Some(template.into()),
        status: Some(status.into()),
        stack_id: Some("stack-1".into()),
        labels: json!({"a": "1", "b": "9", "d": "4"}).as_object().cloned(),
        create_timeout: Some(60),
        keypair: Some("kp".into()),
        ..Default::default()
    };
    let ngs = [
        ng(uuid, 1, "master", 1, &["10.0.0.1"], "CREATE_COMPLETE"),
        ng(
            uuid,
            2,
            "worker",
            2,
            &["10.0.0.2", "10.0.0.3"],
            if status.ends_with("FAILED") {
                "CREATE_FAILED"
            } else {
                "CREATE_COMPLETE"
            },
        ),
    ];
    app.db.cluster_create(&cluster, &ngs).await.unwrap();
}

async fn template(app: &TestApp) -> String {
    let mut body = k8s("t");
    body["labels"] = json!({"a": "1", "b": "2", "c": "3"});
    app.create_template(&member("p1"), body).await["uuid"]
        .as_str()
        .unwrap()
        .to_string()
}

const C1: &str = "c1111111-1111-4111-8111-111111111111";
const C2: &str = "c2222222-2222-4222-8222-222222222222";
const C3: &str = "c3333333-3333-4333-8333-333333333333";

async fn cluster_views(backend: Backend) {
    let app = TestApp::new(backend).await;
    let t = template(&app).await;
    add(&app, C1, "one", "p1", &t, "CREATE_COMPLETE").await;

    let r = app.get("/v1/clusters", &member("p1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    let item = &r.body["clusters"][0];
    let mut keys: Vec<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "cluster_template_id",
            "create_timeout",
            "docker_volume_size",
            "flavor_id",
            "health_status",
            "keypair",
            "labels",
            "links",
            "master_count",
            "master_flavor_id",
            "merge_labels",
            "name",
            "node_count",
            "stack_id",
            "status",
            "uuid"
        ]
    );
    assert_eq!(item["merge_labels"], false, "upstream's WSME default");
    assert_eq!(item["node_count"], 2);
    assert_eq!(item["master_count"], 1);
    assert_eq!(item["stack_id"], "stack-1");

    let latest = [("OpenStack-API-Version", "container-infra latest")];
    let r = app
        .send(Method::GET, "/v1/clusters", &member("p1"), &latest, None)
        .await;
    assert_eq!(
        r.body["clusters"][0]["cluster_id"], "stack-1",
        "1.13 renames stack_id"
    );
    assert!(r.body["clusters"][0].get("stack_id").is_none());

    let r = app.get(&format!("/v1/clusters/{C1}"), &member("p1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    let b = &r.body;
    assert_eq!(b["merge_labels"], false, "upstream's WSME default");
    assert_eq!(b["node_addresses"], json!(["10.0.0.2", "10.0.0.3"]));
    assert_eq!(b["master_addresses"], json!(["10.0.0.1"]));
    assert_eq!(b["labels_overridden"], json!({"b": "2"}));
    assert_eq!(b["labels_added"], json!({"d": "4"}));
    assert_eq!(b["labels_skipped"], json!({"c": "3"}));
    assert_eq!(b["project_id"], "p1");
    assert!(b.get("faults").is_none());
    assert!(b["created_at"].as_str().unwrap().ends_with("+00:00"));
    assert_eq!(
        b["links"][0]["href"],
        format!("http://magnum.test:9511/v1/clusters/{C1}")
    );
    assert_eq!(
        app.get("/v1/clusters/one", &member("p1")).await.body,
        r.body,
        "by name too"
    );
    let r = app
        .send(
            Method::GET,
            &format!("/v1/clusters/{C1}"),
            &member("p1"),
            &latest,
            Some(Body::empty()),
        )
        .await;
    assert_eq!(r.body["cluster_id"], "stack-1");

    let r = app.get("/v1/clusters/detail", &member("p1")).await;
    assert_eq!(r.body["clusters"][0]["labels_skipped"], json!({"c": "3"}));
    assert_eq!(
        r.body["clusters"][0]["master_addresses"],
        json!(["10.0.0.1"])
    );

    // A failed cluster shows the faults of its failed node groups.
    add(&app, C2, "two", "p1", &t, "CREATE_FAILED").await;
    let r = app.get(&format!("/v1/clusters/{C2}"), &member("p1")).await;
    assert_eq!(
        r.body["faults"],
        json!({"default-worker-2": "worker says CREATE_FAILED"})
    );
}

async fn cluster_access_and_paging(backend: Backend) {
    let app = TestApp::new(backend).await;
    let t = template(&app).await;
    add(&app, C1, "one", "p1", &t, "CREATE_COMPLETE").await;
    add(&app, C2, "same", "p1", &t, "CREATE_COMPLETE").await;
    add(&app, C3, "same", "p1", &t, "CREATE_COMPLETE").await;

    let r = app.get("/v1/clusters/missing", &member("p1")).await;
    assert_eq!(r.error(404), "Cluster missing could not be found.");
    let r = app.get("/v1/clusters/same", &member("p1")).await;
    assert_eq!(
        r.error(409),
        "Multiple clusters exist with same name. Please use the cluster uuid instead."
    );
    app.get(&format!("/v1/clusters/{C1}"), &member("p2"))
        .await
        .error(404);
    assert_eq!(
        app.get("/v1/clusters", &member("p2")).await.body["clusters"],
        json!([])
    );
    assert_eq!(
        app.get("/v1/clusters", &admin("ops")).await.body["clusters"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        app.get(&format!("/v1/clusters/{C1}"), &admin("ops"))
            .await
            .status,
        StatusCode::OK
    );
    app.get(
        "/v1/clusters",
        &Who::User {
            user: "u".into(),
            project: "p1".into(),
            roles: "".into(),
        },
    )
    .await
    .error(403);

    let r = app.get("/v1/clusters?limit=2", &member("p1")).await;
    let uuids = |r: &Resp| -> Vec<String> {
        r.body["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["uuid"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(uuids(&r), [C1, C2]);
    let next = r.body["next"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://magnum.test:9511")
        .to_string();
    assert_eq!(uuids(&app.get(&next, &member("p1")).await), [C3]);
    let r = app
        .get(
            "/v1/clusters/detail?sort_key=name&sort_dir=desc",
            &member("p1"),
        )
        .await;
    assert_eq!(r.body["clusters"][0]["name"], "same");
    app.get("/v1/clusters?sort_key=bogus", &member("p1"))
        .await
        .error(400);
    app.get(
        "/v1/clusters?marker=9b2e4a3e-7e27-4b39-9c84-0c3d0c6f7d11",
        &member("p1"),
    )
    .await
    .error(404);
    let _: Value = r.body;
}

async fn nodegroup_views(backend: Backend) {
    let app = TestApp::new(backend).await;
    let t = template(&app).await;
    add(&app, C1, "one", "p1", &t, "CREATE_COMPLETE").await;
    let v19 = [("OpenStack-API-Version", "container-infra 1.9")];
    let get = |path: String, who: Who| {
        let app = &app;
        async move { app.send(Method::GET, &path, &who, &v19, None).await }
    };

    // Node groups exist from 1.9.
    let r = app
        .get(&format!("/v1/clusters/{C1}/nodegroups"), &member("p1"))
        .await;
    assert!(
        r.error(406).contains("is not supported for this version"),
        "{}",
        r.raw
    );

    let r = get(format!("/v1/clusters/{C1}/nodegroups"), member("p1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    let items = r.body["nodegroups"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let mut keys: Vec<&str> = items[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "flavor_id",
            "image_id",
            "is_default",
            "max_node_count",
            "merge_labels",
            "min_node_count",
            "name",
            "node_count",
            "role",
            "stack_id",
            "status",
            "uuid"
        ]
    );
    // Upstream unsets what its summary leaves out, and WSME then shows the
    // attributes' defaults, whatever the group holds.
    assert_eq!(items[0]["min_node_count"], 0);
    assert_eq!(items[0]["max_node_count"], Value::Null);
    assert_eq!(items[0]["merge_labels"], false);
    let r = get(
        "/v1/clusters/one/nodegroups?role=master".to_string(),
        member("p1"),
    )
    .await;
    assert_eq!(r.body["nodegroups"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["nodegroups"][0]["role"], "master");
    let r = get(
        format!("/v1/clusters/{C1}/nodegroups?limit=1"),
        member("p1"),
    )
    .await;
    let next = r.body["next"].as_str().unwrap();
    assert!(
        next.contains(&format!(
            "/v1/clusters/{C1}/nodegroups?sort_key=id&sort_dir=asc&limit=1&marker="
        )),
        "{next}"
    );

    let r = get(
        format!("/v1/clusters/{C1}/nodegroups/default-worker-2"),
        member("p1"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    let b = &r.body;
    assert_eq!(b["node_addresses"], json!(["10.0.0.2", "10.0.0.3"]));
    assert_eq!(b["cluster_id"], C1);
    assert_eq!(
        b["labels_skipped"],
        json!({"a": "1", "b": "9", "d": "4"}),
        "differences from the cluster's labels"
    );
    let uuid = b["uuid"].as_str().unwrap().to_string();
    assert_eq!(
        b["links"][0]["href"],
        format!("http://magnum.test:9511/v1/clusters/{C1}/nodegroups/{uuid}")
    );
    let id = b["id"].as_i64().unwrap();
    assert_eq!(
        get(format!("/v1/clusters/{C1}/nodegroups/{uuid}"), member("p1"))
            .await
            .body,
        r.body
    );
    assert_eq!(
        get(format!("/v1/clusters/{C1}/nodegroups/{id}"), member("p1"))
            .await
            .body,
        r.body
    );
    let r = get(format!("/v1/clusters/{C1}/nodegroups/nope"), member("p1")).await;
    assert_eq!(r.error(404), "Nodegroup nope could not be found.");
    get(format!("/v1/clusters/{C1}/nodegroups"), member("p2"))
        .await
        .error(404);
    assert_eq!(
        get(format!("/v1/clusters/{C1}/nodegroups"), admin("ops"))
            .await
            .status,
        StatusCode::OK
    );
}

/// The statements one request sends, counted by the pool itself.
async fn statements_of(app: &TestApp, path: &str, who: &Who) -> u64 {
    let before = app.db.statements();
    let r = app.get(path, who).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.raw);
    app.db.statements() - before
}

/// A page costs the same few statements whether it holds 5 clusters or 50
/// (not one node group query per cluster), on every backend.
async fn reads_cost_a_fixed_number_of_statements(backend: Backend) {
    let app = TestApp::new(backend).await;
    let t = template(&app).await;
    let uuids: Vec<String> = (0..60)
        .map(|i| format!("c{i:07}-1111-4111-8111-111111111111"))
        .collect();
    for (i, u) in uuids.iter().enumerate() {
        add(&app, u, &format!("c{i}"), "p1", &t, "CREATE_COMPLETE").await;
    }
    let who = member("p1");
    for path in ["/v1/clusters", "/v1/clusters/detail"] {
        let small = statements_of(&app, &format!("{path}?limit=5"), &who).await;
        let page = statements_of(&app, &format!("{path}?limit=50"), &who).await;
        let all = statements_of(&app, path, &who).await;
        assert!(page <= 4, "{path}?limit=50 sent {page} statements");
        assert_eq!(small, page, "{path}: 5 and 50 clusters cost alike");
        assert_eq!(all, page, "{path}: 60 clusters cost alike");
        // The next page, from a marker, costs one more (the marker's row).
        let marker =
            statements_of(&app, &format!("{path}?limit=50&marker={}", uuids[9]), &who).await;
        assert!(marker <= page + 1, "{path} with a marker sent {marker}");
    }
    // The pages still hold what they did: every cluster with its counts.
    let r = app.get("/v1/clusters/detail?limit=50", &who).await;
    let items = r.body["clusters"].as_array().unwrap();
    assert_eq!(items.len(), 50);
    for item in items {
        assert_eq!(item["node_count"], 2);
        assert_eq!(item["master_count"], 1);
        assert_eq!(item["master_addresses"], json!(["10.0.0.1"]));
        assert_eq!(item["labels_skipped"], json!({"c": "3"}));
    }
    let r = app.get("/v1/clusters?limit=50", &who).await;
    let items = r.body["clusters"].as_array().unwrap();
    assert_eq!(items.len(), 50);
    for item in items {
        assert_eq!(item["node_count"], 2);
        assert_eq!(item["master_count"], 1);
        assert_eq!(item["keypair"], "kp");
        assert_eq!(item["labels"], json!({"a": "1", "b": "9", "d": "4"}));
    }
    // A show by uuid: the cluster, its template's labels and its node
    // groups in one statement; by name, the node groups in a second.
    for (ident, cost) in [(uuids[3].as_str(), 1), ("c3", 2)] {
        let show = statements_of(&app, &format!("/v1/clusters/{ident}"), &who).await;
        assert_eq!(show, cost, "{ident}'s show sent {show} statements");
        let r = app.get(&format!("/v1/clusters/{ident}"), &who).await;
        assert_eq!(r.body["uuid"], uuids[3].as_str());
        assert_eq!(r.body["labels_overridden"], json!({"b": "2"}));
        assert_eq!(r.body["labels_skipped"], json!({"c": "3"}));
        assert_eq!(r.body["labels_added"], json!({"d": "4"}));
        assert_eq!(r.body["node_addresses"], json!(["10.0.0.2", "10.0.0.3"]));
        assert_eq!(r.body["master_addresses"], json!(["10.0.0.1"]));
        assert_eq!(r.body["node_count"], 2);
        assert_eq!(r.body["master_count"], 1);
    }
    // Another project's cluster is not found by uuid, nor by an admin of
    // another project without all_projects.
    let r = app
        .get(&format!("/v1/clusters/{}", uuids[3]), &member("p2"))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.raw);
    // A cluster without node groups (they are gone; the join finds none)
    // shows with none, and its template's labels.
    let lone = "c9999999-1111-4111-8111-111111111111";
    let cluster = Cluster {
        uuid: lone.into(),
        name: Some("lone".into()),
        project_id: Some("p1".into()),
        user_id: Some("user-p1".into()),
        cluster_template_id: Some(t.clone()),
        status: Some("CREATE_COMPLETE".into()),
        labels: json!({"a": "1"}).as_object().cloned(),
        ..Default::default()
    };
    app.db.cluster_create(&cluster, &[]).await.unwrap();
    let r = app.get(&format!("/v1/clusters/{lone}"), &who).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(r.body["node_addresses"], json!([]));
    assert_eq!(r.body["labels_skipped"], json!({"b": "2", "c": "3"}));
}
