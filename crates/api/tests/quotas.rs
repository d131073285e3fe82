//! `/v1/quotas` over HTTP on every backend.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;

on_all_backends!(quota_lifecycle, quota_listing_and_visibility);

async fn quota_lifecycle(backend: Backend) {
    let app = TestApp::with_config(backend, "[quotas]\nmax_clusters_per_project = 7\n").await;
    let r = app
        .post(
            "/v1/quotas",
            &admin("ops"),
            json!({"project_id": "p1", "resource": "Cluster", "hard_limit": 3}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    assert_eq!(r.body["project_id"], "p1");
    assert_eq!(r.body["hard_limit"], 3);
    assert_eq!(r.body["resource"], "Cluster");
    assert!(r.body["id"].as_i64().unwrap() > 0);

    let r = app
        .post(
            "/v1/quotas",
            &admin("ops"),
            json!({"project_id": "p1", "hard_limit": 9}),
        )
        .await;
    assert_eq!(
        r.error(409),
        "Quota for project p1 already exists for resource Cluster."
    );
    for (body, expected) in [
        (json!({"hard_limit": 1}), "Must provide a valid project ID."),
        (
            json!({"project_id": "p2", "resource": "Pod"}),
            "Value should be one of: Cluster",
        ),
        (
            json!({"project_id": "p2", "hard_limit": -1}),
            "greater or equal to 0",
        ),
        (json!({"project_id": "p2", "id": 5}), "read only"),
    ] {
        let d = app
            .post("/v1/quotas", &admin("ops"), body.clone())
            .await
            .error(400);
        assert!(d.contains(expected), "{body}: {d}");
    }
    let r = app
        .post("/v1/quotas", &member("p1"), json!({"project_id": "p1"}))
        .await;
    assert_eq!(
        r.error(403),
        "Policy doesn't allow quota:create to be performed."
    );

    // Show: its own project for a member, any for an admin, the default when unset.
    assert_eq!(
        app.get("/v1/quotas/p1/Cluster", &reader("p1")).await.body["hard_limit"],
        3
    );
    assert_eq!(
        app.get("/v1/quotas/p1/Cluster", &admin("ops")).await.body["hard_limit"],
        3
    );
    let d = app.get("/v1/quotas/p1/Cluster", &member("p2")).await;
    assert_eq!(d.error(403), "Not authorized.");
    let r = app.get("/v1/quotas/p2/Cluster", &member("p2")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(
        r.body,
        json!({"project_id": "p2", "resource": "Cluster", "hard_limit": 7})
    );

    let r = app
        .patch(
            "/v1/quotas/p1/Cluster",
            &admin("ops"),
            json!({"project_id": "p1", "resource": "Cluster", "hard_limit": 10}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(r.body["hard_limit"], 10);
    assert!(r.body["updated_at"].is_string());
    let r = app
        .patch(
            "/v1/quotas/p9/Cluster",
            &admin("ops"),
            json!({"hard_limit": 10}),
        )
        .await;
    assert_eq!(
        r.error(404),
        "Quota could not be found: project_id p9 resource Cluster."
    );
    app.patch(
        "/v1/quotas/p1/Cluster",
        &member("p1"),
        json!({"hard_limit": 99}),
    )
    .await
    .error(403);
    assert_eq!(
        app.get("/v1/quotas/p1/Cluster", &admin("ops")).await.body["hard_limit"],
        10
    );

    app.delete("/v1/quotas/p1/Cluster", &member("p1"))
        .await
        .error(403);
    assert_eq!(
        app.delete("/v1/quotas/p1/Cluster", &admin("ops"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    app.delete("/v1/quotas/p1/Cluster", &admin("ops"))
        .await
        .error(404);
    assert_eq!(
        app.get("/v1/quotas/p1/Cluster", &admin("ops")).await.body["hard_limit"],
        7
    );
}

async fn quota_listing_and_visibility(backend: Backend) {
    let app = TestApp::new(backend).await;
    for p in ["ops", "p1", "p2"] {
        let r = app
            .post(
                "/v1/quotas",
                &admin("ops"),
                json!({"project_id": p, "hard_limit": 2}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    }
    let projects = |r: &Resp| -> Vec<String> {
        r.body["quotas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["project_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        projects(&app.get("/v1/quotas", &admin("ops")).await),
        ["ops"]
    );
    assert_eq!(
        projects(&app.get("/v1/quotas?all_tenants=true", &admin("ops")).await),
        ["ops", "p1", "p2"]
    );
    let r = app
        .get("/v1/quotas?all_tenants=1&limit=2", &admin("ops"))
        .await;
    assert_eq!(projects(&r), ["ops", "p1"]);
    let next = r.body["next"].as_str().unwrap();
    assert!(
        next.contains("/v1/quotas?sort_key=id&sort_dir=asc&limit=2&marker="),
        "{next}"
    );
    let r = app
        .get(
            &format!(
                "{}&all_tenants=1",
                next.trim_start_matches("http://magnum.test:9511")
            ),
            &admin("ops"),
        )
        .await;
    assert_eq!(projects(&r), ["p2"]);
    assert_eq!(
        projects(
            &app.get(
                "/v1/quotas?all_tenants=1&sort_key=project_id&sort_dir=desc",
                &admin("ops")
            )
            .await
        ),
        ["p2", "p1", "ops"]
    );
    app.get("/v1/quotas?marker=abc", &admin("ops"))
        .await
        .error(400);
    app.get("/v1/quotas?marker=999999", &admin("ops"))
        .await
        .error(404);
    app.get("/v1/quotas?all_tenants=perhaps", &admin("ops"))
        .await
        .error(400);
    app.get("/v1/quotas", &member("p1")).await.error(403);
}
