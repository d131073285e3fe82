//! ClusterTemplates over HTTP: every status-code path of create, list,
//! detail, show, update and delete, visibility and policy.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};

on_all_backends!(
    create_applies_defaults,
    create_refuses_bad_input_and_writes_nothing,
    create_resolves_drivers,
    duplicate_uuid_conflicts,
    values_the_database_cannot_hold,
    show_by_uuid_or_name,
    list_pages_and_sorts,
    list_refuses_bad_paging,
    visibility_of_public_and_hidden,
    publishing_needs_admin,
    policy_guards_every_operation,
    patch_follows_upstream_rules,
    patch_refusals_change_nothing,
    delete_and_templates_in_use,
    operator_policy_file_applies,
    keypairs_are_checked_by_clusters_not_templates,
    patch_reselects_the_driver,
);

async fn create_applies_defaults(backend: Backend) {
    let app = TestApp::new(backend).await;
    let r = app
        .post("/v1/clustertemplates", &member("p1"), k8s("t1"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    let b = &r.body;
    let uuid = b["uuid"].as_str().unwrap();
    assert_eq!(
        r.header("location").unwrap(),
        format!("http://magnum.test:9511/v1/clustertemplates/{uuid}")
    );
    assert_eq!(b["name"], "t1");
    assert_eq!(b["coe"], "kubernetes");
    assert_eq!(b["server_type"], "vm");
    assert_eq!(b["network_driver"], "flannel");
    assert_eq!(b["public"], false);
    assert_eq!(b["hidden"], false);
    assert_eq!(b["registry_enabled"], false);
    assert_eq!(b["tls_disabled"], false);
    assert_eq!(b["master_lb_enabled"], false);
    assert_eq!(b["floating_ip_enabled"], true);
    assert_eq!(b["labels"], json!({}));
    assert_eq!(b["driver"], "k8s_ubuntu_v1");
    assert_eq!(b["project_id"], "p1");
    assert_eq!(b["user_id"], "user-p1");
    assert_eq!(b["flavor_id"], Value::Null);
    assert_eq!(b["updated_at"], Value::Null);
    assert!(b["created_at"].as_str().unwrap().ends_with("+00:00"));
    assert_eq!(b["links"][0]["rel"], "self");
    assert_eq!(
        b["links"][1]["href"],
        format!("http://magnum.test:9511/clustertemplates/{uuid}")
    );
    assert!(b.get("id").is_none(), "the row id is not shown");

    // No name: a generated one.
    let mut body = k8s("x");
    body.as_object_mut().unwrap().remove("name");
    let b = app.create_template(&member("p1"), body).await;
    assert!(b["name"].as_str().unwrap().ends_with("-template"), "{b}");

    // Every attribute given, labels normalised to strings.
    let full = json!({
        "name": "full", "coe": "kubernetes", "image_id": "img", "cluster_distro": "fedora-coreos",
        "flavor_id": "m1.small", "master_flavor_id": "m1.large", "dns_nameserver": "8.8.8.8,1.1.1.1",
        "keypair_id": "kp", "external_network_id": "public", "fixed_network": "private",
        "fixed_subnet": "private-subnet", "network_driver": "calico", "apiserver_port": 8443,
        "docker_volume_size": 25, "http_proxy": "http://p:1", "https_proxy": "https://p:2",
        "no_proxy": "10.0.0.1", "volume_driver": "cinder", "registry_enabled": true,
        "labels": {"kube_tag": "v1.30", "n": 3, "flag": true}, "tls_disabled": "yes",
        "server_type": "vm", "insecure_registry": "10.0.0.2:5000", "docker_storage_driver": "overlay2",
        "master_lb_enabled": true, "floating_ip_enabled": false, "tags": "a,b",
        "uuid": "27E3153E-D5BF-4B7E-B517-FB518E17F34C"
    });
    let b = app.create_template(&Who::Default, full).await;
    assert_eq!(b["uuid"], "27e3153e-d5bf-4b7e-b517-fb518e17f34c");
    assert_eq!(
        b["labels"],
        json!({"kube_tag": "v1.30", "n": "3", "flag": "True"})
    );
    assert_eq!(b["tls_disabled"], true);
    assert_eq!(b["apiserver_port"], 8443);
    assert_eq!(b["driver"], "k8s_fedora_coreos_v1");
    let shown = app.get("/v1/clustertemplates/full", &Who::Default).await;
    assert_eq!(shown.body, b, "what is stored is what was answered");
}

async fn create_refuses_bad_input_and_writes_nothing(backend: Backend) {
    let app = TestApp::new(backend).await;
    let with = |extra: Value| {
        let mut body = k8s("bad");
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"name": "x"}), 400, "coe. Value: 'None'. Mandatory field missing."),
        (json!({"name": "x", "coe": "kubernetes"}), 400, "image_id. Value: 'None'. Mandatory field missing."),
        (with(json!({"coe": "openshift"})), 400, "Value should be one of"),
        (with(json!({"coe": "dcos"})), 400, "Requested COE type dcos is not supported."),
        (with(json!({"bogus": 1})), 400, "Unknown attribute for argument cluster_template: bogus"),
        (with(json!({"project_id": "other"})), 400, "Cannot set read only field."),
        (with(json!({"network_driver": "docker"})), 400, "Network driver type docker is not supported, expecting a flannel/calico/cilium/unspecified network driver."),
        (with(json!({"network_driver": "cilium"})), 400, "Network driver type cilium is not allowed"),
        (with(json!({"volume_driver": "rexray"})), 400, "Volume driver type rexray is not supported, expecting a cinder/unspecified volume driver."),
        (with(json!({"server_type": "container"})), 400, "Value should be one of: vm, bm"),
        (with(json!({"docker_storage_driver": "devicemapper", "docker_volume_size": 2})), 400, "docker volume size 2 GB is not valid"),
        (with(json!({"apiserver_port": 80})), 400, "Value should be greater or equal to 1024"),
        (with(json!({"apiserver_port": "port"})), 400, "Wrong type"),
        (with(json!({"docker_volume_size": 0})), 400, "Value should be greater or equal to 1"),
        (with(json!({"docker_volume_size": 3_000_000_000u64})), 400, "Value should be lower or equal to 2147483647"),
        (with(json!({"labels": {"big": "x".repeat(70_000)}})), 400, "Labels may take at most 65535 bytes"),
        (with(json!({"dns_nameserver": "8.8.8.8,dns.example"})), 400, "Expected a single dns address or comma separated dns list"),
        (with(json!({"uuid": "not-a-uuid"})), 400, "Expected a uuid but received not-a-uuid."),
        (with(json!({"name": "n".repeat(256)})), 400, "maximum character requirement of 255"),
        (with(json!({"public": "perhaps"})), 400, "Unrecognized value 'perhaps'"),
        (with(json!({"labels": ["a"]})), 400, "Wrong type"),
        (with(json!({"cluster_distro": "windows"})), 400, "Cluster type (vm, windows, kubernetes) not supported."),
        (with(json!({"server_type": "bm"})), 400, "Cluster type (bm, ubuntu, kubernetes) not supported."),
        (with(json!({"driver": "k8s_magic"})), 400, "Cluster driver (k8s_magic) not supported."),
        (with(json!({"driver": "mesos_ubuntu_v1"})), 400, "not supported"),
    ];
    for (body, status, expected) in cases {
        let r = app
            .post("/v1/clustertemplates", &Who::Default, body.clone())
            .await;
        let detail = r.error(status);
        assert!(
            detail.contains(expected),
            "{body}: got {detail:?}, expected {expected:?}"
        );
        assert_eq!(r.body["errors"][0]["code"], "client");
    }
    assert_eq!(app.template_count().await, 0);
}

