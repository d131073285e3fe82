//! Clusters end to end in one process on every backend: the API queues
//! each operation, the in-process conductor runs it through the fake
//! driver, and the status sync moves the cluster through upstream's
//! statuses, including failures, timeouts, refusals and races.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{json, Value};

on_all_backends!(
    lifecycle,
    create_defaults_and_validation,
    failures_and_timeouts,
    concurrent_updates_have_one_winner,
    queued_work_survives_a_lost_cast,
    credentials_and_health,
    an_unreachable_cloud_is_retried_for_every_operation,
);

const LATEST: (&str, &str) = ("OpenStack-API-Version", "container-infra latest");

async fn at(app: &TestApp, method: Method, path: &str, version: &str, body: Option<Value>) -> Resp {
    let v = format!("container-infra {version}");
    app.send(
        method,
        path,
        &Who::Default,
        &[("OpenStack-API-Version", v.as_str())],
        body.map(|b| Body::from(b.to_string())),
    )
    .await
}

async fn cluster_count(app: &TestApp) -> usize {
    let r = app.get("/v1/clusters", &Who::Default).await;
    r.body["clusters"].as_array().unwrap().len()
}

async fn lifecycle(backend: Backend) {
    let app = TestApp::new(backend).await;
    let t = app.create_template(&Who::Default, fake_k8s("t1")).await;
    let t2 = app.create_template(&Who::Default, fake_k8s("t2")).await;
    let id = app
        .create_cluster(
            &Who::Default,
            json!({"name": "c1", "cluster_template_id": "t1", "node_count": 2}),
        )
        .await;
    // The cluster is visible at once, in progress, with its node groups.
    let r = app.get(&format!("/v1/clusters/{id}"), &Who::Default).await;
    assert_eq!(r.body["status"], "CREATE_IN_PROGRESS", "{}", r.raw);
    assert_eq!(r.body["cluster_template_id"], t["uuid"]);

    let c = app.settle(&id, "CREATE_COMPLETE").await;
    assert_eq!(c["node_count"], 2);
    assert_eq!(c["master_count"], 1);
    assert_eq!(c["api_address"], "https://10.0.0.1:6443");
    assert_eq!(c["node_addresses"], json!(["10.0.1.1", "10.0.1.2"]));
    assert_eq!(c["coe_version"], "v1.30.0-fake");
    assert_eq!(c["stack_id"], format!("fake-{id}"));
    let ngs = at(
        &app,
        Method::GET,
        &format!("/v1/clusters/{id}/nodegroups"),
        "latest",
        None,
    )
    .await;
    for ng in ngs.body["nodegroups"].as_array().unwrap() {
        assert_eq!(ng["status"], "CREATE_COMPLETE", "{}", ngs.raw);
    }

    // Update the worker count.
    let patch = json!([{"op": "replace", "path": "/node_count", "value": 3}]);
    let r = at(
        &app,
        Method::PATCH,
        &format!("/v1/clusters/{id}"),
        "latest",
        Some(patch.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(r.body["uuid"], id);
    let c = app.settle(&id, "UPDATE_COMPLETE").await;
    assert_eq!(c["node_count"], 3);

    // Only node_count and health may change.
    let r = at(
        &app,
        Method::PATCH,
        &format!("/v1/clusters/{id}"),
        "latest",
        Some(json!([{"op": "replace", "path": "/name", "value": "other"}])),
    )
    .await;
    assert_eq!(r.error(400), "cannot change cluster property(ies) name.");
    let r = at(
        &app,
        Method::PATCH,
        &format!("/v1/clusters/{id}"),
        "latest",
        Some(json!([{"op": "replace", "path": "/api_address", "value": "x"}])),
    )
    .await;
    r.error(400);

    // Health alone does not move the status.
    let health = json!([
        {"op": "replace", "path": "/health_status", "value": "HEALTHY"},
        {"op": "replace", "path": "/health_status_reason", "value": {"api": "ok"}},
    ]);
    let r = at(
        &app,
        Method::PATCH,
        &format!("/v1/clusters/{id}"),
        "latest",
        Some(health),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    let c = app.settle(&id, "UPDATE_COMPLETE").await;
    let mut c = c;
    for _ in 0..50 {
        if c["health_status"] == "HEALTHY" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        c = app
            .get(&format!("/v1/clusters/{id}"), &Who::Default)
            .await
            .body;
    }
    assert_eq!(c["health_status"], "HEALTHY");
    assert_eq!(c["health_status_reason"], json!({"api": "ok"}));

    // Resize (1.7+), down to zero from 1.10.
    let r = at(
        &app,
        Method::POST,
        &format!("/v1/clusters/{id}/actions/resize"),
        "1.6",
        Some(json!({"node_count": 1})),
    )
    .await;
    r.error(406);
    let r = at(
        &app,
        Method::POST,
        &format!("/v1/clusters/{id}/actions/resize"),
        "1.9",
        Some(json!({"node_count": 0})),
    )
    .await;
    assert_eq!(
        r.error(400),
        "Resizing a nodegroup to zero is not supported in the provided microversion."
    );
    let r = at(
        &app,
        Method::POST,
        &format!("/v1/clusters/{id}/actions/resize"),
        "latest",
        Some(json!({"node_count": 1, "nodes_to_remove": ["n1"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    let c = app.settle(&id, "UPDATE_COMPLETE").await;
    assert_eq!(c["node_count"], 1);
    let r = at(
        &app,
        Method::POST,
        &format!("/v1/clusters/{id}/actions/resize"),
        "latest",
        Some(json!({"node_count": 2, "nodegroup": "default-master"})),
    )
    .await;
    assert_eq!(
        r.error(400),
        "master nodegroup size of 2 is invalid, size cannot be an even number."
    );

    // Upgrade to another template (1.8+; 1.7 refuses).
    let up = json!({"cluster_template": "t2", "max_batch_size": 1});
    let r = at(
        &app,
        Method::POST,
        &format!("/v1/clusters/{id}/actions/upgrade"),
        "1.7",
        Some(up.clone()),
    )
    .await;
    assert_eq!(
        r.error(400),
        "Cluster upgrade is not supported in the provided microversion."
    );
    let r = at(
        &app,
        Method::POST,
        &format!("/v1/clusters/{id}/actions/upgrade"),
        "latest",
        Some(up),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    let c = app.settle(&id, "UPDATE_COMPLETE").await;
    assert_eq!(c["cluster_template_id"], t2["uuid"]);

    // Delete: 204, then gone with its node groups.
    let r = app
        .delete(&format!("/v1/clusters/{id}"), &Who::Default)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.raw);
    assert!(r.raw.is_empty());
    app.settle(&id, "gone").await;
    assert!(app.db.nodegroups_of(&id).await.unwrap().is_empty());
    assert!(app.db.operations_of(&id).await.unwrap().is_empty());
    assert_eq!(
        app.cloud.history(&id),
        ["create", "update", "resize", "upgrade", "delete"]
    );
}

async fn create_defaults_and_validation(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.create_template(&Who::Default, fake_k8s("t1")).await;
    let id = app
        .create_cluster(&Who::Default, json!({"cluster_template_id": "t1"}))
        .await;
    let c = app
        .get(&format!("/v1/clusters/{id}"), &Who::Default)
        .await
        .body;
    assert!(c["name"].as_str().unwrap().ends_with("-cluster"), "{c}");
    assert_eq!(c["keypair"], "kp");
    assert_eq!(c["flavor_id"], "m1.small");
    assert_eq!(c["master_flavor_id"], "m1.medium");
    assert_eq!(c["docker_volume_size"], 5);
    assert_eq!(c["create_timeout"], 60);
    assert_eq!(c["node_count"], 1);
    assert_eq!(c["master_count"], 1);
    assert_eq!(
        c["labels"],
        json!({"fake_seconds": "0", "kube_tag": "v1.30"})
    );
    assert_eq!(c["project_id"], "default");

    // Labels: given ones replace the template's, unless merged.
    let id = app
        .create_cluster(
            &Who::Default,
            json!({"cluster_template_id": "t1", "labels": {"a": 1}}),
        )
        .await;
    let c = app
        .get(&format!("/v1/clusters/{id}"), &Who::Default)
        .await
        .body;
    assert_eq!(c["labels"], json!({"a": "1"}));
    assert_eq!(c["labels_added"], json!({"a": "1"}));
    let id = app
        .create_cluster(
            &Who::Default,
            json!({"cluster_template_id": "t1", "labels": {"kube_tag": "v2"}, "merge_labels": true}),
        )
        .await;
    let c = app
        .get(&format!("/v1/clusters/{id}"), &Who::Default)
        .await
        .body;
    assert_eq!(c["labels"], json!({"fake_seconds": "0", "kube_tag": "v2"}));
    assert_eq!(c["labels_overridden"], json!({"kube_tag": "v1.30"}));
    let before = cluster_count(&app).await;

    let bad: &[(&str, Value, u16, &str)] = &[
        ("latest", json!({}), 400, "Mandatory field missing"),
        (
            "latest",
            json!({"cluster_template_id": "nope"}),
            404,
            "ClusterTemplate nope could not be found.",
        ),
        (
            "1.9",
            json!({"cluster_template_id": "nope"}),
            400,
            "ClusterTemplate nope could not be found.",
        ),
        (
            "latest",
            json!({"cluster_template_id": "t1", "name": "1abc"}),
            400,
            "Value should match the pattern",
        ),
        (
            "latest",
            json!({"cluster_template_id": "t1", "node_count": -1}),
            400,
            "greater or equal to 0",
        ),
        (
            "1.9",
            json!({"cluster_template_id": "t1", "node_count": 0}),
            400,
            "Resizing a nodegroup to zero",
        ),
        (
            "latest",
            json!({"cluster_template_id": "t1", "master_count": 3}),
            400,
            "master_count must be 1 when master_lb_enabled is False",
        ),
        (
            "latest",
            json!({"cluster_template_id": "t1", "master_count": 2, "master_lb_enabled": true}),
            400,
            "master nodegroup size of 2 is invalid",
        ),
        (
            "latest",
            json!({"cluster_template_id": "t1", "bogus": 1}),
            400,
            "Unknown attribute",
        ),
        (
            "latest",
            json!({"cluster_template_id": "t1", "api_address": "x"}),
            400,
            "read only",
        ),
        (
            "latest",
            json!({"cluster_template_id": "t1", "docker_volume_size": 0}),
            400,
            "greater or equal to 1",
        ),
    ];
    for (version, body, code, text) in bad {
        let r = at(
            &app,
            Method::POST,
            "/v1/clusters",
            version,
            Some(body.clone()),
        )
        .await;
        let detail = r.error(*code);
        assert!(detail.contains(text), "{body}: {detail}");
    }
    // Zero workers are fine from 1.10.
    let r = at(
        &app,
        Method::POST,
        "/v1/clusters",
        "latest",
        Some(json!({"cluster_template_id": "t1", "node_count": 0})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(
        cluster_count(&app).await,
        before + 1,
        "rejected requests created nothing"
    );

    // Quotas: a project row, else [quotas] max_clusters_per_project.
    let r = app
        .post(
            "/v1/quotas",
            &Who::Default,
            json!({"project_id": "p1", "resource": "Cluster", "hard_limit": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    app.create_template(&member("p1"), fake_k8s("mine")).await;
    let first = app
        .post(
            "/v1/clusters",
            &member("p1"),
            json!({"cluster_template_id": "mine"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.raw);
    let second = app
        .post(
            "/v1/clusters",
            &member("p1"),
            json!({"cluster_template_id": "mine"}),
        )
        .await;
    assert_eq!(
        second.error(403),
        "Resource limit exceeded: You have reached the maximum clusters per project, 1. You \
         may delete a cluster to make room for a new one."
    );
    // Readers cannot create; others cannot see.
    let r = app
        .post(
            "/v1/clusters",
            &reader("p1"),
            json!({"cluster_template_id": "mine"}),
        )
        .await;
    r.error(403);
    let id = first.body["uuid"].as_str().unwrap();
    app.get(&format!("/v1/clusters/{id}"), &member("p2"))
        .await
        .error(404);
    app.delete(&format!("/v1/clusters/{id}"), &member("p2"))
        .await
        .error(404);
}

async fn failures_and_timeouts(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.create_template(&Who::Default, fake_k8s("t1")).await;
    let make = |labels: Value| json!({"cluster_template_id": "t1", "labels": labels, "merge_labels": true});

    // The driver call fails.
    let id = app
        .create_cluster(&Who::Default, make(json!({"fake_refuse": "create"})))
        .await;
    let c = app.settle(&id, "CREATE_FAILED").await;
    assert_eq!(
        c["status_reason"],
        "fake cloud refused to create the cluster"
    );
    assert_eq!(
        c["faults"]["default-worker"],
        "fake cloud refused to create the cluster"
    );

    // The orchestration reports failure.
    let id = app
        .create_cluster(&Who::Default, make(json!({"fake_fail": "create"})))
        .await;
    let c = app.settle(&id, "CREATE_FAILED").await;
    assert_eq!(c["status_reason"], "fake cloud: create failed as asked");
    // Updating a failed cluster is refused as upstream's conductor does.
    let r = at(
        &app,
        Method::PATCH,
        &format!("/v1/clusters/{id}"),
        "latest",
        Some(json!([{"op": "replace", "path": "/node_count", "value": 4}])),
    )
    .await;
    assert_eq!(
        r.error(400),
        "Updating a cluster when status is \"CREATE_FAILED\" is not supported."
    );
    // A failed cluster can be deleted.
    app.delete(&format!("/v1/clusters/{id}"), &Who::Default)
        .await;
    app.settle(&id, "gone").await;

    // create_timeout: a create that never finishes fails in time.
    let id = app.create_cluster(&Who::Default, json!({"cluster_template_id": "t1", "create_timeout": 1, "labels": {"fake_hang": "create"}})).await;
    for _ in 0..3 {
        app.conductor.tick().await;
    }
    let c = app
        .get(&format!("/v1/clusters/{id}"), &Who::Default)
        .await
        .body;
    assert_eq!(c["status"], "CREATE_IN_PROGRESS");
    magnum_db::testing::age_cluster(&app.db, &id, 61).await;
    let c = app.settle(&id, "CREATE_FAILED").await;
    assert_eq!(
        c["status_reason"],
        "Cluster creation timed out after 1 minutes"
    );

    // A failing delete ends DELETE_FAILED, and can be retried.
    let id = app
        .create_cluster(&Who::Default, make(json!({"fake_fail": "delete"})))
        .await;
    app.settle(&id, "CREATE_COMPLETE").await;
    app.delete(&format!("/v1/clusters/{id}"), &Who::Default)
        .await;
    let c = app.settle(&id, "DELETE_FAILED").await;
    assert_eq!(c["status_reason"], "fake cloud: delete failed as asked");

    // A Heat template: the driver cannot build yet, and says so.
    let heat = app
        .create_template(
            &Who::Default,
            json!({"name": "heat", "coe": "kubernetes", "image_id": "fcos", "driver": "k8s_fedora_coreos_v1"}),
        )
        .await;
    assert_eq!(heat["driver"], "k8s_fedora_coreos_v1");
    let id = app
        .create_cluster(&Who::Default, json!({"cluster_template_id": "heat"}))
        .await;
    let c = app.settle(&id, "CREATE_FAILED").await;
    assert_eq!(
        c["status_reason"],
        "Creating a cluster is not available with the k8s_fedora_coreos_v1 driver yet"
    );
    // Nothing was built, so deleting is immediate.
    app.delete(&format!("/v1/clusters/{id}"), &Who::Default)
        .await;
    app.settle(&id, "gone").await;
}

async fn concurrent_updates_have_one_winner(backend: Backend) {
    let app = std::sync::Arc::new(TestApp::new(backend).await);
    app.create_template(&Who::Default, fake_k8s("t1")).await;
    let id = app
        .create_cluster(&Who::Default, json!({"cluster_template_id": "t1"}))
        .await;
    app.settle(&id, "CREATE_COMPLETE").await;
    let mut tasks = Vec::new();
    for n in 2..8 {
        let app = app.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let patch = json!([{"op": "replace", "path": "/node_count", "value": n}]);
            app.send(
                Method::PATCH,
                &format!("/v1/clusters/{id}"),
                &Who::Default,
                &[LATEST],
                Some(Body::from(patch.to_string())),
            )
            .await
            .status
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::BAD_REQUEST => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(accepted, 1, "exactly one update wins");
    app.settle(&id, "UPDATE_COMPLETE").await;
}

async fn queued_work_survives_a_lost_cast(backend: Backend) {
    // No bus: the API only queues; the conductor's sweep finds the work.
    let app = TestApp::without_bus(backend).await;
    app.create_template(&Who::Default, fake_k8s("t1")).await;
    let id = app
        .create_cluster(&Who::Default, json!({"cluster_template_id": "t1"}))
        .await;
    let ops = app.db.operations_of(&id).await.unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].method, "cluster_create");
    assert!(ops[0].context.get("auth_token").is_none_or(Value::is_null));
    app.settle(&id, "CREATE_COMPLETE").await;
    app.delete(&format!("/v1/clusters/{id}"), &Who::Default)
        .await;
    app.settle(&id, "gone").await;
}

async fn credentials_and_health(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.create_template(&Who::Default, fake_k8s("t1")).await;
    let id = app
        .create_cluster(
            &Who::Default,
            json!({"cluster_template_id": "t1", "merge_labels": true,
                   "labels": {"fake_health": "HEALTHY"}}),
        )
        .await;
    let path = format!("/v1/credentials/{id}");
    at(&app, Method::PATCH, &path, "1.11", None)
        .await
        .error(406);
    // Not while the cluster is being created.
    let r = at(&app, Method::PATCH, &path, "latest", None).await;
    assert!(r
        .error(400)
        .contains("when cluster status is \"CREATE_IN_PROGRESS\""));
    app.settle(&id, "CREATE_COMPLETE").await;
    // A cloud that cannot be asked: 503, nothing rotated.
    app.cloud_outage(true);
    let r = at(&app, Method::PATCH, &path, "latest", None).await;
    assert!(r.error(503).contains("unreachable"), "{}", r.raw);
    app.cloud_outage(false);
    let r = at(&app, Method::PATCH, &path, "latest", None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(r.body["uuid"], id);
    assert_eq!(app.cloud.history(&id), ["create", "rotate_credential"]);
    at(&app, Method::PATCH, "/v1/credentials/nope", "latest", None)
        .await
        .error(404);

    // A driver without rotation says so.
    let id2 = app
        .create_cluster(
            &Who::Default,
            json!({"cluster_template_id": "t1", "merge_labels": true,
                   "labels": {"fake_refuse": "rotate_credential"}}),
        )
        .await;
    app.settle(&id2, "CREATE_COMPLETE").await;
    let r = at(
        &app,
        Method::PATCH,
        &format!("/v1/credentials/{id2}"),
        "latest",
        None,
    )
    .await;
    assert_eq!(
        r.error(400),
        "Credential rotation is not supported by driver."
    );

    // The health sync records what the COE reports.
    app.conductor.sync_health().await;
    let c = app
        .get(&format!("/v1/clusters/{id}"), &Who::Default)
        .await
        .body;
    assert_eq!(c["health_status"], "HEALTHY");
    assert_eq!(c["health_status_reason"], json!({"api": "ok"}));
    let c = app
        .get(&format!("/v1/clusters/{id2}"), &Who::Default)
        .await
        .body;
    assert_eq!(c["health_status"], Value::Null);
}

/// While the cloud cannot be reached, every operation waits, saying why on
/// the cluster, and runs once the cloud is back: none fails for it.
async fn an_unreachable_cloud_is_retried_for_every_operation(backend: Backend) {
    let app = TestApp::with_config(backend, "[conductor]\noperation_retry_delay = 1\n").await;
    app.create_template(&Who::Default, fake_k8s("t1")).await;
    app.cloud_outage(true);
    let id = app
        .create_cluster(&Who::Default, json!({"cluster_template_id": "t1"}))
        .await;
    let path = format!("/v1/clusters/{id}");
    let waits = |status: &'static str| {
        let app = &app;
        let path = path.clone();
        async move {
            let said = |c: &Value| {
                let reason = c["status_reason"].as_str().unwrap_or_default();
                reason.contains("unreachable") && reason.contains("will retry")
            };
            let mut c = Value::Null;
            for _ in 0..100 {
                app.conductor.tick().await;
                c = app.get(&path, &Who::Default).await.body;
                if said(&c) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            assert!(said(&c), "{c}");
            // Retried (the delay is a second), and still waiting.
            for _ in 0..3 {
                tokio::time::sleep(std::time::Duration::from_millis(700)).await;
                app.conductor.tick().await;
            }
            let c = app.get(&path, &Who::Default).await.body;
            assert_eq!(c["status"], status, "{c}");
            assert!(said(&c), "{c}");
        }
    };
    waits("CREATE_IN_PROGRESS").await;
    app.cloud_outage(false);
    app.settle(&id, "CREATE_COMPLETE").await;

    // An update (node count).
    app.cloud_outage(true);
    let r = at(
        &app,
        Method::PATCH,
        &path,
        "latest",
        Some(json!([{"op": "replace", "path": "/node_count", "value": 3}])),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    waits("UPDATE_IN_PROGRESS").await;
    app.cloud_outage(false);
    let c = app.settle(&id, "UPDATE_COMPLETE").await;
    assert_eq!(c["node_count"], 3);

    // A resize.
    app.cloud_outage(true);
    let r = at(
        &app,
        Method::POST,
        &format!("{path}/actions/resize"),
        "latest",
        Some(json!({"node_count": 2})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    waits("UPDATE_IN_PROGRESS").await;
    app.cloud_outage(false);
    let c = app.settle(&id, "UPDATE_COMPLETE").await;
    assert_eq!(c["node_count"], 2);

    // A node group of its own.
    app.cloud_outage(true);
    let r = at(
        &app,
        Method::POST,
        &format!("{path}/nodegroups"),
        "latest",
        Some(json!({"name": "extra", "node_count": 1})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    waits("UPDATE_IN_PROGRESS").await;
    app.cloud_outage(false);
    app.settle(&id, "UPDATE_COMPLETE").await;
    let ng = at(
        &app,
        Method::GET,
        &format!("{path}/nodegroups/extra"),
        "latest",
        None,
    )
    .await
    .body;
    assert_eq!(ng["status"], "CREATE_COMPLETE", "{ng}");

    // A delete.
    app.cloud_outage(true);
    app.delete(&path, &Who::Default).await;
    waits("DELETE_IN_PROGRESS").await;
    app.cloud_outage(false);
    app.settle(&id, "gone").await;
    assert!(app.cloud.history(&id).iter().all(|a| !a.contains("fail")));
}
