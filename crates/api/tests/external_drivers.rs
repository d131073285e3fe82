//! Drivers other conductors run (`[drivers] external_drivers`): templates
//! select them like ours; their clusters' operations are cast, in
//! upstream's wire format, to those conductors (here a recording client)
//! and never queued for ours, so nothing of them is written here; a bus
//! that does not take the cast is 503 with nothing changed; our conductor
//! leaves their clusters alone, and those of drivers it does not know.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::Method;
use common::*;
use magnum_core::objects::{Cluster, NodeGroup};
use magnum_rpc::{Client, ClientFuture, RpcError};
use serde_json::{json, Map, Value};

on_all_backends!(operations_go_to_the_conductors_that_run_the_driver);

const CONF: &str = "[drivers]\nexternal_drivers = k8s_capi:vm:ubuntu:kubernetes\n\
                    external_topic = magnum-conductor-capi\n";

/// The external conductors: what was cast to them, and whether the bus
/// takes the next cast.
#[derive(Default)]
struct Recorder {
    casts: Mutex<Vec<(String, Map<String, Value>)>>,
    down: AtomicBool,
}

impl Recorder {
    fn take(&self) -> Vec<(String, Map<String, Value>)> {
        std::mem::take(&mut self.casts.lock().unwrap())
    }
}

impl Client for Recorder {
    fn cast<'a>(
        &'a self,
        method: &'a str,
        args: Map<String, Value>,
        _context: Map<String, Value>,
    ) -> ClientFuture<'a, ()> {
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                return Err(RpcError::Unavailable("127.0.0.1:5672".into()));
            }
            self.casts.lock().unwrap().push((method.to_string(), args));
            Ok(())
        })
    }
    fn call<'a>(
        &'a self,
        method: &'a str,
        _args: Map<String, Value>,
        _context: Map<String, Value>,
    ) -> ClientFuture<'a, Value> {
        Box::pin(async move { panic!("unexpected call of {method}") })
    }
}

fn capi_template(name: &str) -> Value {
    json!({
        "name": name,
        "coe": "kubernetes",
        "image_id": "ubuntu-2204-kube",
        "driver": "k8s_capi",
        "flavor_id": "m1.small",
        "master_flavor_id": "m1.medium",
        "keypair_id": "kp",
        "network_driver": "calico",
    })
}

/// A cluster as the external conductor stores it.
async fn stored_cluster(app: &TestApp, template: &str, status: &str) -> String {
    let uuid = uuid::Uuid::new_v4().to_string();
    let cluster = Cluster {
        uuid: uuid.clone(),
        name: Some(format!("stored-{}", &uuid[..8])),
        project_id: Some("default".into()),
        user_id: Some("admin".into()),
        cluster_template_id: Some(template.into()),
        status: Some(status.into()),
        stack_id: Some("capi-cluster-1".into()),
        api_address: Some("https://10.0.0.5:6443".into()),
        create_timeout: Some(60),
        labels: Some(Default::default()),
        ..Default::default()
    };
    let ng = |n: &str, role: &str| NodeGroup {
        uuid: uuid::Uuid::new_v4().to_string(),
        name: format!("default-{role}-{n}"),
        cluster_id: uuid.clone(),
        project_id: "default".into(),
        role: Some(role.into()),
        node_count: Some(1),
        min_node_count: Some(0),
        is_default: Some(true),
        status: Some("CREATE_COMPLETE".into()),
        labels: Some(Default::default()),
        ..Default::default()
    };
    app.db
        .cluster_create(&cluster, &[ng("1", "master"), ng("2", "worker")])
        .await
        .unwrap();
    uuid
}

async fn latest(app: &TestApp, method: Method, path: &str, body: Value) -> Resp {
    let latest = [("OpenStack-API-Version", "container-infra latest")];
    let body = Some(Body::from(body.to_string()));
    app.send(method, path, &Who::Default, &latest, body).await
}

async fn status_of(app: &TestApp, uuid: &str) -> String {
    let r = app
        .get(&format!("/v1/clusters/{uuid}"), &Who::Default)
        .await;
    r.body["status"].as_str().unwrap_or_default().to_string()
}

