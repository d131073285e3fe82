//! `/v1/quotas` over HTTP on every backend.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};

on_all_backends!(
    quota_lifecycle,
    quota_listing_and_visibility,
    a_burst_of_creates_never_exceeds_the_quota,
    a_create_costs_a_fixed_number_of_statements,
);

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
    // Upstream's default quota is `Quota(project_id, hard_limit)`: the
    // resource is the attribute's default, whatever the path names.
    let r = app.get("/v1/quotas/p2/Other", &member("p2")).await;
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

/// Upstream's refusal of a create over quota (403), without its request id.
fn over_quota(limit: i64) -> Value {
    let detail = format!(
        "Resource limit exceeded: You have reached the maximum clusters per project, {limit}. \
         You may delete a cluster to make room for a new one."
    );
    json!({
        "code": "client",
        "status": 403,
        "title": detail.split('.').next().unwrap(),
        "detail": detail,
        "links": [],
    })
}

/// Many creates at once in two projects, each starting with no cluster:
/// p1 under its quota row (20, with 40 creates), p2 under `[quotas]
/// max_clusters_per_project` (5, with 15). Exactly the limit is accepted,
/// every other create gets upstream's refusal, and the projects do not
/// hold each other up.
async fn a_burst_of_creates_never_exceeds_the_quota(backend: Backend) {
    let app =
        TestApp::without_bus_with_config(backend, "[quotas]\nmax_clusters_per_project = 5\n").await;
    let r = app
        .post(
            "/v1/quotas",
            &admin("ops"),
            json!({"project_id": "p1", "resource": "Cluster", "hard_limit": 20}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    let bursts: [(&str, i64, i64); 2] = [("p1", 40, 20), ("p2", 15, 5)];
    for (project, _, _) in bursts {
        app.create_template(&member(project), fake_k8s("t")).await;
    }

    let app = Arc::new(app);
    let total = bursts.iter().map(|(_, n, _)| *n as usize).sum();
    let start = Arc::new(tokio::sync::Barrier::new(total));
    let mut requests = tokio::task::JoinSet::new();
    for (project, n, _) in bursts {
        for _ in 0..n {
            let (app, start) = (app.clone(), start.clone());
            requests.spawn(async move {
                start.wait().await;
                let r = app
                    .post(
                        "/v1/clusters",
                        &member(project),
                        json!({"cluster_template_id": "t"}),
                    )
                    .await;
                (project, r)
            });
        }
    }
    let answers = requests.join_all().await;

    for (project, n, limit) in bursts {
        let mine: Vec<&Resp> = answers
            .iter()
            .filter(|(p, _)| *p == project)
            .map(|(_, r)| r)
            .collect();
        let accepted: Vec<String> = mine
            .iter()
            .filter(|r| r.status == StatusCode::ACCEPTED)
            .map(|r| r.body["uuid"].as_str().unwrap().to_string())
            .collect();
        let refused: Vec<&&Resp> = mine
            .iter()
            .filter(|r| r.status != StatusCode::ACCEPTED)
            .collect();
        assert_eq!(
            app.db.cluster_count(project).await.unwrap(),
            limit,
            "{project}: {n} concurrent creates under a quota of {limit}"
        );
        assert_eq!(accepted.len() as i64, limit, "{project}: accepted");
        assert_eq!(refused.len() as i64, n - limit, "{project}: refused");
        for r in refused {
            r.error(403);
            let mut e = r.body["errors"][0].clone();
            e.as_object_mut().unwrap().remove("request_id");
            assert_eq!(e, over_quota(limit), "{project}: {}", r.raw);
        }
        // What was accepted is what the project sees.
        let r = app.get("/v1/clusters", &member(project)).await;
        let mut listed: Vec<String> = r.body["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["uuid"].as_str().unwrap().to_string())
            .collect();
        listed.sort();
        let mut accepted = accepted;
        accepted.sort();
        assert_eq!(listed, accepted, "{project}");
        // And a create after the burst is refused the same way.
        let r = app
            .post(
                "/v1/clusters",
                &member(project),
                json!({"cluster_template_id": "t"}),
            )
            .await;
        r.error(403);
        let mut e = r.body["errors"][0].clone();
        e.as_object_mut().unwrap().remove("request_id");
        assert_eq!(e, over_quota(limit), "{project}: {}", r.raw);
    }
}

/// The quota costs a create a few statements, whatever the project's size:
/// the quota row, and in the create's transaction (after its inserts) the
/// `UPDATE` counting it in (which locks the project's count) and the
/// count's read; a project's first create also adds the project's row,
/// starts its transaction again and counts the project's clusters.
async fn a_create_costs_a_fixed_number_of_statements(backend: Backend) {
    let app = TestApp::without_bus(backend).await;
    app.create_template(&member("p1"), fake_k8s("t")).await;
    let mut costs = Vec::new();
    for _ in 0..3 {
        let before = app.db.statements();
        let r = app
            .post(
                "/v1/clusters",
                &member("p1"),
                json!({"cluster_template_id": "t"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
        costs.push(app.db.statements() - before);
    }
    // The template, the quota row; BEGIN, the cluster, its two node groups
    // (one INSERT), the operation, its queued event, the count moved, the
    // count read, COMMIT.
    assert!(costs[1..].iter().all(|c| *c <= 10), "{costs:?}");
    // The first also: BEGIN, the four inserts, the count's row missing,
    // ROLLBACK, the row added; then the count made (COUNT and UPDATE).
    assert!(costs[0] <= 20, "{costs:?}");
}
