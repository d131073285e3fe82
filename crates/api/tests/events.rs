//! A cluster's history and the ways out of failure, on every backend: the
//! events of `GET /v1/clusters/{ident}/events` (and of a node group),
//! paged and scoped like the cluster; a failed update updated again, a
//! failed create driven again with `actions/retry`.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{json, Value};

on_all_backends!(
    a_failed_create_tells_its_story,
    events_are_paged_and_scoped,
    a_failed_update_is_retried_to_complete,
    a_failed_create_is_driven_again,
    a_delete_whose_trust_is_refused_completes,
);

fn make(labels: Value) -> Value {
    json!({"cluster_template_id": "t1", "labels": labels, "merge_labels": true})
}

/// Every event of a cluster, oldest first.
async fn events(app: &TestApp, path: &str, who: &Who) -> Vec<Value> {
    let r = app.get(path, who).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    r.body["events"].as_array().unwrap().clone()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

/// The create is queued, claimed (by this conductor's host), handed to
/// the driver; the driver's failed resource and the failure come with
/// their class, and status_reason stays upstream's.
async fn a_failed_create_tells_its_story(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.create_template(&Who::Default, fake_k8s("t1")).await;
    let id = app
        .create_cluster(
            &Who::Default,
            make(json!({
                "fake_fail": "create",
                "fake_fail_reason": "Quota exceeded for cores: Requested 8, but already used 20 of 20 cores",
                "fake_fail_resource": "kube_masters.0.kube-master",
            })),
        )
        .await;
    let c = app.settle(&id, "CREATE_FAILED").await;
    assert_eq!(
        c["status_reason"],
        "Quota exceeded for cores: Requested 8, but already used 20 of 20 cores"
    );
    let all = events(&app, &format!("/v1/clusters/{id}/events"), &Who::Default).await;
    assert_eq!(
        kinds(&all),
        ["queued", "claimed", "finished", "driver", "failed"],
        "{all:#?}"
    );
    assert_eq!(all[0]["method"], "cluster_create");
    let host = app.conductor.settings().host.clone();
    assert_eq!(all[1]["host"], host.as_str());
    assert!(all[1]["message"]
        .as_str()
        .unwrap()
        .contains(&format!("claimed by {host} (attempt 1)")));
    assert_eq!(all[0]["operation_uuid"], all[1]["operation_uuid"]);
    let driver = &all[3];
    assert_eq!(driver["resource"], "kube_masters.0.kube-master");
    assert_eq!(driver["reason_class"], "quota");
    assert!(driver["message"]
        .as_str()
        .unwrap()
        .starts_with("CREATE_FAILED: Quota exceeded"));
    let failed = &all[4];
    assert_eq!(failed["status"], "CREATE_FAILED");
    assert_eq!(failed["reason_class"], "quota");
    assert!(failed["created_at"].as_str().unwrap().ends_with("+00:00"));

    // A create the driver refuses at once fails in the attempt itself:
    // its failure is recorded with the operation's retirement.
    let id = app
        .create_cluster(&Who::Default, make(json!({"fake_refuse": "create"})))
        .await;
    app.settle(&id, "CREATE_FAILED").await;
    let all = events(&app, &format!("/v1/clusters/{id}/events"), &Who::Default).await;
    assert_eq!(kinds(&all), ["queued", "claimed", "failed"], "{all:#?}");
    assert_eq!(all[2]["reason_class"], "driver_error");
    assert_eq!(all[2]["method"], "cluster_create");

    // An unreachable cloud is retried, and says why.
    app.cloud_outage(true);
    let id = app.create_cluster(&Who::Default, make(json!({}))).await;
    let mut all = Vec::new();
    for _ in 0..50 {
        app.conductor.tick().await;
        all = events(&app, &format!("/v1/clusters/{id}/events"), &Who::Default).await;
        if all.iter().any(|e| e["kind"] == "retried") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let retried: Vec<&Value> = all.iter().filter(|e| e["kind"] == "retried").collect();
    assert!(!retried.is_empty(), "{all:#?}");
    assert!(retried[0]["message"]
        .as_str()
        .unwrap()
        .contains("the fake cloud is unreachable"));
    assert_eq!(retried[0]["reason_class"], "cloud_unreachable");
    app.cloud_outage(false);
}

/// Pages by limit and marker in either direction, with the `next` link;
/// a node group's route lists its own; another project's cluster is not
/// found, and a bad marker or direction is a 400/404 as upstream's lists.
async fn events_are_paged_and_scoped(backend: Backend) {
    let app = TestApp::new(backend).await;
    let alice = member("alice");
    app.create_template(&alice, fake_k8s("t1")).await;
    let id = app.create_cluster(&alice, make(json!({}))).await;
    app.settle(&id, "CREATE_COMPLETE").await;
    // A resize of the default worker group: events of that group.
    let r = app
        .send(
            Method::POST,
            &format!("/v1/clusters/{id}/actions/resize"),
            &alice,
            &[("OpenStack-API-Version", "container-infra latest")],
            Some(Body::from(json!({"node_count": 2}).to_string())),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    app.settle(&id, "UPDATE_COMPLETE").await;

    let path = format!("/v1/clusters/{id}/events");
    let all = events(&app, &path, &alice).await;
    assert!(all.len() >= 8, "{all:#?}");
    // Pages of three, following `next`, give the same events in order.
    let mut paged = Vec::new();
    let mut next = format!("{path}?limit=3");
    loop {
        let r = app.get(&next, &alice).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
        let page = r.body["events"].as_array().unwrap().clone();
        assert!(page.len() <= 3);
        paged.extend(page);
        match r.body["next"].as_str() {
            Some(n) => next = n[n.find("/v1/").unwrap()..].to_string(),
            None => break,
        }
        assert!(paged.len() <= all.len(), "paging does not end");
    }
    assert_eq!(paged, all);
    let desc = events(&app, &format!("{path}?sort_dir=desc&limit=2"), &alice).await;
    assert_eq!(desc[0], all[all.len() - 1]);
    assert_eq!(desc[1], all[all.len() - 2]);
    let marker = all[1]["uuid"].as_str().unwrap();
    let after = events(&app, &format!("{path}?marker={marker}&limit=2"), &alice).await;
    assert_eq!(after, all[2..4]);

    // The worker group's own events: its resize.
    let ngs = app
        .send(
            Method::GET,
            &format!("/v1/clusters/{id}/nodegroups"),
            &alice,
            &[("OpenStack-API-Version", "container-infra latest")],
            None,
        )
        .await;
    let worker = ngs.body["nodegroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["role"] == "worker")
        .unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let mine = events(
        &app,
        &format!("/v1/clusters/{id}/nodegroups/{worker}/events"),
        &alice,
    )
    .await;
    assert!(!mine.is_empty());
    assert!(
        mine.iter()
            .all(|e| e["nodegroup_uuid"] == worker.as_str() && e["method"] == "cluster_resize"),
        "{mine:#?}"
    );
    assert_eq!(kinds(&mine)[..3], ["queued", "claimed", "finished"]);
    // By name too.
    let by_name = events(
        &app,
        &format!("/v1/clusters/{id}/nodegroups/default-worker/events"),
        &alice,
    )
    .await;
    assert_eq!(by_name, mine);

    // Another project sees no such cluster; its admin (all projects) does.
    let r = app.get(&path, &member("bob")).await;
    assert!(r.error(404).contains("could not be found"), "{}", r.raw);
    let r = app
        .get(
            &format!("/v1/clusters/{id}/nodegroups/{worker}/events"),
            &member("bob"),
        )
        .await;
    r.error(404);
    assert_eq!(events(&app, &path, &admin("ops")).await, all);
    // A reader of the project may read them; the policy can forbid it.
    assert_eq!(events(&app, &path, &reader("alice")).await, all);

    // Bad paging arguments, as upstream's lists answer them.
    let r = app.get(&format!("{path}?marker=nope"), &alice).await;
    r.error(400);
    let other = uuid::Uuid::new_v4();
    let r = app.get(&format!("{path}?marker={other}"), &alice).await;
    r.error(404);
    let r = app.get(&format!("{path}?sort_dir=up"), &alice).await;
    r.error(400);
    let r = app.get(&format!("{path}?limit=0"), &alice).await;
    r.error(400);
    let r = app.get(&format!("{path}?sort_key=message"), &alice).await;
    r.error(400);
    let r = app.get(&format!("{path}?bogus=1"), &alice).await;
    r.error(400);
    let r = app
        .get(&format!("/v1/clusters/{id}/nodegroups/nope/events"), &alice)
        .await;
    r.error(404);
    // Served at the oldest microversion too, and the maximum is upstream's.
    let r = app
        .send(
            Method::GET,
            &path,
            &alice,
            &[("OpenStack-API-Version", "container-infra 1.1")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(
        r.header("openstack-api-maximum-version"),
        Some("container-infrastructure-management 1.14")
    );
}

/// An update that failed is accepted again, and a working cloud takes it
/// to UPDATE_COMPLETE with its node groups.
async fn a_failed_update_is_retried_to_complete(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.create_template(&Who::Default, fake_k8s("t1")).await;
    let id = app
        .create_cluster(&Who::Default, make(json!({"fake_fail_once": "update"})))
        .await;
    app.settle(&id, "CREATE_COMPLETE").await;
    let patch = |n: i64| json!([{"op": "replace", "path": "/node_count", "value": n}]);
    let path = format!("/v1/clusters/{id}");
    let r = app
        .send(
            Method::PATCH,
            &path,
            &Who::Default,
            &[("OpenStack-API-Version", "container-infra latest")],
            Some(Body::from(patch(3).to_string())),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    let c = app.settle(&id, "UPDATE_FAILED").await;
    assert_eq!(c["status_reason"], "fake cloud: update failed as asked");
    // Upstream refuses this; ours takes it.
    let r = app
        .send(
            Method::PATCH,
            &path,
            &Who::Default,
            &[("OpenStack-API-Version", "container-infra latest")],
            Some(Body::from(patch(3).to_string())),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    let c = app.settle(&id, "UPDATE_COMPLETE").await;
    assert_eq!(c["node_count"], 3);
    let ngs = app.db.nodegroups_of(&id).await.unwrap();
    assert!(
        ngs.iter()
            .all(|n| n.status.as_deref() != Some("UPDATE_FAILED")),
        "{ngs:#?}"
    );
    let all = events(&app, &format!("{path}/events"), &Who::Default).await;
    let updates: Vec<&str> = all
        .iter()
        .filter(|e| e["method"] == "cluster_update" && e["kind"] == "queued")
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(updates.len(), 2);
    assert_eq!(all.last().unwrap()["status"], "UPDATE_COMPLETE");
    // A resize after a failed update was always allowed; an upgrade after
    // one still is not (upstream's gate), nor an update of a failed create.
    let id2 = app
        .create_cluster(&Who::Default, make(json!({"fake_fail": "create"})))
        .await;
    app.settle(&id2, "CREATE_FAILED").await;
    let r = app
        .send(
            Method::PATCH,
            &format!("/v1/clusters/{id2}"),
            &Who::Default,
            &[("OpenStack-API-Version", "container-infra latest")],
            Some(Body::from(patch(2).to_string())),
        )
        .await;
    assert_eq!(
        r.error(400),
        "Updating a cluster when status is \"CREATE_FAILED\" is not supported."
    );
}

/// A CREATE_FAILED cluster is driven again with `actions/retry` and ends
/// CREATE_COMPLETE (node groups too), without being deleted; other
/// statuses refuse it, and so does the policy for a reader.
async fn a_failed_create_is_driven_again(backend: Backend) {
    let app = TestApp::new(backend).await;
    let alice = member("alice");
    app.create_template(&alice, fake_k8s("t1")).await;
    let id = app
        .create_cluster(&alice, make(json!({"fake_fail_once": "create"})))
        .await;
    let failed = app.settle(&id, "CREATE_FAILED").await;
    // Created longer ago than its create timeout (60 minutes): the retry's
    // timeout counts from the retry.
    magnum_db::testing::age_cluster(&app.db, &id, 3700).await;
    let failed = json!({
        "uuid": failed["uuid"],
        "stack_id": failed["stack_id"],
        "created_at": app.get(&format!("/v1/clusters/{id}"), &alice).await.body["created_at"],
    });
    let retry = format!("/v1/clusters/{id}/actions/retry");
    let r = app.post(&retry, &reader("alice"), json!({})).await;
    r.error(403);
    let r = app.post(&retry, &member("bob"), json!({})).await;
    r.error(404);
    let r = app.post(&retry, &alice, json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(r.body["uuid"], id.as_str());
    let c = app.settle(&id, "CREATE_COMPLETE").await;
    assert_eq!(c["uuid"], failed["uuid"]);
    assert_eq!(c["stack_id"], failed["stack_id"]);
    assert_eq!(c["created_at"], failed["created_at"]);
    let ngs = app.db.nodegroups_of(&id).await.unwrap();
    assert!(
        ngs.iter()
            .all(|n| n.status.as_deref() == Some("CREATE_COMPLETE")),
        "{ngs:#?}"
    );
    // The history has both attempts.
    let all = events(&app, &format!("/v1/clusters/{id}/events"), &alice).await;
    let queued = all
        .iter()
        .filter(|e| e["kind"] == "queued" && e["method"] == "cluster_create")
        .count();
    assert_eq!(queued, 2, "{all:#?}");
    assert_eq!(all.last().unwrap()["status"], "CREATE_COMPLETE");
    // Only a failed create is retried.
    let r = app.post(&retry, &alice, json!({})).await;
    assert_eq!(
        r.error(400),
        "Retrying the create of a cluster when status is \"CREATE_COMPLETE\" is not supported."
    );
    let r = app
        .post("/v1/clusters/nope/actions/retry", &alice, json!({}))
        .await;
    r.error(404);
}

/// A delete whose owner's trust the cloud refuses is finished with the
/// service's own credentials, to the end, and its events say so (they
/// stay in the table after the cluster is gone).
async fn a_delete_whose_trust_is_refused_completes(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.create_template(&Who::Default, fake_k8s("t1")).await;
    let id = app
        .create_cluster(
            &Who::Default,
            make(json!({"fake_trust_refused": "delete,status"})),
        )
        .await;
    app.settle(&id, "CREATE_COMPLETE").await;
    // The trust the API made with the owner's token (here by hand: no
    // Keystone in this test).
    app.db
        .trust_save(&magnum_db::ClusterTrust {
            cluster_uuid: id.clone(),
            trustee_user_id: Some("trustee".into()),
            trustee_username: Some("trustee".into()),
            trustee_password: Some("pw".into()),
            trust_id: Some("trust".into()),
        })
        .await
        .unwrap();
    let r = app
        .delete(&format!("/v1/clusters/{id}"), &Who::Default)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.raw);
    app.settle(&id, "gone").await;
    let page = magnum_db::Page {
        limit: Some(100),
        ..Default::default()
    };
    let left = app.db.events_of(&id, None, &page).await.unwrap();
    let kinds: Vec<&str> = left.iter().map(|e| e.kind.as_str()).collect();
    let at = kinds
        .iter()
        .position(|k| *k == "service_credentials")
        .unwrap_or_else(|| panic!("{left:#?}"));
    let e = &left[at];
    assert_eq!(e.method.as_deref(), Some("cluster_delete"));
    assert_eq!(e.reason_class.as_deref(), Some("credentials_refused"));
    assert!(e
        .message
        .as_deref()
        .unwrap()
        .contains("Keystone refused authentication"));
    // The delete then finished, the cluster is gone, and nothing failed.
    assert_eq!(kinds[at + 1], "finished", "{left:#?}");
    let last = left.last().unwrap();
    assert_eq!(last.kind, "completed", "{left:#?}");
    assert_eq!(last.status.as_deref(), Some("DELETE_COMPLETE"));
    assert!(!kinds.contains(&"failed"), "{left:#?}");
    assert!(app.db.trust_get(&id).await.unwrap().is_none());
}
