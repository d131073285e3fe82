//! `/v1/federations` over HTTP on every backend: create, the summary and
//! full views, validation (each refusal in upstream's error body, changing
//! nothing), joining and leaving through PATCH, tenancy, paging, delete.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{json, Value};

on_all_backends!(
    federation_lifecycle,
    federation_create_validation,
    federation_patch,
    federation_tenancy_and_paging,
);

/// A template and clusters `names` in the project of `who`; their uuids.
async fn clusters(app: &TestApp, who: &Who, names: &[&str]) -> Vec<String> {
    app.create_template(who, fake_k8s("t1")).await;
    let mut out = Vec::new();
    for name in names {
        out.push(
            app.create_cluster(who, json!({"cluster_template_id": "t1", "name": name}))
                .await,
        );
    }
    out
}

async fn create(app: &TestApp, who: &Who, body: Value) -> String {
    let r = app.post("/v1/federations", who, body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "create failed: {}", r.raw);
    let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["uuid"]);
    r.body["uuid"].as_str().unwrap().to_string()
}

async fn federations(app: &TestApp, who: &Who) -> Vec<Value> {
    let r = app.get("/v1/federations", who).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    r.body["federations"].as_array().unwrap().clone()
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

async fn federation_lifecycle(backend: Backend) {
    let app = TestApp::new(backend).await;
    let who = member("p1");
    let ids = clusters(&app, &who, &["host", "m1"]).await;
    let (host, m1) = (&ids[0], &ids[1]);

    // Members by uuid or name, stored by uuid; a repeat counts once.
    let fed = create(
        &app,
        &who,
        json!({
            "name": "fed",
            "hostcluster_id": "host",
            "member_ids": [host, "m1", m1],
            "properties": {"dns-zone": "example.com."},
        }),
    )
    .await;

    let list = federations(&app, &who).await;
    assert_eq!(list.len(), 1);
    let item = &list[0];
    assert_eq!(
        keys(item),
        [
            "hostcluster_id",
            "links",
            "member_ids",
            "name",
            "properties",
            "status",
            "uuid"
        ]
    );
    assert_eq!(item["uuid"], fed.as_str());
    assert_eq!(item["name"], "fed");
    assert_eq!(item["hostcluster_id"], host.as_str());
    assert_eq!(item["member_ids"], json!([host, m1]));
    assert_eq!(item["status"], "CREATE_COMPLETE");
    assert_eq!(item["properties"], json!({"dns-zone": "example.com."}));
    assert_eq!(
        item["links"],
        json!([
            {"href": format!("http://magnum.test:9511/v1/federations/{fed}"), "rel": "self"},
            {"href": format!("http://magnum.test:9511/federations/{fed}"), "rel": "bookmark"},
        ])
    );

    let r = app.get("/v1/federations/detail", &who).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    let full = &r.body["federations"][0];
    assert_eq!(
        keys(full),
        [
            "created_at",
            "hostcluster_id",
            "links",
            "member_ids",
            "name",
            "properties",
            "status",
            "status_reason",
            "updated_at",
            "uuid"
        ]
    );
    assert_eq!(full["status_reason"], "CREATE completed successfully");
    assert!(full["created_at"].as_str().unwrap().ends_with("+00:00"));
    assert_eq!(full["updated_at"], Value::Null);

    let r = app.get(&format!("/v1/federations/{fed}"), &who).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(&r.body, full);
    let by_name = app.get("/v1/federations/fed", &who).await;
    assert_eq!(by_name.body, r.body, "by name too");
    let upper = fed.to_uppercase();
    assert_eq!(
        app.get(&format!("/v1/federations/{upper}"), &who)
            .await
            .body,
        r.body,
        "any uuid spelling"
    );
    // A reader sees it too.
    assert_eq!(
        app.get(&format!("/v1/federations/{fed}"), &reader("p1"))
            .await
            .status,
        StatusCode::OK
    );

    // Without a name, one is made up; without members, the list is empty.
    let other = create(
        &app,
        &who,
        json!({"hostcluster_id": host, "properties": {"dns-zone": "b.org."}}),
    )
    .await;
    let r = app.get(&format!("/v1/federations/{other}"), &who).await;
    assert!(
        r.body["name"].as_str().unwrap().ends_with("-federation"),
        "{}",
        r.raw
    );
    assert_eq!(r.body["member_ids"], json!([]));

    // Delete: 204 without a body, then gone.
    let r = app.delete(&format!("/v1/federations/{fed}"), &who).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.raw);
    assert!(r.raw.is_empty());
    let r = app.get(&format!("/v1/federations/{fed}"), &who).await;
    assert_eq!(
        r.error(404),
        format!("Federation {fed} could not be found.")
    );
    let r = app.delete(&format!("/v1/federations/{fed}"), &who).await;
    r.error(404);
    let r = app.delete("/v1/federations/fed", &who).await;
    assert_eq!(r.error(404), "Federation fed could not be found.");
    assert_eq!(federations(&app, &who).await.len(), 1);
    // The clusters are untouched.
    assert_eq!(
        app.get(&format!("/v1/clusters/{host}"), &who).await.status,
        StatusCode::OK
    );
}