async fn operations_go_to_the_conductors_that_run_the_driver(backend: Backend) {
    let recorder = Arc::new(Recorder::default());
    let app = TestApp::with_external(backend, CONF, recorder.clone()).await;

    // Templates: selected and validated like ours.
    let t = app
        .create_template(&Who::Default, capi_template("capi"))
        .await;
    assert_eq!(t["driver"], "k8s_capi");
    let mut swarm = capi_template("capi-swarm");
    swarm["coe"] = json!("swarm-mode");
    let r = app.post("/v1/clustertemplates", &Who::Default, swarm).await;
    assert!(r.error(400).contains("not supported"), "{}", r.raw);

    // A create: cast with upstream's arguments, nothing stored here (the
    // external conductor stores the cluster, as upstream's does).
    let r = app
        .post(
            "/v1/clusters",
            &Who::Default,
            json!({"name": "k1", "cluster_template_id": "capi", "node_count": 2}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.raw);
    let uuid = r.body["uuid"].as_str().unwrap().to_string();
    let casts = recorder.take();
    assert_eq!(casts.len(), 1);
    let (method, args) = &casts[0];
    assert_eq!(method, "cluster_create");
    assert_eq!(args["node_count"], 2);
    assert_eq!(args["master_count"], 1);
    assert_eq!(args["create_timeout"], 60);
    let sent = &args["cluster"]["magnum_object.data"];
    assert_eq!(args["cluster"]["magnum_object.name"], "Cluster");
    assert_eq!(sent["uuid"], uuid.as_str());
    assert_eq!(sent["cluster_template_id"], t["uuid"]);
    assert!(sent.get("status").is_none_or(Value::is_null), "{sent}");
    let r = app
        .get(&format!("/v1/clusters/{uuid}"), &Who::Default)
        .await;
    assert_eq!(r.status, 404, "{}", r.raw);
    assert!(app.db.operations_of(&uuid).await.unwrap().is_empty());

    // The bus does not take it: 503, nothing cast, nothing stored.
    recorder.down.store(true, Ordering::SeqCst);
    let r = app
        .post(
            "/v1/clusters",
            &Who::Default,
            json!({"name": "k2", "cluster_template_id": "capi"}),
        )
        .await;
    assert!(r.error(503).contains("message bus"), "{}", r.raw);
    assert!(
        !r.raw.contains("5672"),
        "the cause is logged, not shown: {}",
        r.raw
    );
    let listed = app.get("/v1/clusters", &Who::Default).await;
    assert_eq!(listed.body["clusters"].as_array().unwrap().len(), 0);
    recorder.down.store(false, Ordering::SeqCst);

    // A cluster the external conductor built: every operation is cast, no
    // status is changed here, nothing is queued.
    let tid = t["uuid"].as_str().unwrap();
    let c = stored_cluster(&app, tid, "CREATE_COMPLETE").await;
    let r = app
        .patch(
            &format!("/v1/clusters/{c}"),
            &Who::Default,
            json!([{"op": "replace", "path": "/node_count", "value": 3}]),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.raw);
    let body = json!({"name": "extra", "node_count": 1});
    let r = latest(
        &app,
        Method::POST,
        &format!("/v1/clusters/{c}/nodegroups"),
        body,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.raw);
    let r = app
        .delete(&format!("/v1/clusters/{c}"), &Who::Default)
        .await;
    assert_eq!(r.status, 204, "{}", r.raw);
    let methods: Vec<String> = recorder.take().into_iter().map(|(m, _)| m).collect();
    assert_eq!(
        methods,
        ["cluster_update", "nodegroup_create", "cluster_delete"]
    );
    assert_eq!(status_of(&app, &c).await, "CREATE_COMPLETE");
    assert!(app.db.operations_of(&c).await.unwrap().is_empty());
    let groups = app.db.nodegroups_of(&c).await.unwrap();
    assert_eq!(groups.len(), 2, "the external conductor stores new groups");

    // A status gate still refuses, in upstream's words, before any cast.
    let deleting = stored_cluster(&app, tid, "DELETE_IN_PROGRESS").await;
    let path = format!("/v1/clusters/{deleting}/actions/resize");
    let r = latest(&app, Method::POST, &path, json!({"node_count": 2})).await;
    assert_eq!(r.status, 400, "{}", r.raw);
    assert!(recorder.take().is_empty());

    // Ours: retrying a create is not for these clusters.
    let failed = stored_cluster(&app, tid, "CREATE_FAILED").await;
    let r = app
        .post(
            &format!("/v1/clusters/{failed}/actions/retry"),
            &Who::Default,
            json!({}),
        )
        .await;
    assert!(
        r.error(400).contains("external driver k8s_capi"),
        "{}",
        r.raw
    );

    // Our conductor leaves them alone: a create past its create_timeout is
    // not failed, nor a delete in progress synced: the external
    // conductors sync them.
    let building = stored_cluster(&app, tid, "CREATE_IN_PROGRESS").await;
    magnum_db::testing::age_cluster(&app.db, &building, 61 * 60).await;
    // Nor a cluster of a driver it does not know at all (another
    // deployment's, in a template upstream's API made): left as it is, as
    // upstream's conductor leaves one, not failed for what this
    // configuration lacks.
    let unknown = magnum_core::objects::ClusterTemplate {
        uuid: uuid::Uuid::new_v4().to_string(),
        name: Some("elsewhere".into()),
        project_id: Some("default".into()),
        coe: Some("kubernetes".into()),
        server_type: Some("vm".into()),
        cluster_distro: Some("ubuntu".into()),
        driver: Some("k8s_elsewhere".into()),
        ..Default::default()
    };
    app.db.cluster_template_create(&unknown).await.unwrap();
    let stranger = stored_cluster(&app, &unknown.uuid, "CREATE_IN_PROGRESS").await;
    magnum_db::testing::age_cluster(&app.db, &stranger, 61 * 60).await;
    for _ in 0..3 {
        app.conductor.tick().await;
    }
    assert_eq!(status_of(&app, &deleting).await, "DELETE_IN_PROGRESS");
    assert_eq!(status_of(&app, &building).await, "CREATE_IN_PROGRESS");
    assert_eq!(status_of(&app, &stranger).await, "CREATE_IN_PROGRESS");
    assert_eq!(status_of(&app, &failed).await, "CREATE_FAILED");
    assert!(recorder.take().is_empty());
}
