//! Against a real Keystone (PyPI `keystone`, started by
//! `scripts/keystone.sh`): tokens validated, 401 for missing, bad, revoked
//! and expired tokens, tenants kept apart, readers kept read-only, admins
//! seeing across projects, 503 when Keystone is down, and the unchanged
//! `openstack coe …` client authenticating by password and finding our API
//! in Keystone's catalog.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::cloud::*;
use support::*;

#[test]
fn keystone_guards_every_tenant() {
    keystone(&["start"]);
    let dir = tempdir("keystone");
    let _cloud = cloud_double(&dir);
    glance_with_image(&token("a-member", "project-a"));
    barbican_start();
    forget_trusts_of(&token("a-member", "project-a"));
    let conf = conf_with(&dir, &format!("{KEYSTONE}/v3"), "barbican");
    let server = all_in_one(&dir, &conf);
    let url = server.url.clone();
    keystone(&["endpoint", &format!("{url}/v1")]);

    // Public routes need no token; the rest do.
    assert_eq!(call(&url, "GET", "/", None, None).0, 200);
    assert_eq!(call(&url, "GET", "/v1", None, None).0, 200);
    for bad in [None, Some("not-a-token")] {
        let (s, h, body) = call(&url, "GET", "/v1/clusters", bad, None);
        assert_eq!(s, 401, "{body}");
        assert_eq!(body["error"]["code"], 401);
        let www = h.iter().find(|(k, _)| k == "www-authenticate").unwrap();
        assert_eq!(www.1, format!("Keystone uri=\"{KEYSTONE}/v3\""));
    }

    // Project A builds; its reader reads; project B sees nothing of it.
    let a_member = token("a-member", "project-a");
    let (s, _, t) = call(
        &url,
        "POST",
        "/v1/clustertemplates",
        Some(&a_member),
        Some(
            json!({"name": "private-a", "coe": "kubernetes", "image_id": "fedora-coreos-40",
                    "driver": "fake", "labels": {"fake_seconds": "0"}, "flavor_id": "m1.small",
                    "master_flavor_id": "m1.medium", "keypair_id": "kp",
                    "external_network_id": "public", "fixed_network": "private",
                    "fixed_subnet": "private-subnet"}),
        ),
    );
    assert_eq!(s, 201, "{t}");
    assert_eq!(
        t["cluster_distro"], "fedora-coreos",
        "the image's os_distro"
    );

    // Lookups in the catalog's Glance, Nova and Neutron refuse what is not there.
    for (field, value, code, text) in [
        ("image_id", "nope", 400, "Image nope could not be found."),
        (
            "flavor_id",
            "m9.huge",
            400,
            "Unable to find flavor m9.huge.",
        ),
        (
            "external_network_id",
            "private",
            400,
            "Unable to find external network private.",
        ),
        (
            "fixed_subnet",
            "nowhere",
            400,
            "Unable to find fixed subnet nowhere.",
        ),
    ] {
        let mut body = json!({"name": "bad", "coe": "kubernetes", "image_id": "fedora-coreos-40",
                              "driver": "fake", "external_network_id": "public"});
        body[field] = json!(value);
        let (s, _, e) = call(
            &url,
            "POST",
            "/v1/clustertemplates",
            Some(&a_member),
            Some(body),
        );
        assert_eq!(s, code, "{field}: {e}");
        assert_eq!(e["errors"][0]["detail"], text, "{field}");
    }
    // Templates do not look their keypair up (upstream's template
    // validators have no keypair check); a cluster built from one does.
    let (s, _, t) = call(
        &url,
        "POST",
        "/v1/clustertemplates",
        Some(&a_member),
        Some(
            json!({"name": "other-kp", "coe": "kubernetes", "image_id": "fedora-coreos-40",
                    "driver": "fake", "external_network_id": "public",
                    "keypair_id": "other-kp"}),
        ),
    );
    assert_eq!(s, 201, "{t}");
    let (s, _, e) = call(
        &url,
        "POST",
        "/v1/clusters",
        Some(&a_member),
        Some(json!({"name": "kp", "cluster_template_id": "other-kp"})),
    );
    assert_eq!(s, 404, "{e}");
    assert_eq!(e["errors"][0]["detail"], "Unable to find keypair other-kp.");
    let (s, _, _) = call(
        &url,
        "DELETE",
        "/v1/clustertemplates/other-kp",
        Some(&a_member),
        None,
    );
    assert_eq!(s, 204);
    let magnum = token_of("magnum", "magnum-secret", "service");
    let containers_before = barbican_containers(&magnum);
    let (s, _, c) = call(
        &url,
        "POST",
        "/v1/clusters",
        Some(&a_member),
        Some(json!({"name": "ca", "cluster_template_id": "private-a"})),
    );
    assert_eq!(s, 202, "{c}");
    let cluster = c["uuid"].as_str().unwrap().to_string();
    let (_, _, shown) = call(
        &url,
        "GET",
        &format!("/v1/clusters/{cluster}"),
        Some(&a_member),
        None,
    );
    assert_eq!(
        shown["project_id"].as_str().map(str::len),
        Some(32),
        "{shown}"
    );
    assert_eq!(shown["user_id"].as_str().map(str::len), Some(32));

    // Its trustee and the owner's trust to it exist in Keystone.
    let project_a = shown["project_id"].as_str().unwrap().to_string();
    let owner = shown["user_id"].as_str().unwrap().to_string();
    let trustee_name = format!("{cluster}_{project_a}");
    let trusts_of_owner = |tok: &str| {
        kget(tok, &format!("/v3/OS-TRUST/trusts?trustor_user_id={owner}"))["trusts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let trusts = trusts_of_owner(&a_member);
    assert_eq!(trusts.len(), 1, "{trusts:?}");
    assert_eq!(trusts[0]["impersonation"], true);
    let trustee = trusts[0]["trustee_user_id"].as_str().unwrap().to_string();
    let admin = admin_token();
    let user = kget(&admin, &format!("/v3/users/{trustee}"));
    assert_eq!(user["user"]["name"], trustee_name.as_str());

    let a_reader = token("a-reader", "project-a");
    assert_eq!(
        call(
            &url,
            "GET",
            &format!("/v1/clusters/{cluster}"),
            Some(&a_reader),
            None
        )
        .0,
        200
    );
    let (s, _, body) = call(
        &url,
        "POST",
        "/v1/clusters",
        Some(&a_reader),
        Some(json!({"cluster_template_id": "private-a"})),
    );
    assert_eq!(s, 403, "{body}");
    assert_eq!(
        call(
            &url,
            "DELETE",
            &format!("/v1/clusters/{cluster}"),
            Some(&a_reader),
            None
        )
        .0,
        403
    );

    let b_member = token("b-member", "project-b");
    let (_, _, list) = call(&url, "GET", "/v1/clusters", Some(&b_member), None);
    assert_eq!(list["clusters"], json!([]), "{list}");
    let (_, _, list) = call(&url, "GET", "/v1/clustertemplates", Some(&b_member), None);
    assert_eq!(list["clustertemplates"], json!([]), "{list}");
    // Glance answers B with B's view: A's private image does not exist.
    let (s, _, e) = call(
        &url,
        "POST",
        "/v1/clustertemplates",
        Some(&b_member),
        Some(
            json!({"name": "b", "coe": "kubernetes", "image_id": "fedora-coreos-40",
                    "driver": "fake", "external_network_id": "public"}),
        ),
    );
    assert_eq!(s, 400, "{e}");
    assert_eq!(
        e["errors"][0]["detail"],
        "Image fedora-coreos-40 could not be found."
    );
    for (method, path) in [
        ("GET", format!("/v1/clusters/{cluster}")),
        ("DELETE", format!("/v1/clusters/{cluster}")),
        ("GET", format!("/v1/clusters/{cluster}/nodegroups")),
        ("GET", "/v1/clustertemplates/private-a".to_string()),
        ("DELETE", "/v1/clustertemplates/private-a".to_string()),
    ] {
        let (s, _, body) = call(&url, method, &path, Some(&b_member), None);
        assert_eq!(s, 404, "{method} {path}: {body}");
    }
    let (s, _, _) = call(
        &url,
        "POST",
        "/v1/clusters",
        Some(&b_member),
        Some(json!({"cluster_template_id": "private-a"})),
    );
    assert_eq!(s, 404, "a private template of another project");

    // Nor can B add node groups to A's cluster, or count A's clusters.
    let (s, _, body) = call(
        &url,
        "POST",
        &format!("/v1/clusters/{cluster}/nodegroups"),
        Some(&b_member),
        Some(json!({"name": "intruder", "node_count": 1})),
    );
    assert_eq!(s, 404, "{body}");
    let (s, _, body) = call(
        &url,
        "GET",
        &format!("/v1/stats?project_id={project_a}"),
        Some(&b_member),
        None,
    );
    assert_eq!(s, 403, "{body}");
    let (s, _, stats) = call(&url, "GET", "/v1/stats", Some(&a_reader), None);
    assert_eq!(s, 200, "{stats}");
    assert_eq!(stats["clusters"], 1);

    // A system-scoped admin token counts as admin too.
    let system_admin = {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "password": "admin-secret", "domain": {"id": "default"}}}},
            "scope": {"system": {"all": true}},
        }});
        let (s, h, b) = http_with(
            KEYSTONE,
            "POST",
            "/v3/auth/tokens?nocatalog",
            &[],
            Some(&body.to_string()),
        );
        assert_eq!(s, 201, "{b}");
        h.into_iter()
            .find(|(k, _)| k == "x-subject-token")
            .unwrap()
            .1
    };
    let (s, _, stats) = call(&url, "GET", "/v1/stats", Some(&system_admin), None);
    assert_eq!(s, 200, "{stats}");
    assert_eq!(stats["clusters"], 1, "all projects: {stats}");

    // An admin sees every project's clusters.
    let b_admin = token("b-admin", "project-b");
    let (_, _, list) = call(&url, "GET", "/v1/clusters", Some(&b_admin), None);
    let uuids: Vec<&str> = list["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["uuid"].as_str())
        .collect();
    assert_eq!(uuids, [cluster.as_str()]);

    // The member's cluster is built and deleted by its owner.
    let a_member = token("a-member", "project-a");
    let magnum = token_of("magnum", "magnum-secret", "service");
    wait_for_token(&url, &cluster, &a_member, "CREATE_COMPLETE");

    // Its certificates live in Barbican (cert_manager_type barbican), one
    // container each, owned by Magnum's service user: its CA, etcd CA,
    // front-proxy CA and Magnum's client certificate.
    let made: Vec<String> = barbican_containers(&magnum)
        .into_iter()
        .filter(|c| !containers_before.contains(c))
        .collect();
    assert_eq!(made.len(), 4, "{made:?}");
    let (s, _, ca) = call(
        &url,
        "GET",
        &format!("/v1/certificates/{cluster}"),
        Some(&a_member),
        None,
    );
    assert_eq!(s, 200, "{ca}");
    let mut found_ca = false;
    for c in &made {
        let body = barbican_get(&magnum, c);
        assert_eq!(body["type"], "certificate");
        let names: std::collections::BTreeSet<&str> = body["secret_refs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["certificate", "private_key", "private_key_passphrase"].into()
        );
        let cert_ref = body["secret_refs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "certificate")
            .unwrap()["secret_ref"]
            .as_str()
            .unwrap()
            .to_string();
        let payload = barbican_payload(&magnum, &cert_ref);
        found_ca |= payload.trim() == ca["pem"].as_str().unwrap().trim();
        // The cluster's owner cannot read Magnum's secrets.
        let (s, _, _) = http_with(c, "GET", "", &[("X-Auth-Token", &a_member)], None);
        assert!(matches!(s, 403 | 404), "owner read {c}: {s}");
    }
    assert!(found_ca, "the CA the API serves is not in Barbican");
    assert_eq!(
        call(
            &url,
            "DELETE",
            &format!("/v1/clusters/{cluster}"),
            Some(&a_member),
            None
        )
        .0,
        204
    );
    // Once it is gone, so are its trust and trustee.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (s, _, _) = http_with(
            KEYSTONE,
            "GET",
            &format!("/v3/users/{trustee}"),
            &[("X-Auth-Token", &admin)],
            None,
        );
        if s == 404 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the trustee outlived its cluster"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(trusts_of_owner(&a_member).is_empty());
    // And its certificates left Barbican.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left: Vec<String> =
            barbican_containers(&token_of("magnum", "magnum-secret", "service"))
                .into_iter()
                .filter(|c| made.contains(c))
                .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "certificates outlived their cluster: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // A revoked token is refused.
    let doomed = token("a-member", "project-a");
    let (s, _, _) = http_with(
        KEYSTONE,
        "DELETE",
        "/v3/auth/tokens",
        &[("X-Auth-Token", &admin), ("X-Subject-Token", &doomed)],
        None,
    );
    assert_eq!(s, 204);
    assert_eq!(
        call(&url, "GET", "/v1/clusters", Some(&doomed), None).0,
        401
    );

    // The real client, by password, finds us in the catalog.
    let osc = openstack_as;
    let out = osc(
        "a-member",
        "project-a",
        &["coe", "cluster", "template", "list", "-f", "json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("private-a"),
        "{}",
        text(&out)
    );
    let out = osc(
        "b-member",
        "project-b",
        &["coe", "cluster", "template", "show", "private-a"],
    );
    assert!(!out.status.success());
    let out = osc(
        "a-reader",
        "project-a",
        &["coe", "cluster", "template", "delete", "private-a"],
    );
    assert!(
        text(&out).contains("403")
            || text(&out).contains("not allowed")
            || text(&out).contains("Policy doesn't allow"),
        "{}",
        text(&out)
    );

    // An expired token is refused, also once it was accepted (and cached).
    let (old, expires) = short_lived_token("a-member", "project-a", Duration::from_secs(10));
    assert_eq!(call(&url, "GET", "/v1/clusters", Some(&old), None).0, 200);
    // Refused within 2 s of its expiry, as soon as it is.
    loop {
        let (s, _, body) = call(&url, "GET", "/v1/clusters", Some(&old), None);
        if s == 401 {
            break;
        }
        assert_eq!(s, 200, "{body}");
        assert!(
            Instant::now() < expires + Duration::from_secs(2),
            "an expired token still accepted 2 s after its expiry"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // ... unless a service (a token with the service role) vouches for it,
    // as keystonemiddleware allows; a non-service token does not.
    let service = {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "magnum", "password": "magnum-secret", "domain": {"id": "default"}}}},
            "scope": {"project": {"name": "service", "domain": {"id": "default"}}},
        }});
        let (_, h, _) = http_with(
            KEYSTONE,
            "POST",
            "/v3/auth/tokens?nocatalog",
            &[],
            Some(&body.to_string()),
        );
        h.into_iter()
            .find(|(k, _)| k == "x-subject-token")
            .unwrap()
            .1
    };
    let with_service = |svc: &str| {
        http_with(
            &url,
            "GET",
            "/v1/clusters",
            &[("X-Auth-Token", &old), ("X-Service-Token", svc)],
            None,
        )
        .0
    };
    assert_eq!(with_service(&service), 200);
    assert_eq!(with_service(&token("a-member", "project-a")), 401);
    assert_eq!(with_service("bogus"), 401);

    drop(server);
    std::fs::remove_dir_all(dir).ok();
}

