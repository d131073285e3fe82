//! The v1 framework over HTTP: version documents, microversions, request
//! ids, the error body for every failure class, body limits.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::json;

on_all_backends!(
    root_documents,
    microversion_headers,
    out_of_range_versions_answer_406,
    unknown_routes_and_methods,
    bad_bodies_are_refused,
    request_ids_are_unique,
);

async fn root_documents(backend: Backend) {
    let app = TestApp::new(backend).await;
    let r = app.get("/", &Who::Default).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["name"], "OpenStack Magnum API");
    let v = &r.body["versions"][0];
    assert_eq!(v["id"], "v1");
    assert_eq!(v["status"], "CURRENT");
    assert_eq!(v["max_version"], "1.14");
    assert_eq!(v["min_version"], "1.1");
    assert_eq!(
        v["links"][0],
        json!({"href": "http://magnum.test:9511/v1/", "rel": "self"})
    );

    let r = app.get("/v1", &Who::Default).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(r.body["id"], "v1");
    let slash = app.get("/v1/", &Who::Default).await;
    assert_eq!(slash.body, r.body, "a trailing slash is the same resource");
    let r2 = app
        .get("/v1/clustertemplates/?limit=5", &Who::Default)
        .await;
    assert_eq!(r2.status, StatusCode::OK, "{}", r2.raw);
    assert_eq!(
        r.body["clustertemplates"][0]["href"],
        "http://magnum.test:9511/v1/clustertemplates/"
    );
    assert_eq!(
        r.body["nodegroups"][1]["href"],
        "http://magnum.test:9511/clusters/{cluster_id}/nodegroups"
    );
    assert_eq!(r.body["media_types"][0]["base"], "application/json");
}

async fn microversion_headers(backend: Backend) {
    let app = TestApp::new(backend).await;
    let with = |v: &'static str| [("OpenStack-API-Version", v)];
    let r = app.get("/v1/clustertemplates", &Who::Default).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("openstack-api-version"),
        Some("container-infrastructure-management 1.1")
    );
    assert_eq!(
        r.header("openstack-api-minimum-version"),
        Some("container-infrastructure-management 1.1")
    );
    assert_eq!(
        r.header("openstack-api-maximum-version"),
        Some("container-infrastructure-management 1.14")
    );
    assert_eq!(r.header("vary"), Some("OpenStack-API-Version"));
    for (asked, in_force) in [
        ("container-infra latest", "1.14"),
        ("container-infra 1.9", "1.9"),
        ("container-infrastructure-management 1.14", "1.14"),
    ] {
        let r = app
            .send(
                Method::GET,
                "/v1/clustertemplates",
                &Who::Default,
                &with(asked),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{asked}: {}", r.raw);
        assert_eq!(
            r.header("openstack-api-version"),
            Some(format!("container-infrastructure-management {in_force}").as_str())
        );
    }
    let r = app
        .send(
            Method::GET,
            "/v1/clustertemplates",
            &Who::Default,
            &[("X-OpenStack-Magnum-API-Version", "1.4")],
            None,
        )
        .await;
    assert_eq!(
        r.header("openstack-api-version"),
        Some("container-infrastructure-management 1.4")
    );
}

async fn out_of_range_versions_answer_406(backend: Backend) {
    let app = TestApp::new(backend).await;
    for bad in [
        "container-infra 1.15",
        "container-infra 1.0",
        "container-infra 2.1",
        "container-infra x",
        "nova 1.1",
        "1.1",
    ] {
        let r = app
            .send(
                Method::GET,
                "/v1/clustertemplates",
                &Who::Default,
                &[("OpenStack-API-Version", bad)],
                None,
            )
            .await;
        r.error(406);
        let e = &r.body["errors"][0];
        assert_eq!(e["code"], "magnum.microversion-unsupported", "{bad}");
        assert_eq!(e["max_version"], "1.14");
        assert_eq!(e["min_version"], "1.1");
        assert_eq!(
            r.header("openstack-api-maximum-version"),
            Some("container-infrastructure-management 1.14")
        );
    }
    // A bad version is refused before anything is written.
    let r = app
        .send(
            Method::POST,
            "/v1/clustertemplates",
            &Who::Default,
            &[("OpenStack-API-Version", "container-infra 9.9")],
            Some(Body::from(k8s("t").to_string())),
        )
        .await;
    r.error(406);
    assert_eq!(app.template_count().await, 0);
}

async fn unknown_routes_and_methods(backend: Backend) {
    let app = TestApp::new(backend).await;
    let r = app.get("/v1/nothing", &Who::Default).await;
    r.error(404);
    assert!(
        r.header("openstack-api-version").is_some(),
        "v1 errors carry version headers"
    );
    app.get("/nothing/at/all", &Who::Default).await.error(404);
    let r = app
        .send(
            Method::PUT,
            "/v1/clustertemplates",
            &Who::Default,
            &[],
            None,
        )
        .await;
    assert_eq!(
        r.error(405),
        "The method specified is not allowed for this resource."
    );
    app.send(
        Method::POST,
        "/v1/clustertemplates/detail",
        &Who::Default,
        &[],
        None,
    )
    .await
    .error(405);
    let r = app.delete("/", &Who::Default).await;
    r.error(405);
    assert_eq!(r.body["errors"][0]["code"], "client");
}

async fn bad_bodies_are_refused(backend: Backend) {
    let app = TestApp::new(backend).await;
    let post = |body: Body, ct: &'static str| {
        let app = &app;
        async move {
            app.send(
                Method::POST,
                "/v1/clustertemplates",
                &Who::Default,
                &[("content-type", ct)],
                Some(body),
            )
            .await
        }
    };
    let detail = post(Body::from("{not json"), "application/json")
        .await
        .error(400);
    assert_eq!(detail, "Request is not in valid JSON format");
    post(Body::from(""), "application/json").await.error(400);
    post(Body::from("[1,2]"), "application/json")
        .await
        .error(400);
    post(Body::from("\"text\""), "application/json")
        .await
        .error(400);
    post(Body::from(k8s("x").to_string()), "application/xml")
        .await
        .error(415);
    let huge = json!({"name": "x", "coe": "kubernetes", "image_id": "i", "labels": {"big": "y".repeat(200_000)}});
    post(Body::from(huge.to_string()), "application/json")
        .await
        .error(413);
    assert_eq!(
        app.template_count().await,
        0,
        "a refused request writes nothing"
    );
}

async fn request_ids_are_unique(backend: Backend) {
    let app = TestApp::new(backend).await;
    let a = app.get("/v1", &Who::Default).await;
    let b = app.get("/v1/missing", &Who::Default).await;
    let (a, b) = (
        a.header("x-openstack-request-id").unwrap(),
        b.header("x-openstack-request-id").unwrap(),
    );
    assert!(a.starts_with("req-") && b.starts_with("req-"));
    assert_eq!(a.len(), 40);
    assert_ne!(a, b);
}