async fn create_resolves_drivers(backend: Backend) {
    let app = TestApp::new(backend).await;
    let b = app
        .create_template(
            &Who::Default,
            json!({"coe": "swarm-mode", "image_id": "i", "cluster_distro": "ubuntu"}),
        )
        .await;
    assert_eq!(b["driver"], "swarm_mode_ubuntu_v1");
    assert_eq!(b["network_driver"], "docker");
    let b = app
        .create_template(&Who::Default, json!({"coe": "mesos", "image_id": "i", "cluster_distro": "ubuntu", "volume_driver": "rexray"}))
        .await;
    assert_eq!(b["driver"], "mesos_ubuntu_v1");
    let b = app
        .create_template(
            &Who::Default,
            json!({"coe": "kubernetes", "image_id": "i", "driver": "k8s_fedora_coreos_v1"}),
        )
        .await;
    assert_eq!(b["driver"], "k8s_fedora_coreos_v1");
    let r = app
        .post(
            "/v1/clustertemplates",
            &Who::Default,
            json!({"coe": "swarm", "image_id": "i", "cluster_distro": "ubuntu"}),
        )
        .await;
    assert!(r
        .error(400)
        .contains("Cluster type (vm, ubuntu, swarm) not supported."));

    // No os_distro known (no image lookup, none given): the default driver.
    let b = app
        .create_template(&Who::Default, json!({"coe": "kubernetes", "image_id": "i"}))
        .await;
    assert_eq!(b["driver"], "k8s_fedora_coreos_v1");
    assert_eq!(b["cluster_distro"], Value::Null);
    let r = app
        .post(
            "/v1/clustertemplates",
            &Who::Default,
            json!({"coe": "swarm", "image_id": "i"}),
        )
        .await;
    assert!(r
        .error(400)
        .contains("Cluster type (vm, None, swarm) not supported."));

    // A disabled driver is not offered.
    let app = TestApp::with_config(backend, "[drivers]\ndisabled_drivers = k8s_ubuntu_v1\n").await;
    let r = app
        .post("/v1/clustertemplates", &Who::Default, k8s("t"))
        .await;
    r.error(400);
}

