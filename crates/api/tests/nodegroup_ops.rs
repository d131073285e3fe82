//! Node groups' write side end to end in one process on every backend:
//! create, PATCH and delete queue their operations, the in-process
//! conductor runs them through the fake driver, and the status sync moves
//! the groups (and their cluster) through upstream's statuses. Every
//! refused request changes nothing.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{json, Value};

on_all_backends!(lifecycle, refusals, cluster_status_gates);

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

async fn show(app: &TestApp, cluster: &str, ng: &str) -> Resp {
    at(
        app,
        Method::GET,
        &format!("/v1/clusters/{cluster}/nodegroups/{ng}"),
        "latest",
        None,
    )
    .await
}

/// A settled cluster `name` of template `t1` (created here).
async fn ready_cluster(app: &TestApp, name: &str) -> String {
    app.create_template(&Who::Default, fake_k8s("t1")).await;
    let id = app
        .create_cluster(
            &Who::Default,
            json!({"name": name, "cluster_template_id": "t1", "node_count": 1}),
        )
        .await;
    app.settle(&id, "CREATE_COMPLETE").await;
    id
}

async fn lifecycle(backend: Backend) {
    let app = TestApp::new(backend).await;
    let id = ready_cluster(&app, "c1").await;
    let ngs = format!("/v1/clusters/{id}/nodegroups");

    // Create: 202 with the group, in progress at once.
    let r = at(
        &app,
        Method::POST,
        "/v1/clusters/c1/nodegroups",
        "latest",
        Some(json!({
            "name": "ng1",
            "node_count": 2,
            "max_node_count": 5,
            "labels": {"extra": "x"},
            "merge_labels": true,
            "node_labels": {"tier": "gpu", "node.kubernetes.io/pool": "a"},
            "node_taints": [{"key": "gpu", "value": "true", "effect": "NoSchedule"}],
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    let ng = r.body;
    assert_eq!(ng["name"], "ng1");
    assert_eq!(ng["status"], "CREATE_IN_PROGRESS");
    assert_eq!(ng["cluster_id"], id);
    assert_eq!(ng["project_id"], "default");
    assert_eq!(ng["node_count"], 2);
    assert_eq!(ng["min_node_count"], 0);
    assert_eq!(ng["max_node_count"], 5);
    assert_eq!(ng["role"], "worker");
    assert_eq!(ng["is_default"], false);
    assert_eq!(ng["image_id"], "fedora-coreos");
    assert_eq!(ng["flavor_id"], "m1.small");
    assert_eq!(
        ng["labels"],
        json!({"fake_seconds": "0", "kube_tag": "v1.30", "extra": "x"})
    );
    assert_eq!(ng["labels_added"], json!({"extra": "x"}));
    assert_eq!(
        ng["node_labels"],
        json!({"tier": "gpu", "node.kubernetes.io/pool": "a"})
    );
    assert_eq!(
        ng["node_taints"],
        json!([{"key": "gpu", "value": "true", "effect": "NoSchedule"}])
    );
    assert!(ng["id"].as_i64().unwrap() > 0, "{ng}");
    let uuid = ng["uuid"].as_str().unwrap().to_string();
    assert!(ng["links"][0]["href"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/v1/clusters/{id}/nodegroups/{uuid}")));
    let c = app.get(&format!("/v1/clusters/{id}"), &Who::Default).await;
    assert_eq!(c.body["status"], "UPDATE_IN_PROGRESS");
    let ops = app.db.operations_of(&id).await.unwrap();
    assert!(ops.iter().all(|o| o.method == "nodegroup_create"));

    // The group completes with its cluster's update.
    app.settle(&id, "UPDATE_COMPLETE").await;
    let r = show(&app, &id, "ng1").await;
    assert_eq!(r.body["status"], "CREATE_COMPLETE", "{}", r.raw);
    assert_eq!(r.body["node_addresses"].as_array().unwrap().len(), 2);
    // Its own stack is recorded, as upstream's Heat driver records it (the
    // fake driver names it after the cluster's stack and the group).
    assert_eq!(r.body["stack_id"], format!("fake-{id}-{uuid}"), "{}", r.raw);
    assert_eq!(r.body["merge_labels"], false);
    let stored = app.db.nodegroup_get(&uuid).await.unwrap().unwrap();
    assert_eq!(stored.stack_id, Some(format!("fake-{id}-{uuid}")));
    let list = at(&app, Method::GET, &ngs, "latest", None).await;
    assert_eq!(list.body["nodegroups"].as_array().unwrap().len(), 3);

    // Labels given without merge replace the cluster's; names default
    // nothing else.
    let r = at(
        &app,
        Method::POST,
        &ngs,
        "1.9",
        Some(
            json!({"name": "ng2", "labels": {"only": "me"}, "flavor_id": "m1.large",
                    "image_id": "other", "docker_volume_size": 7}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(r.body["labels"], json!({"only": "me"}));
    assert_eq!(
        r.body["labels_skipped"],
        json!({"fake_seconds": "0", "kube_tag": "v1.30"})
    );
    assert_eq!(r.body["flavor_id"], "m1.large");
    assert_eq!(r.body["image_id"], "other");
    assert_eq!(r.body["docker_volume_size"], 7);
    assert_eq!(r.body["node_count"], 1);
    app.settle(&id, "UPDATE_COMPLETE").await;
    assert_eq!(
        show(&app, &id, "ng2").await.body["status"],
        "CREATE_COMPLETE"
    );

    // PATCH the sizes: 202 with the new settings, stored by the conductor.
    let r = at(
        &app,
        Method::PATCH,
        &format!("{ngs}/ng1"),
        "latest",
        Some(json!([
            {"op": "replace", "path": "/max_node_count", "value": 3},
            {"op": "replace", "path": "/min_node_count", "value": 1},
        ])),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(r.body["status"], "UPDATE_IN_PROGRESS");
    assert_eq!(r.body["max_node_count"], 3);
    assert_eq!(r.body["min_node_count"], 1);
    assert_eq!(
        show(&app, &id, "ng1").await.body["status"],
        "UPDATE_IN_PROGRESS"
    );
    app.settle(&id, "UPDATE_COMPLETE").await;
    let r = show(&app, &id, &uuid).await;
    assert_eq!(r.body["status"], "UPDATE_COMPLETE", "{}", r.raw);
    assert_eq!(r.body["max_node_count"], 3);
    assert_eq!(r.body["min_node_count"], 1);
    assert_eq!(r.body["node_count"], 2);

    // Node labels and taints (1.14), as objects or Python literals; the
    // maximum may be removed.
    let r = at(
        &app,
        Method::PATCH,
        &format!("{ngs}/{uuid}"),
        "latest",
        Some(json!([
            {"op": "replace", "path": "/node_labels", "value": "{'tier': 'cpu'}"},
            {"op": "replace", "path": "/node_taints", "value": []},
            {"op": "remove", "path": "/max_node_count"},
        ])),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    app.settle(&id, "UPDATE_COMPLETE").await;
    let r = show(&app, &id, "ng1").await;
    assert_eq!(r.body["node_labels"], json!({"tier": "cpu"}), "{}", r.raw);
    assert_eq!(r.body["node_taints"], json!([]));
    assert_eq!(r.body["max_node_count"], Value::Null);
    assert_eq!(r.body["min_node_count"], 1);

    // Delete: 204, then gone once the cluster's update completes.
    let r = at(&app, Method::DELETE, &format!("{ngs}/ng1"), "latest", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.raw);
    assert!(r.raw.is_empty());
    assert_eq!(
        show(&app, &id, "ng1").await.body["status"],
        "DELETE_IN_PROGRESS"
    );
    app.settle(&id, "UPDATE_COMPLETE").await;
    let r = show(&app, &id, "ng1").await;
    assert_eq!(r.error(404), "Nodegroup ng1 could not be found.");
    let left: Vec<String> = app
        .db
        .nodegroups_of(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(left, ["default-master", "default-worker", "ng2"]);
    assert!(app.db.operations_of(&id).await.unwrap().is_empty());
    assert_eq!(
        app.cloud.history(&id),
        [
            "create",
            "nodegroup_create",
            "nodegroup_create",
            "nodegroup_update",
            "nodegroup_update",
            "nodegroup_delete"
        ]
    );

    // The cluster's delete takes its remaining groups along.
    app.delete(&format!("/v1/clusters/{id}"), &Who::Default)
        .await;
    app.settle(&id, "gone").await;
    assert!(app.db.nodegroups_of(&id).await.unwrap().is_empty());
}

/// The groups of a cluster as (name, status, min, max, labels, taints).
async fn snapshot(app: &TestApp, id: &str) -> Vec<Value> {
    app.db
        .nodegroups_of(id)
        .await
        .unwrap()
        .into_iter()
        .map(|n| {
            json!([
                n.name,
                n.status,
                n.node_count,
                n.min_node_count,
                n.max_node_count,
                n.node_labels,
                n.node_taints
            ])
        })
        .collect()
}

async fn refusals(backend: Backend) {
    let app = TestApp::new(backend).await;
    let id = ready_cluster(&app, "c1").await;
    let ngs = format!("/v1/clusters/{id}/nodegroups");
    let r = at(
        &app,
        Method::POST,
        &ngs,
        "latest",
        Some(json!({"name": "ng1", "max_node_count": 4})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    app.settle(&id, "UPDATE_COMPLETE").await;
    let before = snapshot(&app, &id).await;
    assert_eq!(before.len(), 3);

    let taint = |t: Value| json!({"name": "x", "node_taints": [t]});
    let bad_posts: &[(&str, Value, u16, &str)] = &[
        (
            "1.8",
            json!({"name": "x"}),
            406,
            "Version 1.8 was requested but the requested API post is not supported for this \
             version.",
        ),
        (
            "latest",
            json!({"name": "default-worker"}),
            409,
            "A node group with name default-worker already exists in the cluster c1.",
        ),
        (
            "latest",
            json!({"name": "ng1", "node_count": 3}),
            409,
            "A node group with name ng1 already exists in the cluster c1.",
        ),
        (
            "latest",
            json!({"name": "m", "role": "master"}),
            400,
            "Creating master nodegroups is currently not supported.",
        ),
        (
            "latest",
            json!({"name": "m", "role": "master", "node_labels": {"a": "b"}}),
            409,
            "node_labels for m is invalid (node_labels may not be set on master nodegroups).",
        ),
        (
            "latest",
            json!({"name": "x", "min_node_count": 3, "max_node_count": 2}),
            409,
            "max_node_count for x is invalid (min_node_count (3) should be less or equal to \
             max_node_count (2)).",
        ),
        (
            "latest",
            json!({"name": "x", "node_count": 4, "max_node_count": 2}),
            409,
            "max_node_count for x is invalid (node_count (4) should be less or equal to \
             max_node_count (2)).",
        ),
        (
            "latest",
            json!({"name": "x", "min_node_count": 2}),
            409,
            "min_node_count for x is invalid (min_node_count (2) should be less or equal to \
             node_count (1)).",
        ),
        (
            "1.13",
            taint(json!({"key": "a", "effect": "NoSchedule"})),
            400,
            "Unknown attribute for argument nodegroup: node_taints",
        ),
        (
            "1.13",
            json!({"name": "x", "node_labels": {"a": "b"}}),
            400,
            "Unknown attribute for argument nodegroup: node_labels",
        ),
        (
            "latest",
            taint(json!({"key": "a", "effect": "Sometimes"})),
            409,
            "node_taints for x is invalid (node_taints[0].effect must be one of NoSchedule, \
             PreferNoSchedule, NoExecute).",
        ),
        (
            "latest",
            taint(json!({"key": "a"})),
            409,
            "node_taints[0].effect must be one of",
        ),
        (
            "latest",
            taint(json!({"effect": "NoSchedule"})),
            409,
            "node_taints for x is invalid (node_taints[0].key is required).",
        ),
        (
            "latest",
            taint(json!({"key": "a", "effect": "NoSchedule", "zz": "1", "op": "2"})),
            409,
            "node_taints[0] contains unrecognised field(s) op, zz; allowed fields are key, \
             value, effect",
        ),
        (
            "latest",
            json!({"name": "x", "node_taints": ["a"]}),
            400,
            "Invalid input for field/attribute node_taints",
        ),
        (
            "latest",
            json!({"name": "x", "node_labels": {"kubernetes.io/role": "gpu"}}),
            409,
            "node label 'kubernetes.io/role' is in a restricted Kubernetes namespace",
        ),
        (
            "latest",
            json!({"node_count": 1}),
            400,
            "Invalid input for field/attribute name. Value: 'None'. Mandatory field missing.",
        ),
        (
            "latest",
            json!({"name": "x", "node_count": -1}),
            400,
            "Value should be greater or equal to 0",
        ),
        (
            "latest",
            json!({"name": "x", "project_id": "p"}),
            400,
            "Cannot set read only field.",
        ),
        (
            "latest",
            json!({"name": "x", "bogus": 1}),
            400,
            "Unknown attribute for argument nodegroup: bogus",
        ),
    ];
    for (version, body, code, text) in bad_posts {
        let r = at(&app, Method::POST, &ngs, version, Some(body.clone())).await;
        let detail = r.error(*code);
        assert!(detail.contains(text), "{body}: {detail}");
    }
    let r = at(
        &app,
        Method::POST,
        "/v1/clusters/nope/nodegroups",
        "latest",
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(r.error(404), "Cluster nope could not be found.");
    // Readers may not create; other projects do not see the cluster.
    let v = [("OpenStack-API-Version", "container-infra latest")];
    let body = || Some(Body::from(json!({"name": "x"}).to_string()));
    let r = app
        .send(Method::POST, &ngs, &reader("default"), &v, body())
        .await;
    assert_eq!(
        r.error(403),
        "Policy doesn't allow nodegroup:create to be performed."
    );
    let r = app
        .send(Method::POST, &ngs, &member("p2"), &v, body())
        .await;
    r.error(404);

    let bad_patches: &[(&str, &str, Value, u16, &str)] = &[
        (
            "1.8",
            "ng1",
            json!([{"op": "replace", "path": "/max_node_count", "value": 5}]),
            406,
            "the requested API patch is not supported",
        ),
        (
            "latest",
            "ng1",
            json!([{"op": "replace", "path": "/node_count", "value": 2}]),
            400,
            "'/node_count' is an internal attribute and can not be updated",
        ),
        (
            "latest",
            "ng1",
            json!([{"op": "replace", "path": "/name", "value": "y"}]),
            400,
            "'/name' is an internal attribute and can not be updated",
        ),
        (
            "latest",
            "ng1",
            json!([{"op": "add", "path": "/labels/extra", "value": "y"}]),
            400,
            "'/labels/extra' is an internal attribute and can not be updated",
        ),
        (
            "latest",
            "ng1",
            json!([{"op": "replace", "path": "/min_node_count", "value": 2}]),
            409,
            "min_node_count for ng1 is invalid (min_node_count (2) should be less or equal to \
             node_count (1)).",
        ),
        (
            "latest",
            "ng1",
            json!([{"op": "replace", "path": "/max_node_count", "value": -1}]),
            400,
            "Value should be greater or equal to 0",
        ),
        (
            "latest",
            "ng1",
            json!([{"op": "remove", "path": "/min_node_count"}]),
            400,
            "'/min_node_count' is a mandatory attribute and can not be removed",
        ),
        (
            "1.13",
            "ng1",
            json!([{"op": "replace", "path": "/node_taints", "value": []}]),
            400,
            "Couldn't apply patch",
        ),
        (
            "latest",
            "ng1",
            json!([{"op": "replace", "path": "/node_taints",
                    "value": [{"key": "a", "effect": "Bad"}]}]),
            409,
            "node_taints for ng1 is invalid (node_taints[0].effect must be one of",
        ),
        (
            "latest",
            "default-master",
            json!([{"op": "replace", "path": "/node_labels", "value": {"a": "b"}}]),
            409,
            "node_labels for default-master is invalid (node_labels may not be set on master \
             nodegroups).",
        ),
        (
            "latest",
            "nope",
            json!([{"op": "replace", "path": "/max_node_count", "value": 5}]),
            404,
            "Nodegroup nope could not be found.",
        ),
    ];
    for (version, ng, body, code, text) in bad_patches {
        let path = format!("{ngs}/{ng}");
        let r = at(&app, Method::PATCH, &path, version, Some(body.clone())).await;
        let detail = r.error(*code);
        assert!(detail.contains(text), "{body}: {detail}");
    }

    let bad_deletes: &[(&str, &str, u16, &str)] = &[
        (
            "1.8",
            "ng1",
            406,
            "the requested API delete is not supported",
        ),
        (
            "latest",
            "default-worker",
            400,
            "Deleting a default nodegroup is not supported.",
        ),
        (
            "latest",
            "default-master",
            400,
            "Deleting a default nodegroup is not supported.",
        ),
        ("latest", "nope", 404, "Nodegroup nope could not be found."),
    ];
    for (version, ng, code, text) in bad_deletes {
        let path = format!("{ngs}/{ng}");
        let r = at(&app, Method::DELETE, &path, version, None).await;
        let detail = r.error(*code);
        assert!(detail.contains(text), "{ng}: {detail}");
    }
    let r = app
        .send(
            Method::DELETE,
            &format!("{ngs}/ng1"),
            &reader("default"),
            &v,
            None,
        )
        .await;
    r.error(403);

    // Nothing changed.
    assert_eq!(snapshot(&app, &id).await, before);
    assert!(app.db.operations_of(&id).await.unwrap().is_empty());
    let c = app.get(&format!("/v1/clusters/{id}"), &Who::Default).await;
    assert_eq!(c.body["status"], "UPDATE_COMPLETE");
    assert_eq!(app.cloud.history(&id), ["create", "nodegroup_create"]);
}

async fn cluster_status_gates(backend: Backend) {
    // No bus: operations only queue until the sweep runs them.
    let app = TestApp::without_bus(backend).await;
    app.create_template(&Who::Default, fake_k8s("t1")).await;
    let id = app
        .create_cluster(
            &Who::Default,
            json!({"name": "c1", "cluster_template_id": "t1"}),
        )
        .await;
    let ngs = format!("/v1/clusters/{id}/nodegroups");
    // Until the cluster has its API address, no group can join it.
    let r = at(
        &app,
        Method::POST,
        &ngs,
        "latest",
        Some(json!({"name": "ng1"})),
    )
    .await;
    assert_eq!(r.error(409), "Cluster API address is not available yet");
    assert_eq!(app.db.nodegroups_of(&id).await.unwrap().len(), 2);
    app.settle(&id, "CREATE_COMPLETE").await;

    let r = at(
        &app,
        Method::POST,
        &ngs,
        "latest",
        Some(json!({"name": "ng1"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    let ops = app.db.operations_of(&id).await.unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].method, "nodegroup_create");
    assert_eq!(ops[0].args["nodegroup"]["magnum_object.name"], "NodeGroup");
    assert_eq!(ops[0].args["cluster"]["magnum_object.name"], "Cluster");

    // While the cluster updates, other node group work is refused.
    let before = snapshot(&app, &id).await;
    let r = at(
        &app,
        Method::POST,
        &ngs,
        "latest",
        Some(json!({"name": "ng2"})),
    )
    .await;
    assert_eq!(
        r.error(400),
        "Creating a nodegroup when status is \"UPDATE_IN_PROGRESS\" is not supported."
    );
    let r = at(
        &app,
        Method::PATCH,
        &format!("{ngs}/ng1"),
        "latest",
        Some(json!([{"op": "replace", "path": "/max_node_count", "value": 5}])),
    )
    .await;
    assert_eq!(
        r.error(400),
        "Updating a nodegroup when status is \"UPDATE_IN_PROGRESS\" is not supported."
    );
    let r = at(&app, Method::DELETE, &format!("{ngs}/ng1"), "latest", None).await;
    assert_eq!(
        r.error(400),
        "Deleting a nodegroup when status is \"UPDATE_IN_PROGRESS\" is not supported."
    );
    assert_eq!(snapshot(&app, &id).await, before);
    assert_eq!(app.db.operations_of(&id).await.unwrap().len(), 1);

    // The sweep runs the queued create.
    app.settle(&id, "UPDATE_COMPLETE").await;
    assert_eq!(
        show(&app, &id, "ng1").await.body["status"],
        "CREATE_COMPLETE"
    );
    let r = at(&app, Method::DELETE, &format!("{ngs}/ng1"), "latest", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.raw);
    app.settle(&id, "UPDATE_COMPLETE").await;
    show(&app, &id, "ng1").await.error(404);
}
