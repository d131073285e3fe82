//! Request input as upstream's stack (paste, pecan, WSME) takes it, on every
//! backend: JSON types of attributes, empty patches, paths, media types,
//! extractor refusals in the error body.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{json, Value};

on_all_backends!(
    strings_refuse_other_types,
    empty_patches,
    urls,
    media_types,
    truncated_bodies,
    no_identity_is_no_admin,
);

const LATEST: (&str, &str) = ("OpenStack-API-Version", "container-infra latest");

async fn send_latest(app: &TestApp, method: Method, path: &str, who: &Who, body: Value) -> Resp {
    app.send(
        method,
        path,
        who,
        &[LATEST],
        Some(Body::from(body.to_string())),
    )
    .await
}

/// `body` with `key` set to `value`.
fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

async fn strings_refuse_other_types(backend: Backend) {
    let app = TestApp::new(backend).await;
    let who = admin("p1");
    let string = |attr: &str, shown: &str| {
        format!(
            "Invalid input for field/attribute {attr}. Value: '{shown}'. Value should be string"
        )
    };
    let text = |attr: &str, shown: &str, got: &str| {
        format!(
            "Invalid input for field/attribute {attr}. Value: '{shown}'. \
             Wrong type. Expected '<class 'str'>', got '<class '{got}'>'"
        )
    };

    // Templates: StringType attributes take strings alone.
    for (attr, value, shown) in [
        ("name", json!(5), "5"),
        ("docker_storage_driver", json!(7), "7"),
        ("image_id", json!(7), "7"),
        ("keypair_id", json!(5.5), "5.5"),
        ("flavor_id", json!(true), "True"),
        ("http_proxy", json!(["a"]), "['a']"),
        ("tags", json!({"a": 1}), "{'a': 1}"),
    ] {
        let r = app
            .post(
                "/v1/clustertemplates",
                &who,
                with(fake_k8s("t1"), attr, value),
            )
            .await;
        assert_eq!(r.error(400), string(attr, shown), "{attr}");
    }
    assert_eq!(app.template_count().await, 0, "nothing was stored");
    // Integers and booleans are converted as wsme converts them.
    let t = app
        .create_template(
            &who,
            with(
                with(fake_k8s("t1"), "docker_volume_size", json!("3")),
                "public",
                json!("true"),
            ),
        )
        .await;
    assert_eq!(t["docker_volume_size"], 3);
    assert_eq!(t["public"], true);
    let r = app
        .patch(
            "/v1/clustertemplates/t1",
            &who,
            json!([{"op": "replace", "path": "/docker_storage_driver", "value": 7}]),
        )
        .await;
    assert_eq!(r.error(400), string("docker_storage_driver", "7"));

    // Clusters: wtypes.text attributes name the wrong type.
    let cluster = json!({"name": "c1", "cluster_template_id": "t1"});
    for (attr, value, detail) in [
        (
            "cluster_template_id",
            json!(5),
            text("cluster_template_id", "5", "int"),
        ),
        ("discovery_url", json!(5), text("discovery_url", "5", "int")),
        (
            "status_reason",
            json!(false),
            text("status_reason", "False", "bool"),
        ),
        ("keypair", json!(5), string("keypair", "5")),
        ("name", json!(5), string("name", "5")),
        (
            "health_status_reason",
            json!({"a": 5}),
            text("health_status_reason", "{'a': 5}", "int"),
        ),
    ] {
        let r = send_latest(
            &app,
            Method::POST,
            "/v1/clusters",
            &who,
            with(cluster.clone(), attr, value),
        )
        .await;
        assert_eq!(r.error(400), detail, "{attr}");
    }
    let id = app.create_cluster(&who, cluster).await;
    app.settle(&id, "CREATE_COMPLETE").await;

    // Node groups.
    let ngs = format!("/v1/clusters/{id}/nodegroups");
    let r = send_latest(&app, Method::POST, &ngs, &who, json!({"name": 5})).await;
    assert_eq!(r.error(400), string("name", "5"));
    let r = send_latest(
        &app,
        Method::POST,
        &ngs,
        &who,
        json!({"name": "ng1", "flavor_id": 3}),
    )
    .await;
    assert_eq!(r.error(400), string("flavor_id", "3"));

    // Quotas.
    let r = app
        .post(
            "/v1/quotas",
            &who,
            json!({"project_id": 5, "resource": "Cluster", "hard_limit": 3}),
        )
        .await;
    assert_eq!(r.error(400), string("project_id", "5"));

    // Federations.
    let fed = json!({"name": "f1", "hostcluster_id": id, "properties": {"dns-zone": "a.net."}});
    let r = app
        .post("/v1/federations", &who, with(fed.clone(), "name", json!(5)))
        .await;
    assert_eq!(r.error(400), string("name", "5"));
    let r = app
        .post(
            "/v1/federations",
            &who,
            with(fed, "hostcluster_id", json!(5)),
        )
        .await;
    assert_eq!(r.error(400), text("hostcluster_id", "5", "int"));

    // Certificates: upstream looks the cluster up first, by the number.
    let r = app
        .post(
            "/v1/certificates",
            &who,
            json!({"cluster_uuid": 5, "csr": "x"}),
        )
        .await;
    assert_eq!(r.error(400), "Cluster 5 could not be found.");
    let r = app
        .post(
            "/v1/certificates",
            &who,
            json!({"cluster_uuid": id, "csr": 5}),
        )
        .await;
    assert_eq!(r.error(400), string("csr", "5"));
}