async fn values_the_database_cannot_hold(backend: Backend) {
    let app = TestApp::new(backend).await;
    // Upstream's MariaDB tables are utf8mb3: no 4-byte characters. Every
    // backend refuses them alike, with a 400, never a 500.
    let r = app
        .post(
            "/v1/clustertemplates",
            &Who::Default,
            k8s("rocket-\u{1F680}"),
        )
        .await;
    assert!(r.error(400).contains("cannot store"), "{}", r.raw);
    assert_eq!(app.template_count().await, 0);
}

async fn duplicate_uuid_conflicts(backend: Backend) {
    let app = TestApp::new(backend).await;
    let mut body = k8s("a");
    body["uuid"] = json!("4b2e4a3e-7e27-4b39-9c84-0c3d0c6f7d11");
    app.create_template(&Who::Default, body.clone()).await;
    let r = app.post("/v1/clustertemplates", &Who::Default, body).await;
    assert_eq!(
        r.error(409),
        "A ClusterTemplate with UUID 4b2e4a3e-7e27-4b39-9c84-0c3d0c6f7d11 already exists."
    );
    assert_eq!(app.template_count().await, 1);
}

async fn show_by_uuid_or_name(backend: Backend) {
    let app = TestApp::new(backend).await;
    let t = app.create_template(&Who::Default, k8s("one")).await;
    let uuid = t["uuid"].as_str().unwrap();
    for ident in [uuid.to_string(), uuid.to_uppercase(), "one".to_string()] {
        let r = app
            .get(&format!("/v1/clustertemplates/{ident}"), &Who::Default)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{ident}: {}", r.raw);
        assert_eq!(r.body, t);
    }
    let r = app.get("/v1/clustertemplates/missing", &Who::Default).await;
    assert_eq!(r.error(404), "ClusterTemplate missing could not be found.");
    let r = app
        .get(
            "/v1/clustertemplates/9b2e4a3e-7e27-4b39-9c84-0c3d0c6f7d11",
            &Who::Default,
        )
        .await;
    r.error(404);
    app.create_template(&Who::Default, k8s("one")).await;
    let r = app.get("/v1/clustertemplates/one", &Who::Default).await;
    assert_eq!(
        r.error(409),
        "Multiple ClusterTemplates exist with same name. Please use the ClusterTemplate uuid instead."
    );
    let r = app.delete("/v1/clustertemplates/one", &Who::Default).await;
    r.error(409);
    assert_eq!(app.template_count().await, 2);
}

