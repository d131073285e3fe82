//! `/v1/mservices` and `/v1/stats` over HTTP on every backend.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use axum::http::StatusCode;
use common::*;
use magnum_core::objects::{Cluster, NodeGroup};
use serde_json::json;

on_all_backends!(services_show_up_and_down, stats_per_project);

async fn services_show_up_and_down(backend: Backend) {
    let app = TestApp::new(backend).await;
    let r = app.get("/v1/mservices", &admin("ops")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(r.body, json!({"mservices": []}));

    app.db
        .service_heartbeat("node-1", "magnum-conductor")
        .await
        .unwrap();
    app.db
        .service_heartbeat("node-2", "magnum-conductor")
        .await
        .unwrap();
    app.db
        .service_heartbeat("node-2", "magnum-conductor")
        .await
        .unwrap();
    magnum_db::testing::age_service(&app.db, "node-1", "magnum-conductor", 600).await;
    let r = app.get("/v1/mservices", &admin("ops")).await;
    let items = r.body["mservices"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["host"], "node-1");
    assert_eq!(
        items[0]["state"], "down",
        "no heartbeat for 600 s > service_down_time"
    );
    assert_eq!(items[1]["host"], "node-2");
    assert_eq!(items[1]["state"], "up");
    assert_eq!(items[1]["report_count"], 2);
    assert_eq!(items[1]["binary"], "magnum-conductor");
    assert_eq!(items[1]["disabled"], false);
    assert!(items[1]["created_at"].as_str().unwrap().ends_with("+00:00"));

    // service_down_time is the operator's.
    let app2 = TestApp::with_config(backend, "[DEFAULT]\nservice_down_time = 1000\n").await;
    app2.db
        .service_heartbeat("node-1", "magnum-conductor")
        .await
        .unwrap();
    magnum_db::testing::age_service(&app2.db, "node-1", "magnum-conductor", 600).await;
    let r = app2.get("/v1/mservices", &admin("ops")).await;
    assert_eq!(r.body["mservices"][0]["state"], "up");

    let r = app.get("/v1/mservices", &member("p1")).await;
    assert_eq!(
        r.error(403),
        "Policy doesn't allow magnum-service:get_all to be performed."
    );
    app.get("/v1/mservices?limit=1", &admin("ops"))
        .await
        .error(400);
}

async fn add_cluster(app: &TestApp, n: u8, project: &str, nodes: &[i64]) {
    let uuid = format!("{n:08x}-1111-1111-1111-111111111111");
    let cluster = Cluster {
        uuid: uuid.clone(),
        name: Some(format!("c{n}")),
        project_id: Some(project.into()),
        status: Some("CREATE_COMPLETE".into()),
        ..Default::default()
    };
    let ngs: Vec<NodeGroup> = nodes
        .iter()
        .enumerate()
        .map(|(i, count)| NodeGroup {
            uuid: format!("{n:08x}-2222-2222-2222-{i:012x}"),
            name: format!("ng{i}"),
            cluster_id: uuid.clone(),
            project_id: project.into(),
            node_count: Some(*count),
            role: Some("worker".into()),
            ..Default::default()
        })
        .collect();
    app.db.cluster_create(&cluster, &ngs).await.unwrap();
}

async fn stats_per_project(backend: Backend) {
    let app = TestApp::new(backend).await;
    let r = app.get("/v1/stats", &member("p1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(r.body, json!({"clusters": 0, "nodes": 0}));

    add_cluster(&app, 1, "p1", &[1, 2]).await;
    add_cluster(&app, 2, "p1", &[3]).await;
    add_cluster(&app, 3, "p2", &[5]).await;
    assert_eq!(
        app.get("/v1/stats", &member("p1")).await.body,
        json!({"clusters": 2, "nodes": 6})
    );
    assert_eq!(
        app.get("/v1/stats?project_id=p1", &reader("p1")).await.body,
        json!({"clusters": 2, "nodes": 6})
    );
    assert_eq!(
        app.get("/v1/stats", &admin("ops")).await.body,
        json!({"clusters": 3, "nodes": 11})
    );
    assert_eq!(
        app.get("/v1/stats?project_id=p2", &admin("ops")).await.body,
        json!({"clusters": 1, "nodes": 5})
    );
    assert_eq!(
        app.get("/v1/stats?project_id=p2", &member("p1"))
            .await
            .error(403),
        "Not authorized."
    );
    assert!(app
        .get("/v1/stats?type=pods", &member("p1"))
        .await
        .error(400)
        .contains("Invalid stats type"));
    app.get("/v1/stats?foo=1", &member("p1")).await.error(400);
    let nobody = Who::User {
        user: "u".into(),
        project: "p1".into(),
        roles: "".into(),
    };
    app.get("/v1/stats", &nobody).await.error(403);
}