async fn empty_patches(backend: Backend) {
    let app = TestApp::new(backend).await;
    let who = admin("p1");

    // A template: 200 with the template, unchanged.
    let t = app.create_template(&who, fake_k8s("t1")).await;
    let r = app.patch("/v1/clustertemplates/t1", &who, json!([])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    let mut before = t.clone();
    let mut after = r.body.clone();
    for v in [&mut before, &mut after] {
        v.as_object_mut().unwrap().remove("updated_at");
    }
    assert_eq!(after, before);

    // A cluster: 202 with its uuid; nothing to do, nothing queued.
    let id = app
        .create_cluster(&who, json!({"name": "c1", "cluster_template_id": "t1"}))
        .await;
    app.settle(&id, "CREATE_COMPLETE").await;
    let path = format!("/v1/clusters/{id}");
    let r = send_latest(&app, Method::PATCH, &path, &who, json!([])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(r.body, json!({"uuid": id}));
    let r = app.get(&path, &who).await;
    assert_eq!(r.body["status"], "CREATE_COMPLETE", "{}", r.raw);

    // A node group: 202 with the group, whose update upstream casts.
    let r = app
        .send(
            Method::GET,
            &format!("{path}/nodegroups"),
            &who,
            &[LATEST],
            None,
        )
        .await;
    let worker = r.body["nodegroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["role"] == "worker")
        .unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = send_latest(
        &app,
        Method::PATCH,
        &format!("{path}/nodegroups/{worker}"),
        &who,
        json!([]),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(r.body["uuid"], worker.as_str());

    // A quota's PATCH body is a quota, not a patch (upstream: 500).
    let r = app.patch("/v1/quotas/p1/Cluster", &who, json!([])).await;
    assert!(r.error(400).contains("Expected an object"), "{}", r.raw);
}

async fn urls(backend: Backend) {
    let app = TestApp::new(backend).await;
    let who = admin("p1");
    app.create_template(&who, fake_k8s("t1")).await;
    // Repeated slashes are one, a trailing slash is none (paste's URLMap
    // and pecan in front of upstream's controllers).
    for path in [
        "/v1//clustertemplates",
        "//v1/clustertemplates",
        "/v1/clustertemplates/",
        "/v1/clustertemplates//",
        "/v1///clustertemplates///",
    ] {
        let r = app.get(path, &who).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.raw);
        assert_eq!(r.body["clustertemplates"][0]["name"], "t1", "{path}");
    }
    let r = app.get("/v1//clustertemplates//t1/", &who).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(r.body["name"], "t1");
    let r = app.get("/v1//", &who).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(r.body["id"], "v1");
    let r = app.get("/v1/clusters//nope", &who).await;
    assert_eq!(r.error(404), "Cluster nope could not be found.");

    // Percent escapes that are not UTF-8: 400 in the error body, wherever.
    for path in [
        "/v1/clusters/%FF",
        "/v1/clustertemplates/a%FFb",
        "/v1/clusters/x/nodegroups/%C3%28",
        "/v1/clusters?marker=%FF",
        "/v1/quotas/%FF/Cluster",
    ] {
        let r = app.get(path, &who).await;
        assert_eq!(
            r.error(400),
            "The request URL is not valid UTF-8 once percent-decoded.",
            "{path}"
        );
        assert_eq!(r.body["errors"][0]["code"], "client");
        assert!(r.header("x-openstack-request-id").is_some(), "{path}");
    }
    // Escaped UTF-8 is fine.
    let r = app.get("/v1/clusters/caf%C3%A9", &who).await;
    assert_eq!(r.error(404), "Cluster caf\u{e9} could not be found.");
}

async fn media_types(backend: Backend) {
    let app = TestApp::new(backend).await;
    let who = admin("p1");
    let post = |ct: Option<&'static str>, body: &'static str| {
        let app = &app;
        let who = who.clone();
        async move {
            // Without a Content-Type the harness would add one: name none
            // with an empty one, which wsme reads the same.
            let headers: Vec<(&str, &str)> = vec![("content-type", ct.unwrap_or(""))];
            app.send(
                Method::POST,
                "/v1/clustertemplates",
                &who,
                &headers,
                Some(Body::from(body)),
            )
            .await
        }
    };
    let bad = r#"{"name": 5}"#;
    // wsme's JSON types, parameters ignored: the body is read.
    for ct in [
        "application/json",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "text/javascript",
        "application/javascript",
    ] {
        let r = post(Some(ct), bad).await;
        assert!(
            r.error(400).contains("Value should be string"),
            "{ct}: {}",
            r.raw
        );
    }
    // Anything else, no type included: 415 naming the type as sent.
    for (ct, shown) in [
        ("text/plain", "text/plain"),
        ("text/plain; charset=utf-8", "text/plain"),
        ("APPLICATION/JSON", "APPLICATION/JSON"),
        ("application/json-patch+json", "application/json-patch+json"),
        (
            "application/vnd.openstack.magnum.v1+json",
            "application/vnd.openstack.magnum.v1+json",
        ),
        ("application/xml", "application/xml"),
        ("", ""),
    ] {
        let r = post(Some(ct), bad).await;
        assert_eq!(r.error(415), format!("Unknown mimetype: {shown}"), "{ct}");
        assert_eq!(r.body["errors"][0]["code"], "client");
    }
    // A form body is taken as parameters no operation has.
    let r = post(Some("application/x-www-form-urlencoded"), "name=x&coe=y").await;
    assert_eq!(r.error(400), "Unknown argument: \"name, coe\"");
    // An empty body is no body, whatever its type.
    let r = post(Some("text/plain"), "").await;
    assert!(r.error(400).contains("empty"), "{}", r.raw);
    assert_eq!(app.template_count().await, 0, "nothing was stored");
    // PATCH reads its body the same way.
    app.create_template(&who, fake_k8s("t1")).await;
    let r = app
        .send(
            Method::PATCH,
            "/v1/clustertemplates/t1",
            &who,
            &[("content-type", "text/plain")],
            Some(Body::from("[]")),
        )
        .await;
    assert_eq!(r.error(415), "Unknown mimetype: text/plain");
}

async fn truncated_bodies(backend: Backend) {
    let app = TestApp::new(backend).await;
    let who = admin("p1");
    // A body whose sender stops before its end (hyper reports the
    // half-close before Content-Length as an error of the body): 400.
    let chunks: Vec<Result<&'static str, std::io::Error>> = vec![
        Ok(r#"{"name": "t1", "#),
        Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before message completed",
        )),
    ];
    let body = Body::from_stream(futures_lite::stream::iter(chunks));
    let r = app
        .send(Method::POST, "/v1/clustertemplates", &who, &[], Some(body))
        .await;
    assert_eq!(
        r.error(400),
        "The request body is incomplete: the client stopped sending it."
    );
    // More than the limit is still 413.
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(200_000));
    let chunks: Vec<Result<String, std::io::Error>> = vec![Ok(big)];
    let body = Body::from_stream(futures_lite::stream::iter(chunks));
    let r = app
        .send(Method::POST, "/v1/clustertemplates", &who, &[], Some(body))
        .await;
    assert_eq!(
        r.error(413),
        "Request is too large. The limit is 114688 bytes."
    );
    assert_eq!(app.template_count().await, 0);
}

async fn no_identity_is_no_admin(backend: Backend) {
    // `magnum api` without authentication: a request with no identity
    // headers has no roles and no project, and upstream's policy refuses it.
    let app = TestApp::without_default_identity(backend).await;
    for (path, rule) in [
        ("/v1/clustertemplates", "clustertemplate:get_all"),
        ("/v1/clusters", "cluster:get_all"),
        ("/v1/quotas", "quota:get_all"),
    ] {
        let r = app.get(path, &Who::Default).await;
        assert_eq!(
            r.error(403),
            format!("Policy doesn't allow {rule} to be performed."),
            "{path}"
        );
    }
    let r = app
        .post("/v1/clustertemplates", &Who::Default, fake_k8s("t1"))
        .await;
    r.error(403);
    // The version documents need no identity.
    for path in ["/", "/v1"] {
        let r = app.get(path, &Who::Default).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.raw);
    }
    // Identity headers are taken as they come.
    let r = app.get("/v1/clustertemplates", &member("p1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    app.create_template(&admin("p1"), fake_k8s("t1")).await;
    let r = app.get("/v1/clustertemplates/t1", &member("p1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
}