async fn list_pages_and_sorts(backend: Backend) {
    let app = TestApp::new(backend).await;
    let mut uuids = Vec::new();
    for name in ["b", "c", "a"] {
        uuids.push(
            app.create_template(&member("p1"), k8s(name)).await["uuid"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let r = app.get("/v1/clustertemplates?limit=2", &member("p1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    let items = r.body["clustertemplates"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["uuid"], uuids[0]);
    let next = r.body["next"].as_str().unwrap();
    assert_eq!(
        next,
        format!("http://magnum.test:9511/v1/clustertemplates?sort_key=id&sort_dir=asc&limit=2&marker={}", uuids[1])
    );
    let path = next.trim_start_matches("http://magnum.test:9511");
    let r = app.get(path, &member("p1")).await;
    let items = r.body["clustertemplates"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["uuid"], uuids[2]);
    assert!(r.body.get("next").is_none());

    let names = |r: &Resp| -> Vec<String> {
        r.body["clustertemplates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    let r = app
        .get(
            "/v1/clustertemplates?sort_key=name&sort_dir=desc",
            &member("p1"),
        )
        .await;
    assert_eq!(names(&r), ["c", "b", "a"]);
    let r = app
        .get(
            "/v1/clustertemplates/detail?sort_key=name&limit=1",
            &member("p1"),
        )
        .await;
    assert_eq!(names(&r), ["a"]);
    let next = r.body["next"].as_str().unwrap();
    assert!(
        next.contains("/v1/clustertemplates/detail?sort_key=name&sort_dir=asc&limit=1&marker="),
        "{next}"
    );
    let r = app
        .get(
            next.trim_start_matches("http://magnum.test:9511"),
            &member("p1"),
        )
        .await;
    assert_eq!(names(&r), ["b"]);

    // Sorting on a column with NULLs pages through every row exactly once.
    app.create_template(&member("p1"), json!({"coe": "kubernetes", "image_id": "i", "cluster_distro": "ubuntu", "name": "f", "flavor_id": "m1"})).await;
    let mut seen = Vec::new();
    let mut path = "/v1/clustertemplates?sort_key=flavor_id&limit=1".to_string();
    loop {
        let r = app.get(&path, &member("p1")).await;
        seen.extend(names(&r));
        match r.body["next"].as_str() {
            Some(n) => path = n.trim_start_matches("http://magnum.test:9511").to_string(),
            None => break,
        }
        assert!(seen.len() < 10, "paging does not end: {seen:?}");
    }
    assert_eq!(seen, ["b", "c", "a", "f"]);

    // [api] max_limit caps pages.
    let app = TestApp::with_config(backend, "[api]\nmax_limit = 1\n").await;
    app.create_template(&Who::Default, k8s("x")).await;
    app.create_template(&Who::Default, k8s("y")).await;
    let r = app
        .get("/v1/clustertemplates?limit=50", &Who::Default)
        .await;
    assert_eq!(r.body["clustertemplates"].as_array().unwrap().len(), 1);
    assert!(r.body["next"].as_str().unwrap().contains("limit=1"));
}

async fn list_refuses_bad_paging(backend: Backend) {
    let app = TestApp::new(backend).await;
    let cases = [
        ("limit=0", 400, "Limit must be positive"),
        ("limit=-3", 400, "Limit must be positive"),
        ("limit=many", 400, "Invalid input for field/attribute limit"),
        (
            "sort_dir=sideways",
            400,
            "Invalid sort direction: sideways. Acceptable values are 'asc' or 'desc'",
        ),
        (
            "sort_key=password",
            400,
            "The sort_key value \"password\" is an invalid field for sorting",
        ),
        ("marker=xyz", 400, "Expected a uuid but received xyz."),
        (
            "marker=9b2e4a3e-7e27-4b39-9c84-0c3d0c6f7d11",
            404,
            "ClusterTemplate 9b2e4a3e-7e27-4b39-9c84-0c3d0c6f7d11 could not be found.",
        ),
        ("frobnicate=1", 400, "Unknown argument"),
    ];
    for (q, status, expected) in cases {
        for base in ["/v1/clustertemplates", "/v1/clustertemplates/detail"] {
            let r = app.get(&format!("{base}?{q}"), &Who::Default).await;
            let detail = r.error(status);
            assert!(detail.contains(expected), "{q}: {detail}");
        }
    }
}

async fn visibility_of_public_and_hidden(backend: Backend) {
    let app = TestApp::new(backend).await;
    let t = app.create_template(&member("p1"), k8s("mine")).await;
    let path = format!("/v1/clustertemplates/{}", t["uuid"].as_str().unwrap());
    let count = |r: &Resp| r.body["clustertemplates"].as_array().unwrap().len();

    assert_eq!(
        count(&app.get("/v1/clustertemplates", &member("p2")).await),
        0
    );
    app.get(&path, &member("p2")).await.error(404);
    app.get("/v1/clustertemplates/mine", &member("p2"))
        .await
        .error(404);
    assert_eq!(
        count(&app.get("/v1/clustertemplates", &member("p1")).await),
        1
    );

    // Published by an admin: everyone sees it, only its project may change it.
    let r = app
        .patch(
            &path,
            &admin("ops"),
            json!([{"op": "replace", "path": "/public", "value": "True"}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(r.body["public"], true);
    assert_eq!(
        count(&app.get("/v1/clustertemplates", &member("p2")).await),
        1
    );
    assert_eq!(app.get(&path, &member("p2")).await.status, StatusCode::OK);
    let r = app
        .patch(
            &path,
            &member("p2"),
            json!([{"op": "replace", "path": "/name", "value": "stolen"}]),
        )
        .await;
    r.error(403);
    app.delete(&path, &member("p2")).await.error(403);

    // Hidden as well: gone for other projects, still there for its own and for admins.
    let r = app
        .patch(
            &path,
            &admin("ops"),
            json!([{"op": "replace", "path": "/hidden", "value": true}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(
        count(&app.get("/v1/clustertemplates", &member("p2")).await),
        0
    );
    app.get(&path, &member("p2")).await.error(404);
    assert_eq!(app.get(&path, &member("p1")).await.status, StatusCode::OK);
    assert_eq!(
        count(&app.get("/v1/clustertemplates", &admin("ops")).await),
        1
    );
    assert_eq!(app.get(&path, &admin("ops")).await.status, StatusCode::OK);
}

async fn publishing_needs_admin(backend: Backend) {
    let app = TestApp::new(backend).await;
    let mut body = k8s("pub");
    body["public"] = json!(true);
    let r = app
        .post("/v1/clustertemplates", &member("p1"), body.clone())
        .await;
    assert_eq!(
        r.error(403),
        "Not authorized to set public or hidden flag for cluster template."
    );
    body["public"] = json!(false);
    body["hidden"] = json!(true);
    app.post("/v1/clustertemplates", &member("p1"), body)
        .await
        .error(403);
    assert_eq!(app.template_count().await, 0);

    let t = app.create_template(&member("p1"), k8s("pub")).await;
    let path = format!("/v1/clustertemplates/{}", t["uuid"].as_str().unwrap());
    for field in ["/public", "/hidden"] {
        let r = app
            .patch(
                &path,
                &member("p1"),
                json!([{"op": "replace", "path": field, "value": "true"}]),
            )
            .await;
        r.error(403);
    }
    let r = app.get(&path, &member("p1")).await;
    assert_eq!(r.body["public"], false);
    assert_eq!(r.body["hidden"], false);
    let mut body = k8s("adminpub");
    body["public"] = json!(true);
    let b = app.create_template(&admin("ops"), body).await;
    assert_eq!(b["public"], true);
}

async fn policy_guards_every_operation(backend: Backend) {
    let app = TestApp::new(backend).await;
    let r = app
        .post("/v1/clustertemplates", &reader("p1"), k8s("r"))
        .await;
    assert_eq!(
        r.error(403),
        "Policy doesn't allow clustertemplate:create to be performed."
    );
    let t = app.create_template(&member("p1"), k8s("t")).await;
    let path = format!("/v1/clustertemplates/{}", t["uuid"].as_str().unwrap());
    assert_eq!(app.get(&path, &reader("p1")).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/v1/clustertemplates", &reader("p1")).await.status,
        StatusCode::OK
    );
    app.patch(
        &path,
        &reader("p1"),
        json!([{"op": "replace", "path": "/name", "value": "n"}]),
    )
    .await
    .error(403);
    app.delete(&path, &reader("p1")).await.error(403);
    let nobody = Who::User {
        user: "u".into(),
        project: "p1".into(),
        roles: "".into(),
    };
    app.get("/v1/clustertemplates", &nobody).await.error(403);
    app.get(&path, &nobody).await.error(403);
    assert_eq!(app.get(&path, &member("p1")).await.body["name"], "t");
}

async fn patch_follows_upstream_rules(backend: Backend) {
    let app = TestApp::new(backend).await;
    let t = app.create_template(&member("p1"), k8s("t")).await;
    let path = format!("/v1/clustertemplates/{}", t["uuid"].as_str().unwrap());
    let ok = |r: Resp| {
        assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
        r.body
    };
    let b = ok(app
        .patch(
            &path,
            &member("p1"),
            json!([{"op": "replace", "path": "/name", "value": "renamed"}]),
        )
        .await);
    assert_eq!(b["name"], "renamed");
    assert!(b["updated_at"].as_str().unwrap().ends_with("+00:00"));
    let b = ok(app
        .patch(
            &path,
            &member("p1"),
            json!([{"op": "add", "path": "/flavor_id", "value": "m1.small"}]),
        )
        .await);
    assert_eq!(b["flavor_id"], "m1.small");
    let b = ok(app
        .patch(
            &path,
            &member("p1"),
            json!([{"op": "replace", "path": "/labels", "value": "{'kube_tag': 'v1.31', 'x': 1}"}]),
        )
        .await);
    assert_eq!(b["labels"], json!({"kube_tag": "v1.31", "x": "1"}));
    let b = ok(app
        .patch(
            &path,
            &member("p1"),
            json!([{"op": "add", "path": "/labels/extra", "value": "yes"}]),
        )
        .await);
    assert_eq!(b["labels"]["extra"], "yes");
    let b = ok(app
        .patch(
            &path,
            &member("p1"),
            json!([{"op": "remove", "path": "/labels/x"}]),
        )
        .await);
    assert!(b["labels"].get("x").is_none());
    let b = ok(app
        .patch(
            &path,
            &member("p1"),
            json!([{"op": "remove", "path": "/flavor_id"}]),
        )
        .await);
    assert_eq!(b["flavor_id"], Value::Null);
    let b = ok(app
        .patch(
            &path,
            &member("p1"),
            json!([
                {"op": "replace", "path": "/docker_volume_size", "value": "10"},
                {"op": "replace", "path": "/network_driver", "value": "calico"},
                {"op": "replace", "path": "/tls_disabled", "value": "True"}
            ]),
        )
        .await);
    assert_eq!(b["docker_volume_size"], 10);
    assert_eq!(b["network_driver"], "calico");
    assert_eq!(b["tls_disabled"], true);
    let again = app.get(&path, &member("p1")).await;
    assert_eq!(again.body, b);
}

async fn patch_refusals_change_nothing(backend: Backend) {
    let app = TestApp::new(backend).await;
    let t = app.create_template(&member("p1"), k8s("t")).await;
    let path = format!("/v1/clustertemplates/{}", t["uuid"].as_str().unwrap());
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!([{"op": "replace", "path": "/uuid", "value": "x"}]),
            400,
            "'/uuid' is an internal attribute and can not be updated",
        ),
        (
            json!([{"op": "replace", "path": "/project_id", "value": "x"}]),
            400,
            "internal attribute",
        ),
        (
            json!([{"op": "remove", "path": "/coe"}]),
            400,
            "'/coe' is a mandatory attribute and can not be removed",
        ),
        (
            json!([{"op": "remove", "path": "/image_id"}]),
            400,
            "mandatory attribute",
        ),
        (
            json!([{"op": "remove", "path": "/public"}]),
            400,
            "mandatory attribute",
        ),
        (
            json!([{"op": "replace", "path": "/name"}]),
            400,
            "'add' and 'replace' operations needs value",
        ),
        (
            json!([{"op": "copy", "path": "/name", "value": "x"}]),
            400,
            "Value should be one of: add, replace, remove",
        ),
        (
            json!([{"op": "replace", "path": "name", "value": "x"}]),
            400,
            "Value should match the pattern",
        ),
        (
            json!([{"op": "add", "path": "/bogus", "value": "x"}]),
            400,
            "Adding a new attribute /bogus to the root of the resource is not allowed.",
        ),
        (
            json!([{"op": "add", "path": "/name", "value": "x"}]),
            400,
            "The attribute /name has existed, please use 'replace' operation instead.",
        ),
        (
            json!([{"op": "replace", "path": "/nothing", "value": "x"}]),
            400,
            "Couldn't apply patch",
        ),
        (
            json!([{"op": "replace", "path": "/labels", "value": "{broken"}]),
            400,
            "Couldn't apply patch",
        ),
        (
            json!([{"op": "replace", "path": "/docker_volume_size", "value": "big"}]),
            400,
            "Invalid input for field/attribute docker_volume_size",
        ),
        (
            json!([{"op": "replace", "path": "/network_driver", "value": "docker"}]),
            400,
            "Network driver type docker is not supported",
        ),
        (
            json!([{"op": "replace", "path": "/volume_driver", "value": "rexray"}]),
            400,
            "Volume driver type rexray is not supported",
        ),
        (
            json!([{"op": "replace", "path": "/coe", "value": "dcos"}]),
            400,
            "Requested COE type dcos is not supported.",
        ),
        (
            json!([{"op": "replace", "path": "/name", "value": "ok"}, {"op": "replace", "path": "/apiserver_port", "value": 1}]),
            400,
            "greater or equal to 1024",
        ),
        (
            json!({"op": "replace", "path": "/name", "value": "x"}),
            400,
            "list of operations",
        ),
    ];
    for (body, status, expected) in cases {
        let r = app.patch(&path, &member("p1"), body.clone()).await;
        let detail = r.error(status);
        assert!(detail.contains(expected), "{body}: {detail}");
    }
    let r = app
        .patch(
            "/v1/clustertemplates/missing",
            &member("p1"),
            json!([{"op": "replace", "path": "/name", "value": "x"}]),
        )
        .await;
    r.error(404);
    let after = app.get(&path, &member("p1")).await;
    assert_eq!(after.body, t, "refused patches change nothing");
}

async fn delete_and_templates_in_use(backend: Backend) {
    let app = TestApp::new(backend).await;
    let t = app.create_template(&member("p1"), k8s("used")).await;
    let uuid = t["uuid"].as_str().unwrap();
    let path = format!("/v1/clustertemplates/{uuid}");
    magnum_db::testing::insert_cluster_row(
        &app.db,
        "5b2e4a3e-7e27-4b39-9c84-0c3d0c6f7d11",
        uuid,
        "p1",
    )
    .await;
    let r = app.delete(&path, &member("p1")).await;
    assert_eq!(
        r.error(400),
        format!("ClusterTemplate {uuid} is referenced by one or multiple clusters.")
    );
    let r = app
        .patch(
            &path,
            &member("p1"),
            json!([{"op": "replace", "path": "/image_id", "value": "other"}]),
        )
        .await;
    assert!(r
        .error(400)
        .contains("is referenced by one or multiple clusters."));
    let r = app
        .patch(
            &path,
            &member("p1"),
            json!([{"op": "replace", "path": "/name", "value": "still-used"}]),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "renaming a template in use is allowed: {}",
        r.raw
    );
    let r = app
        .patch(
            &path,
            &admin("ops"),
            json!([{"op": "replace", "path": "/public", "value": true}]),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "publishing a template in use is allowed: {}",
        r.raw
    );
    assert_eq!(
        app.get(&path, &member("p1")).await.body["image_id"],
        "ubuntu-22.04"
    );

    let t = app.create_template(&member("p1"), k8s("free")).await;
    let path = format!("/v1/clustertemplates/{}", t["uuid"].as_str().unwrap());
    let r = app.delete(&path, &member("p1")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.raw);
    assert!(r.raw.is_empty());
    app.get(&path, &member("p1")).await.error(404);
    app.delete(&path, &member("p1")).await.error(404);
    let t = app.create_template(&member("p1"), k8s("byname")).await;
    assert_eq!(
        app.delete("/v1/clustertemplates/byname", &member("p1"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    app.get(
        &format!("/v1/clustertemplates/{}", t["uuid"].as_str().unwrap()),
        &member("p1"),
    )
    .await
    .error(404);
}

async fn operator_policy_file_applies(backend: Backend) {
    let dir = std::env::temp_dir().join(format!("magnum-policy-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("policy.yaml");
    std::fs::write(
        &file,
        "\"clustertemplate:create\": \"role:admin\"\n\"clustertemplate:get_all\": \"@\"\n",
    )
    .unwrap();
    let policy = magnum_core::policy::Enforcer::load(Some(&file), &[]).unwrap();
    let conf = magnum_core::config::Config::defaults();
    let app = TestApp::with(backend, conf, policy).await;
    app.post("/v1/clustertemplates", &member("p1"), k8s("t"))
        .await
        .error(403);
    app.create_template(&admin("p1"), k8s("t")).await;
    let nobody = Who::User {
        user: "u".into(),
        project: "p9".into(),
        roles: "".into(),
    };
    assert_eq!(
        app.get("/v1/clustertemplates", &nobody).await.status,
        StatusCode::OK
    );
    std::fs::remove_dir_all(dir).ok();
}

/// A cloud where everything exists but the keypairs named `missing…`;
/// it counts the keypair lookups.
#[derive(Default)]
struct KeypairCloud {
    keypair_lookups: std::sync::atomic::AtomicUsize,
}

impl magnum_core::cloud::CloudLookup for KeypairCloud {
    fn configured(&self) -> bool {
        true
    }
    fn image<'a>(
        &'a self,
        _: &'a magnum_core::RequestContext,
        ident: &'a str,
    ) -> magnum_core::cloud::BoxFuture<
        'a,
        Result<magnum_core::cloud::Lookup<magnum_core::cloud::Image>, magnum_core::MagnumError>,
    > {
        Box::pin(async move {
            Ok(magnum_core::cloud::Lookup::Found(
                magnum_core::cloud::Image {
                    id: ident.into(),
                    os_distro: Some("fedora-coreos".into()),
                    ..Default::default()
                },
            ))
        })
    }
    fn flavor<'a>(
        &'a self,
        _: &'a magnum_core::RequestContext,
        ident: &'a str,
    ) -> magnum_core::cloud::BoxFuture<
        'a,
        Result<magnum_core::cloud::Lookup<magnum_core::cloud::Flavor>, magnum_core::MagnumError>,
    > {
        Box::pin(async move {
            Ok(magnum_core::cloud::Lookup::Found(
                magnum_core::cloud::Flavor {
                    id: ident.into(),
                    name: ident.into(),
                    disk_gb: 10,
                },
            ))
        })
    }
    fn keypair<'a>(
        &'a self,
        _: &'a magnum_core::RequestContext,
        name: &'a str,
    ) -> magnum_core::cloud::BoxFuture<
        'a,
        Result<magnum_core::cloud::Lookup<()>, magnum_core::MagnumError>,
    > {
        self.keypair_lookups
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            if name.starts_with("missing") {
                Err(magnum_core::MagnumError::KeyPairNotFound(name.into()))
            } else {
                Ok(magnum_core::cloud::Lookup::Found(()))
            }
        })
    }
    fn network<'a>(
        &'a self,
        _: &'a magnum_core::RequestContext,
        ident: &'a str,
        _: bool,
    ) -> magnum_core::cloud::BoxFuture<
        'a,
        Result<magnum_core::cloud::Lookup<String>, magnum_core::MagnumError>,
    > {
        Box::pin(async move { Ok(magnum_core::cloud::Lookup::Found(ident.into())) })
    }
    fn subnet<'a>(
        &'a self,
        _: &'a magnum_core::RequestContext,
        ident: &'a str,
    ) -> magnum_core::cloud::BoxFuture<
        'a,
        Result<magnum_core::cloud::Lookup<String>, magnum_core::MagnumError>,
    > {
        Box::pin(async move { Ok(magnum_core::cloud::Lookup::Found(ident.into())) })
    }
}

/// Upstream's template validators have no keypair check (a template may
/// name a keypair each user makes later); a cluster's create looks its
/// keypair up, its own or the template's.
async fn keypairs_are_checked_by_clusters_not_templates(backend: Backend) {
    let cloud = std::sync::Arc::new(KeypairCloud::default());
    let app = TestApp::with_cloud(backend, cloud.clone()).await;
    let mut body = fake_k8s("t");
    body["keypair_id"] = json!("missing-kp");
    let t = app.create_template(&Who::Default, body).await;
    assert_eq!(t["keypair_id"], "missing-kp");
    let r = app
        .patch(
            "/v1/clustertemplates/t",
            &Who::Default,
            json!([{"op": "replace", "path": "/keypair_id", "value": "missing-too"}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(
        cloud
            .keypair_lookups
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "templates never look keypairs up"
    );

    // The cluster inherits the template's keypair: looked up, not found.
    let r = app
        .post(
            "/v1/clusters",
            &Who::Default,
            json!({"name": "c", "cluster_template_id": "t"}),
        )
        .await;
    assert_eq!(r.error(404), "Unable to find keypair missing-too.");
    // Its own keypair, which exists, is fine.
    let r = app
        .post(
            "/v1/clusters",
            &Who::Default,
            json!({"name": "c", "cluster_template_id": "t", "keypair": "kp"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
}

/// A patch that changes what the template builds is checked against its
/// driver as a create is: kept when it still builds it, refused with
/// upstream's ClusterTypeNotSupported when it does not, chosen anew when
/// the patch removes it.
async fn patch_reselects_the_driver(backend: Backend) {
    let app = TestApp::new(backend).await;
    let t = app.create_template(&Who::Default, k8s("t")).await;
    assert_eq!(t["driver"], "k8s_ubuntu_v1");
    let patch = |ops: Value| app.patch("/v1/clustertemplates/t", &Who::Default, ops);

    let r = patch(json!([{"op": "replace", "path": "/coe", "value": "swarm-mode"}])).await;
    assert_eq!(
        r.error(400),
        "Cluster type (vm, ubuntu, swarm-mode) not supported."
    );
    let r = patch(json!([{"op": "replace", "path": "/server_type", "value": "bm"}])).await;
    assert_eq!(
        r.error(400),
        "Cluster type (bm, ubuntu, kubernetes) not supported."
    );
    let r = app.get("/v1/clustertemplates/t", &Who::Default).await;
    assert_eq!(r.body["coe"], "kubernetes", "nothing was written");
    assert_eq!(r.body["server_type"], "vm");

    // Naming a driver that cannot build it is refused as at create.
    let r = patch(json!([{"op": "replace", "path": "/driver", "value": "mesos_ubuntu_v1"}])).await;
    assert_eq!(
        r.error(400),
        "Cluster type (vm, ubuntu, kubernetes) not supported."
    );
    let r = patch(json!([{"op": "replace", "path": "/driver", "value": "nope"}])).await;
    assert_eq!(r.error(400), "Cluster driver (nope) not supported.");

    // A new COE with its driver removed: the one create would choose.
    let r = patch(json!([
        {"op": "replace", "path": "/coe", "value": "swarm-mode"},
        {"op": "replace", "path": "/network_driver", "value": "docker"},
        {"op": "remove", "path": "/driver"}
    ]))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(r.body["coe"], "swarm-mode");
    assert_eq!(r.body["driver"], "swarm_mode_ubuntu_v1");
    // A patch that keeps what it builds keeps its driver.
    let r = patch(json!([{"op": "replace", "path": "/name", "value": "t2"}])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(r.body["driver"], "swarm_mode_ubuntu_v1");
}