async fn federation_create_validation(backend: Backend) {
    let app = TestApp::new(backend).await;
    let who = member("p1");
    let ids = clusters(&app, &who, &["host"]).await;
    let host = &ids[0];
    let elsewhere = clusters(&app, &member("p2"), &["theirs"]).await;
    let ok = json!({
        "name": "fed",
        "hostcluster_id": host,
        "member_ids": [host],
        "properties": {"dns-zone": "example.com."},
    });
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = ok.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases: Vec<(Value, u16, String)> = vec![
        (
            without("hostcluster_id"),
            400,
            "No hostcluster specified. Please specify a hostcluster_id.".into(),
        ),
        (
            with("hostcluster_id", Value::Null),
            400,
            "No hostcluster specified. Please specify a hostcluster_id.".into(),
        ),
        (
            with("hostcluster_id", json!("nope")),
            404,
            "Cluster nope could not be found.".into(),
        ),
        (
            with("hostcluster_id", json!(elsewhere[0])),
            404,
            format!("Cluster {} could not be found.", elsewhere[0]),
        ),
        (
            without("properties"),
            400,
            "Please specify a `properties` dict for the federation.".into(),
        ),
        (
            with("properties", json!({"other": "x"})),
            400,
            "No DNS zone specified. Please specify a `dns-zone`.".into(),
        ),
        (
            with("properties", json!({"dns-zone": 5})),
            400,
            "Invalid input for field/attribute properties. Value: '{'dns-zone': 5}'. \
             Wrong type. Expected '<class 'str'>', got '<class 'int'>'"
                .into(),
        ),
        (
            with("member_ids", json!([host, "ghost"])),
            404,
            "Cluster ghost could not be found.".into(),
        ),
        (
            with("member_ids", json!(elsewhere)),
            404,
            format!("Cluster {} could not be found.", elsewhere[0]),
        ),
        (
            with("member_ids", json!(host)),
            400,
            format!(
                "Invalid input for field/attribute member_ids. Value: '{host}'. \
                 Wrong type. Expected '<class 'list'>', got '<class 'str'>'"
            ),
        ),
        (
            with("bogus", json!(1)),
            400,
            "Unknown attribute for argument federation: bogus".into(),
        ),
        (
            with("created_at", json!("2020-01-01")),
            400,
            "Invalid input for field/attribute created_at. Value: '2020-01-01'. \
             Cannot set read only field."
                .into(),
        ),
        (
            with("name", json!("1fed")),
            400,
            "Invalid input for field/attribute name. Value: '1fed'. \
             Value should match the pattern ^[a-zA-Z][a-zA-Z0-9_.-]*$"
                .into(),
        ),
        (
            with("status", json!("FINE")),
            400,
            "Invalid input for field/attribute status. Value: 'FINE'. Value should be one of: \
             CREATE_IN_PROGRESS, CREATE_FAILED, CREATE_COMPLETE, UPDATE_IN_PROGRESS, \
             UPDATE_FAILED, UPDATE_COMPLETE, DELETE_IN_PROGRESS, DELETE_FAILED, DELETE_COMPLETE"
                .into(),
        ),
        (
            json!([ok.clone()]),
            400,
            format!(
                "Invalid input for field/attribute federation. Value: '{}'. Expected an object",
                json!([ok.clone()])
            ),
        ),
    ];
    for (body, status, detail) in cases {
        let r = app.post("/v1/federations", &who, body.clone()).await;
        assert_eq!(r.error(status), detail, "for {body}");
    }
    let r = app.post("/v1/federations", &reader("p1"), ok.clone()).await;
    assert_eq!(
        r.error(403),
        "Policy doesn't allow federation:create to be performed."
    );
    let r = app
        .send(Method::POST, "/v1/federations", &who, &[], None)
        .await;
    r.error(400);
    assert!(federations(&app, &who).await.is_empty(), "nothing stored");
    assert!(federations(&app, &member("p2")).await.is_empty());

    // Status and uuid given in the body are the server's to set.
    let mut body = ok.clone();
    body["status"] = json!("DELETE_FAILED");
    body["uuid"] = json!("00000000-0000-4000-8000-000000000000");
    let fed = create(&app, &who, body).await;
    assert_ne!(fed, "00000000-0000-4000-8000-000000000000");
    let r = app.get(&format!("/v1/federations/{fed}"), &who).await;
    assert_eq!(r.body["status"], "CREATE_COMPLETE");
}

