//! Characters beyond U+FFFF (U+1F600) in identifiers and stored values.
//! Upstream's MariaDB tables `cluster`, `cluster_template`, `quotas` and
//! `x509keypair` are utf8mb3: MariaDB refuses even to compare such a value
//! with their columns. Every backend answers alike: an identifier such a
//! column cannot hold names nothing (404, as for any unknown name), a
//! plain text value it cannot hold is a 400 saying so, and JSON values
//! (labels) keep the character.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{json, Value};

on_all_backends!(
    lookups_by_an_unstorable_identifier_find_nothing,
    posts_naming_an_unstorable_identifier_find_nothing,
    unstorable_text_is_refused_and_labels_kept,
);

const SMILE: &str = "\u{1F600}";
const SMILE_PATH: &str = "%F0%9F%98%80";

/// `path` with `{}` as the smiling identifier and as an unknown plain one
/// answer the same status, and the same detail but for the identifier.
async fn same_as_unknown(app: &TestApp, method: Method, path: &str, body: Option<Value>) {
    let send = |ident: &str| {
        let path = path.replace("{}", ident);
        let body = body
            .as_ref()
            .map(|b| Body::from(b.to_string().replace("{}", &path_ident(ident))));
        let method = method.clone();
        async move {
            app.send(
                method,
                &path,
                &Who::Default,
                &[("OpenStack-API-Version", "container-infra latest")],
                body,
            )
            .await
        }
    };
    let smile = send(SMILE_PATH).await;
    let plain = send("nothing-by-this-name").await;
    assert!(
        !smile.status.is_server_error(),
        "{method} {path}: {}",
        smile.raw
    );
    assert_eq!(smile.status, plain.status, "{method} {path}: {}", smile.raw);
    let detail = |r: &Resp| r.body["errors"][0]["detail"].clone();
    assert_eq!(
        detail(&smile)
            .as_str()
            .map(|d| d.replace(SMILE, "nothing-by-this-name")),
        detail(&plain).as_str().map(str::to_string),
        "{method} {path}"
    );
}

/// The identifier as it goes into a JSON body (decoded).
fn path_ident(ident: &str) -> String {
    if ident == SMILE_PATH {
        SMILE.to_string()
    } else {
        ident.to_string()
    }
}

async fn lookups_by_an_unstorable_identifier_find_nothing(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.create_template(&Who::Default, fake_k8s("t")).await;
    let cluster = app
        .create_cluster(
            &Who::Default,
            json!({"name": "c", "cluster_template_id": "t"}),
        )
        .await;
    app.settle(&cluster, "CREATE_COMPLETE").await;
    for (method, path) in [
        (Method::GET, "/v1/clustertemplates/{}".to_string()),
        (Method::PATCH, "/v1/clustertemplates/{}".to_string()),
        (Method::DELETE, "/v1/clustertemplates/{}".to_string()),
        (Method::GET, "/v1/clusters/{}".to_string()),
        (Method::DELETE, "/v1/clusters/{}".to_string()),
        (Method::GET, "/v1/clusters/{}/nodegroups".to_string()),
        (
            Method::GET,
            format!("/v1/clusters/{cluster}/nodegroups/{{}}"),
        ),
        (Method::GET, "/v1/certificates/{}".to_string()),
        (Method::GET, "/v1/federations/{}".to_string()),
        (Method::GET, "/v1/quotas/{}/Cluster".to_string()),
        (Method::DELETE, "/v1/quotas/{}/Cluster".to_string()),
        (Method::GET, "/v1/stats?project_id={}".to_string()),
    ] {
        let body = (method == Method::PATCH)
            .then(|| json!([{"op": "replace", "path": "/name", "value": "x"}]));
        same_as_unknown(&app, method, &path, body).await;
    }
    // And the plain 404 text names the identifier as given.
    let r = app
        .get(&format!("/v1/clustertemplates/{SMILE_PATH}"), &Who::Default)
        .await;
    assert_eq!(
        r.error(404),
        format!("ClusterTemplate {SMILE} could not be found.")
    );
    let r = app
        .get(&format!("/v1/clusters/{SMILE_PATH}"), &Who::Default)
        .await;
    assert_eq!(r.error(404), format!("Cluster {SMILE} could not be found."));
}