fn wait_for_token(url: &str, cluster: &str, token: &str, status: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, c) = call(
            url,
            "GET",
            &format!("/v1/clusters/{cluster}"),
            Some(token),
            None,
        );
        if c["status"] == status {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "stuck at {c}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Keystone unreachable: 503, not 500 and not 401.
#[test]
fn keystone_down_is_503() {
    let dir = tempdir("keystone-down");
    // Nothing listens on port 9 of loopback.
    let conf = conf(&dir, "http://127.0.0.1:9/v3");
    let server = all_in_one(&dir, &conf);
    let (s, _, body) = call(&server.url, "GET", "/v1/clusters", Some("some-token"), None);
    assert_eq!(s, 503, "{body}");
    assert_eq!(body["error"]["code"], 503);
    // Public routes still answer.
    assert_eq!(call(&server.url, "GET", "/v1", None, None).0, 200);
    drop(server);
    std::fs::remove_dir_all(dir).ok();
}

/// An operator's policy.yaml changes what real roles may do, and the
/// admin-only APIs (quotas) follow upstream's defaults for real tokens.
#[test]
fn policy_file_and_admin_apis_with_real_roles() {
    keystone(&["start"]);
    let dir = tempdir("keystone-policy");
    std::fs::write(
        dir.join("policy.yaml"),
        "\"clustertemplate:get_all\": \"role:admin\"\n",
    )
    .unwrap();
    let conf = conf(&dir, &format!("{KEYSTONE}/v3"));
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("[oslo_policy]\npolicy_file = policy.yaml\n");
    std::fs::write(&conf, text).unwrap();
    let server = all_in_one(&dir, &conf);
    let url = server.url.clone();

    let member = token("a-member", "project-a");
    let admin = token("a-admin", "project-a");
    let (s, _, body) = call(&url, "GET", "/v1/clustertemplates", Some(&member), None);
    assert_eq!(s, 403, "the policy file narrows listing to admins: {body}");
    assert_eq!(
        call(&url, "GET", "/v1/clustertemplates", Some(&admin), None).0,
        200
    );
    // Rules the file does not name keep their defaults.
    assert_eq!(
        call(&url, "GET", "/v1/clusters", Some(&member), None).0,
        200
    );

    // Quotas: admins only, for any project; a member reads its own.
    let project_b = {
        let t = token("b-member", "project-b");
        let (_, _, v) = http_with(
            KEYSTONE,
            "GET",
            "/v3/auth/tokens",
            &[("X-Auth-Token", &t), ("X-Subject-Token", &t)],
            None,
        );
        serde_json::from_str::<Value>(&v).unwrap()["token"]["project"]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let quota = json!({"project_id": project_b, "resource": "Cluster", "hard_limit": 3});
    let (s, _, body) = call(
        &url,
        "POST",
        "/v1/quotas",
        Some(&member),
        Some(quota.clone()),
    );
    assert_eq!(s, 403, "{body}");
    let (s, _, body) = call(&url, "POST", "/v1/quotas", Some(&admin), Some(quota));
    assert_eq!(s, 201, "{body}");
    // A project Keystone does not know: upstream's ProjectNotFound, and
    // nothing stored.
    let unknown = json!({"project_id": "no-such-project", "resource": "Cluster", "hard_limit": 3});
    let (s, _, body) = call(&url, "POST", "/v1/quotas", Some(&admin), Some(unknown));
    assert_eq!(s, 404, "{body}");
    assert_eq!(
        body["errors"][0]["detail"],
        "The project_id no-such-project could not be found."
    );
    let (_, _, list) = call(
        &url,
        "GET",
        "/v1/quotas?all_tenants=True",
        Some(&admin),
        None,
    );
    let projects: Vec<&str> = list["quotas"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|q| q["project_id"].as_str())
        .collect();
    assert_eq!(projects, [project_b.as_str()], "{list}");
    assert_eq!(call(&url, "GET", "/v1/quotas", Some(&member), None).0, 403);
    assert_eq!(call(&url, "GET", "/v1/quotas", Some(&admin), None).0, 200);
    let b_member = token("b-member", "project-b");
    let path = format!("/v1/quotas/{project_b}/Cluster");
    let (s, _, q) = call(&url, "GET", &path, Some(&b_member), None);
    assert_eq!(s, 200, "{q}");
    assert_eq!(q["hard_limit"], 3);
    assert_eq!(call(&url, "GET", &path, Some(&member), None).0, 403);

    drop(server);
    std::fs::remove_dir_all(dir).ok();
}

/// What the deployment lacks is named in a 400, not a 500: a service the
/// caller's catalog does not list (here Nova, looked up in a region the
/// catalog has none in), and the `[trust]` options a Heat cluster needs
/// when they are unset (refused at create, not failed later).
#[test]
fn missing_catalog_service_and_trust_options_are_400_naming_them() {
    keystone(&["start"]);
    let dir = tempdir("keystone-missing");
    let member = token("a-member", "project-a");
    glance_with_image(&member);
    let conf = conf(&dir, &format!("{KEYSTONE}/v3"));
    let text = std::fs::read_to_string(&conf).unwrap();
    let without_trust = text.split("[trust]").next().unwrap().to_string();
    std::fs::write(
        &conf,
        format!("{without_trust}[nova_client]\nregion_name = RegionNowhere\n"),
    )
    .unwrap();
    let server = all_in_one(&dir, &conf);
    let url = server.url.clone();

    let (s, _, body) = call(
        &url,
        "POST",
        "/v1/clustertemplates",
        Some(&member),
        Some(
            json!({"name": "no-nova", "coe": "kubernetes", "image_id": "fedora-coreos-40",
                    "flavor_id": "m1.small"}),
        ),
    );
    assert_eq!(s, 400, "{body}");
    let err = &body["errors"][0];
    assert_eq!(err["code"], "client", "{body}");
    assert_eq!(
        err["detail"],
        "The compute service (nova) has no public endpoint in region RegionNowhere of the \
         caller's catalog, so the flavor cannot be checked; ask the cloud's operator to \
         register it in Keystone, or set [nova_client] region_name and endpoint_type to one \
         the catalog lists."
    );
    assert_eq!(
        err["title"],
        "The compute service (nova) has no public endpoint in region RegionNowhere of the \
         caller's catalog, so the flavor cannot be checked; ask the cloud's operator to \
         register it in Keystone, or set [nova_client] region_name and endpoint_type to one \
         the catalog lists"
    );

    // A Heat template (the image's os_distro picks the driver) is kept, but
    // a cluster of it is refused, naming the options to set.
    let (s, _, t) = call(
        &url,
        "POST",
        "/v1/clustertemplates",
        Some(&member),
        Some(json!({"name": "heat-no-trust", "coe": "kubernetes",
                    "image_id": "fedora-coreos-40"})),
    );
    assert_eq!(s, 201, "{t}");
    let (s, _, body) = call(
        &url,
        "POST",
        "/v1/clusters",
        Some(&member),
        Some(json!({"name": "c", "cluster_template_id": t["uuid"], "keypair": "kp"})),
    );
    assert_eq!(s, 400, "{body}");
    assert_eq!(
        body["errors"][0]["detail"],
        "The k8s_fedora_coreos_v1 driver acts for the cluster's owner through a Keystone \
         trust, and this service cannot make one: its configuration must set [trust] \
         trustee_domain_admin_id or trustee_domain_admin_name, [trust] \
         trustee_domain_admin_password."
    );
    // Nothing was kept of it.
    let (s, _, list) = call(&url, "GET", "/v1/clusters", Some(&member), None);
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["clusters"], json!([]), "{list}");
    let (s, _, _) = call(
        &url,
        "DELETE",
        &format!("/v1/clustertemplates/{}", t["uuid"].as_str().unwrap()),
        Some(&member),
        None,
    );
    assert_eq!(s, 204);
    drop(server);
    std::fs::remove_dir_all(dir).ok();
}