async fn federation_patch(backend: Backend) {
    let app = TestApp::new(backend).await;
    let who = member("p1");
    let ids = clusters(&app, &who, &["c1", "c2", "c3"]).await;
    let (c1, c2, c3) = (&ids[0], &ids[1], &ids[2]);
    let fed = create(
        &app,
        &who,
        json!({"name": "fed", "hostcluster_id": c1, "member_ids": [c1],
               "properties": {"dns-zone": "example.com."}}),
    )
    .await;
    let path = format!("/v1/federations/{fed}");
    let show = || async { app.get(&path, &who).await.body };
    let patch = |body: Value| app.patch(&path, &who, body);

    // Join: add one cluster (by uuid or name) to /member_ids.
    let r = patch(json!([{"op": "add", "path": "/member_ids", "value": c2}])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(r.body, json!({"uuid": fed}));
    let now = show().await;
    assert_eq!(now["member_ids"], json!([c1, c2]));
    assert_eq!(now["status"], "UPDATE_COMPLETE");
    assert_eq!(now["status_reason"], "UPDATE completed successfully");
    assert!(now["updated_at"].as_str().is_some());
    let r = patch(json!([{"op": "add", "path": "/member_ids", "value": "c3"}])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(show().await["member_ids"], json!([c1, c2, c3]));

    // Leave: remove one cluster from /member_ids.
    let r = patch(json!([{"op": "remove", "path": "/member_ids", "value": c3}])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(show().await["member_ids"], json!([c1, c2]));

    // Replace the whole list, as JSON or as a Python literal.
    let r = patch(json!([{"op": "replace", "path": "/member_ids", "value": ["c3", c1]}])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(show().await["member_ids"], json!([c3, c1]));
    let literal = format!("['{c2}']");
    let r = patch(json!([{"op": "replace", "path": "/member_ids", "value": literal}])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(show().await["member_ids"], json!([c2]));

    // Properties.
    let r = patch(json!([
        {"op": "replace", "path": "/properties/dns-zone", "value": "other.org."},
        {"op": "add", "path": "/properties/extra", "value": "x"},
    ]))
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(
        show().await["properties"],
        json!({"dns-zone": "other.org.", "extra": "x"})
    );
    let r = patch(json!([{"op": "replace", "path": "/properties",
                          "value": "{'dns-zone': 'third.net.'}"}]))
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(
        show().await["properties"],
        json!({"dns-zone": "third.net."})
    );

    // Refusals change nothing.
    let before = show().await;
    let refusals: Vec<(Value, u16, String)> = vec![
        (
            json!([{"op": "replace", "path": "/name", "value": "renamed"}]),
            400,
            "cannot change federation property(ies) name.".into(),
        ),
        (
            json!([{"op": "replace", "path": "/hostcluster_id", "value": c2},
                   {"op": "replace", "path": "/status", "value": "CREATE_FAILED"}]),
            400,
            "cannot change federation property(ies) hostcluster_id, status.".into(),
        ),
        (
            json!([{"op": "add", "path": "/member_ids", "value": "c3"},
                   {"op": "remove", "path": "/name"}]),
            400,
            "cannot change federation property(ies) name.".into(),
        ),
        (
            json!([{"op": "replace", "path": "/uuid", "value": c1}]),
            400,
            "'/uuid' is an internal attribute and can not be updated".into(),
        ),
        (
            json!([{"op": "add", "path": "/member_ids", "value": c2}]),
            409,
            format!("A cluster with UUID {c2} is already a member of the federation fed."),
        ),
        (
            json!([{"op": "add", "path": "/member_ids", "value": "ghost"}]),
            404,
            "Cluster ghost could not be found.".into(),
        ),
        (
            json!([{"op": "replace", "path": "/member_ids", "value": [c2, "ghost"]}]),
            404,
            "Cluster ghost could not be found.".into(),
        ),
        (
            json!([{"op": "remove", "path": "/member_ids", "value": c1}]),
            404,
            format!("Cluster {c1} is not a member of the federation fed."),
        ),
        (
            json!([{"op": "remove", "path": "/properties/dns-zone"}]),
            400,
            "No DNS zone specified. Please specify a `dns-zone`.".into(),
        ),
        (
            json!([{"op": "add", "path": "/properties/n", "value": 5}]),
            400,
            "Invalid input for field/attribute properties. Value: '{'dns-zone': 'third.net.', \
             'n': 5}'. Wrong type. Expected '<class 'str'>', got '<class 'int'>'"
                .into(),
        ),
        (
            json!([{"op": "move", "path": "/member_ids", "value": "x"}]),
            400,
            "Invalid input for field/attribute op. Value: 'move'. \
             Value should be one of: add, replace, remove"
                .into(),
        ),
        // Upstream indexes the first operation and answers 500: a 400 here.
        (
            json!([]),
            400,
            "The patch must contain at least one operation.".into(),
        ),
    ];
    for (body, status, detail) in refusals {
        let r = patch(body.clone()).await;
        assert_eq!(r.error(status), detail, "for {body}");
        assert_eq!(show().await, before, "{body} changed nothing");
    }
    let r = app
        .patch(
            &format!("{path}?rollback=maybe"),
            &who,
            json!([{"op": "add", "path": "/member_ids", "value": "c3"}]),
        )
        .await;
    r.error(400);
    let r = app
        .patch(
            &path,
            &reader("p1"),
            json!([{"op": "add", "path": "/member_ids", "value": "c3"}]),
        )
        .await;
    assert_eq!(
        r.error(403),
        "Policy doesn't allow federation:update to be performed."
    );
    assert_eq!(show().await, before);

    // rollback is accepted; remove without a value empties the list.
    let r = app
        .patch(
            &format!("{path}?rollback=true"),
            &who,
            json!([{"op": "remove", "path": "/member_ids"}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(show().await["member_ids"], json!([]));
    // By name too.
    let r = app
        .patch(
            "/v1/federations/fed",
            &who,
            json!([{"op": "add", "path": "/member_ids", "value": c1}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(show().await["member_ids"], json!([c1]));
}

async fn federation_tenancy_and_paging(backend: Backend) {
    let app = TestApp::new(backend).await;
    let who = member("p1");
    let ids = clusters(&app, &who, &["host"]).await;
    let body = |name: &str| {
        json!({"name": name, "hostcluster_id": ids[0],
               "properties": {"dns-zone": "example.com."}})
    };
    let a = create(&app, &who, body("a")).await;
    let b = create(&app, &who, body("same")).await;
    let c = create(&app, &who, body("same")).await;

    // Another project, even its admin, sees none of them.
    for other in [member("p2"), admin("p2")] {
        assert!(federations(&app, &other).await.is_empty());
        let r = app.get(&format!("/v1/federations/{a}"), &other).await;
        assert_eq!(r.error(404), format!("Federation {a} could not be found."));
        let r = app
            .patch(
                &format!("/v1/federations/{a}"),
                &other,
                json!([{"op": "remove", "path": "/member_ids"}]),
            )
            .await;
        r.error(404);
        let r = app.delete(&format!("/v1/federations/{a}"), &other).await;
        r.error(404);
        let r = app.get("/v1/federations/a", &other).await;
        assert_eq!(r.error(404), "Federation a could not be found.");
    }
    let r = app
        .delete(&format!("/v1/federations/{a}"), &reader("p1"))
        .await;
    assert_eq!(
        r.error(403),
        "Policy doesn't allow federation:delete to be performed."
    );
    assert_eq!(federations(&app, &who).await.len(), 3);

    // An ambiguous name.
    let r = app.get("/v1/federations/same", &who).await;
    assert_eq!(
        r.error(409),
        "Multiple federations exist with same name. Please use the federation uuid instead."
    );

    // Paging, with upstream's next link.
    let r = app.get("/v1/federations?limit=2", &who).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    let page: Vec<&str> = r.body["federations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(page, [a.as_str(), b.as_str()]);
    assert_eq!(
        r.body["next"],
        format!(
            "http://magnum.test:9511/v1/federations?sort_key=id&sort_dir=asc&limit=2&marker={b}"
        )
    );
    let r = app
        .get(&format!("/v1/federations?limit=2&marker={b}"), &who)
        .await;
    assert_eq!(r.body["federations"][0]["uuid"], c.as_str());
    assert!(r.body.get("next").is_none());
    let r = app
        .get("/v1/federations/detail?limit=1&sort_dir=desc", &who)
        .await;
    assert_eq!(r.body["federations"][0]["uuid"], c.as_str());
    assert!(r.body["next"]
        .as_str()
        .unwrap()
        .starts_with("http://magnum.test:9511/v1/federations/detail?"));
    let r = app.get("/v1/federations?sort_key=bogus", &who).await;
    assert_eq!(
        r.error(400),
        "The sort_key value \"bogus\" is an invalid field for sorting"
    );
    let r = app.get("/v1/federations?foo=1", &who).await;
    assert_eq!(r.error(400), "Unknown argument: \"foo\"");
    let missing = "00000000-0000-4000-8000-000000000000";
    let r = app
        .get(&format!("/v1/federations?marker={missing}"), &who)
        .await;
    assert_eq!(
        r.error(404),
        format!("Federation {missing} could not be found.")
    );
}