async fn posts_naming_an_unstorable_identifier_find_nothing(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.create_template(&Who::Default, fake_k8s("t")).await;
    same_as_unknown(
        &app,
        Method::POST,
        "/v1/clusters",
        Some(json!({"name": "c", "cluster_template_id": "{}"})),
    )
    .await;
    same_as_unknown(
        &app,
        Method::POST,
        "/v1/federations",
        Some(json!({"name": "f", "hostcluster_id": "{}", "properties": {"dns-zone": "z."}})),
    )
    .await;
    same_as_unknown(
        &app,
        Method::POST,
        "/v1/certificates",
        Some(json!({"cluster_uuid": "{}", "csr": "x"})),
    )
    .await;
}

async fn unstorable_text_is_refused_and_labels_kept(backend: Backend) {
    let app = TestApp::new(backend).await;
    // A template's name: refused, whatever the backend, and nothing stored.
    let r = app
        .post(
            "/v1/clustertemplates",
            &Who::Default,
            fake_k8s(&format!("t-{SMILE}")),
        )
        .await;
    let detail = r.error(400);
    assert!(
        detail.contains("cluster_template.name cannot hold the character U+1F600"),
        "{detail}"
    );
    assert_eq!(app.template_count().await, 0);

    // Labels are JSON: the character is kept, and reads back as sent.
    let mut body = fake_k8s("t");
    body["labels"]["smile"] = json!(SMILE);
    let t = app.create_template(&Who::Default, body).await;
    assert_eq!(t["labels"]["smile"], SMILE);
    let r = app.get("/v1/clustertemplates/t", &Who::Default).await;
    assert_eq!(r.body["labels"]["smile"], SMILE, "{}", r.raw);

    // A PATCH is held to the same rule.
    let r = app
        .patch(
            "/v1/clustertemplates/t",
            &Who::Default,
            json!([{"op": "replace", "path": "/name", "value": SMILE}]),
        )
        .await;
    assert!(r.error(400).contains("U+1F600"), "{}", r.raw);
    let r = app.get("/v1/clustertemplates/t", &Who::Default).await;
    assert_eq!(r.body["name"], "t");

    // A cluster's keypair (its name has a pattern of its own): the same;
    // node groups (utf8mb4) keep it.
    let r = app
        .send(
            Method::POST,
            "/v1/clusters",
            &Who::Default,
            &[("OpenStack-API-Version", "container-infra latest")],
            Some(Body::from(
                json!({"keypair": format!("kp{SMILE}"), "cluster_template_id": "t"}).to_string(),
            )),
        )
        .await;
    assert!(r.error(400).contains("U+1F600"), "{}", r.raw);
    let cluster = app
        .create_cluster(
            &Who::Default,
            json!({"name": "c", "cluster_template_id": "t"}),
        )
        .await;
    app.settle(&cluster, "CREATE_COMPLETE").await;
    let r = app
        .send(
            Method::POST,
            &format!("/v1/clusters/{cluster}/nodegroups"),
            &Who::Default,
            &[("OpenStack-API-Version", "container-infra latest")],
            Some(Body::from(
                json!({"name": format!("ng{SMILE}"), "node_count": 1}).to_string(),
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(r.body["name"], format!("ng{SMILE}"));

    // A quota's project.
    let r = app
        .post(
            "/v1/quotas",
            &Who::Default,
            json!({"project_id": SMILE, "resource": "Cluster", "hard_limit": 1}),
        )
        .await;
    assert!(r.error(400).contains("U+1F600"), "{}", r.raw);
}
