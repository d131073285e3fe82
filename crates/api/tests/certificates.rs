//! `/v1/certificates` on every backend: each cluster's CAs made by the
//! conductor, the CA served in PEM, CSRs signed and checked with openssl,
//! bad CSRs and other projects refused, keys never shown, and the
//! certificates gone with their cluster.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use std::path::Path;
use std::process::Command;

use axum::http::StatusCode;
use common::*;
use serde_json::json;

on_all_backends!(cluster_certificates);

fn openssl(args: &[&str], cwd: &Path) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("openssl must be installed");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A cluster of template t1 whose driver refused to build it (no stack):
/// its uuid and its four certificate references.
async fn refused_cluster(app: &TestApp) -> (String, [String; 4]) {
    let r = app
        .post(
            "/v1/clusters",
            &member("p1"),
            json!({"cluster_template_id": "t1", "merge_labels": true,
                   "labels": {"fake_refuse": "create"}}),
        )
        .await;
    let refused = r.body["uuid"].as_str().unwrap().to_string();
    app.settle(&refused, "CREATE_FAILED").await;
    let c = app.db.cluster_get(&refused).await.unwrap().unwrap();
    assert!(c.stack_id.is_none(), "{c:?}");
    let refs = [
        &c.ca_cert_ref,
        &c.etcd_ca_cert_ref,
        &c.front_proxy_ca_cert_ref,
        &c.magnum_cert_ref,
    ]
    .map(|r| r.clone().unwrap());
    (refused, refs)
}

/// `openssl req -new`: NAME.key (RSA 2048) and NAME.csr for SUBJ in DIR.
fn new_csr(dir: &Path, name: &str, subj: &str, extra: &[&str]) {
    let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
    let mut args = vec![
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj",
        subj,
    ];
    args.extend_from_slice(extra);
    let (ok, text) = openssl(&args, dir);
    assert!(ok, "{text}");
}

async fn cluster_certificates(backend: Backend) {
    let app = TestApp::new(backend).await;
    let d = std::env::temp_dir().join(format!("magnum-certs-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    app.create_template(&member("p1"), fake_k8s("t1")).await;
    let r = app
        .post(
            "/v1/clusters",
            &member("p1"),
            json!({"name": "c1", "cluster_template_id": "t1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    let id = r.body["uuid"].as_str().unwrap().to_string();
    app.settle(&id, "CREATE_COMPLETE").await;

    // The CA, in PEM, named after the cluster; no key anywhere.
    let r = app
        .get(&format!("/v1/certificates/{id}"), &member("p1"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(r.body["cluster_uuid"], id);
    assert!(!r.raw.contains("PRIVATE KEY"));
    let ca = r.body["pem"].as_str().unwrap();
    std::fs::write(d.join("ca.pem"), ca).unwrap();
    let (ok, text) = openssl(
        &["x509", "-in", "ca.pem", "-noout", "-subject", "-text"],
        &d,
    );
    assert!(ok, "{text}");
    assert!(text.contains("CN = c1") || text.contains("CN=c1"), "{text}");
    assert!(text.contains("CA:TRUE"), "{text}");
    // The etcd and front-proxy CAs are others.
    for t in ["etcd", "front_proxy"] {
        let r = app
            .get(
                &format!("/v1/certificates/{id}?ca_cert_type={t}"),
                &member("p1"),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
        assert_ne!(r.body["pem"].as_str().unwrap(), ca, "{t}");
    }
    // Another project sees no such cluster.
    app.get(&format!("/v1/certificates/{id}"), &member("p2"))
        .await
        .error(404);

    // Sign a CSR; it verifies against the CA.
    new_csr(&d, "u", "/CN=user/O=team", &[]);
    let csr = std::fs::read_to_string(d.join("u.csr")).unwrap();
    let r = app
        .post(
            "/v1/certificates",
            &member("p1"),
            json!({"cluster_uuid": id, "csr": csr}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    assert_eq!(r.body["csr"], csr.as_str());
    assert!(r.body.get("ca_cert_type").is_none(), "not sent, not shown");
    std::fs::write(d.join("u.pem"), r.body["pem"].as_str().unwrap()).unwrap();
    let (ok, text) = openssl(&["verify", "-CAfile", "ca.pem", "u.pem"], &d);
    assert!(ok, "{text}");
    assert!(!r.raw.contains("PRIVATE KEY"));

    // Refusals, in upstream's error format.
    let r = app
        .post(
            "/v1/certificates",
            &member("p1"),
            json!({"cluster_uuid": id, "csr": "not a csr"}),
        )
        .await;
    assert!(
        r.error(400).starts_with("Received invalid csr"),
        "{}",
        r.raw
    );
    // A CSR whose signature another key made: u.csr's request with the
    // signature of the same request under a second key.
    new_csr(&d, "o", "/CN=user/O=team", &[]);
    let der = |name: &str| {
        let (ok, text) = openssl(
            &[
                "req",
                "-in",
                name,
                "-outform",
                "DER",
                "-out",
                &format!("{name}.der"),
            ],
            &d,
        );
        assert!(ok, "{text}");
        std::fs::read(d.join(format!("{name}.der"))).unwrap()
    };
    let (mut forged, other) = (der("u.csr"), der("o.csr"));
    let n = forged.len();
    forged[n - 256..].copy_from_slice(&other[other.len() - 256..]);
    std::fs::write(d.join("forged.der"), &forged).unwrap();
    let (ok, text) = openssl(
        &[
            "req",
            "-inform",
            "DER",
            "-in",
            "forged.der",
            "-out",
            "forged.csr",
        ],
        &d,
    );
    assert!(ok, "{text}");
    // (OpenSSL 3.0 exits 0 here; what it prints tells.)
    let (_, text) = openssl(&["req", "-in", "forged.csr", "-verify", "-noout"], &d);
    assert!(text.contains("verify failure"), "{text}");
    let forged = std::fs::read_to_string(d.join("forged.csr")).unwrap();
    let r = app
        .post(
            "/v1/certificates",
            &member("p1"),
            json!({"cluster_uuid": id, "csr": forged}),
        )
        .await;
    assert!(
        r.error(400).starts_with("Received invalid csr"),
        "{}",
        r.raw
    );
    // A CA type sent comes back, as upstream's signed object carries it.
    let r = app
        .post(
            "/v1/certificates",
            &member("p1"),
            json!({"cluster_uuid": id, "csr": csr, "ca_cert_type": "kubernetes"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    assert_eq!(r.body["ca_cert_type"], "kubernetes");
    let r = app
        .post(
            "/v1/certificates",
            &member("p2"),
            json!({"cluster_uuid": id, "csr": csr}),
        )
        .await;
    assert_eq!(r.error(400), format!("Cluster {id} could not be found."));
    let r = app
        .post(
            "/v1/certificates",
            &reader("p1"),
            json!({"cluster_uuid": id, "csr": csr}),
        )
        .await;
    r.error(403);
    app.post("/v1/certificates", &member("p1"), json!({"csr": csr}))
        .await
        .error(400);
    // A CSR asking to be a CA, critically: refused as upstream's validator.
    new_csr(
        &d,
        "ca-req",
        "/CN=sub-ca",
        &["-addext", "basicConstraints=critical,CA:TRUE"],
    );
    let ca_req = std::fs::read_to_string(d.join("ca-req.csr")).unwrap();
    let r = app
        .post(
            "/v1/certificates",
            &member("p1"),
            json!({"cluster_uuid": id, "csr": ca_req}),
        )
        .await;
    assert_eq!(r.error(400), "Extension 'basicConstraints' not allowed");

    // CA rotation (1.5+): new CAs; what the old CA signed no longer
    // verifies against the new one, and new signatures do.
    let path = format!("/v1/certificates/{id}");
    let v14 = [("OpenStack-API-Version", "container-infra 1.4")];
    let r = app
        .send(axum::http::Method::PATCH, &path, &member("p1"), &v14, None)
        .await;
    r.error(406);
    let latest = [("OpenStack-API-Version", "container-infra latest")];
    let r = app
        .send(
            axum::http::Method::PATCH,
            &path,
            &reader("p1"),
            &latest,
            None,
        )
        .await;
    r.error(403);
    let r = app
        .send(
            axum::http::Method::PATCH,
            &path,
            &member("p1"),
            &latest,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(r.body["uuid"], id);
    app.settle(&id, "UPDATE_COMPLETE").await;
    assert_eq!(
        app.cloud.history(&id).last().map(String::as_str),
        Some("rotate_ca_certificate")
    );
    let r = app.get(&path, &member("p1")).await;
    let new_ca = r.body["pem"].as_str().unwrap().to_string();
    assert_ne!(new_ca, ca);
    std::fs::write(d.join("new-ca.pem"), &new_ca).unwrap();
    let (ok, _) = openssl(&["verify", "-CAfile", "new-ca.pem", "u.pem"], &d);
    assert!(
        !ok,
        "the old certificate must not verify against the new CA"
    );
    let r = app
        .post(
            "/v1/certificates",
            &member("p1"),
            json!({"cluster_uuid": id, "csr": csr}),
        )
        .await;
    std::fs::write(d.join("u2.pem"), r.body["pem"].as_str().unwrap()).unwrap();
    let (ok, text) = openssl(&["verify", "-CAfile", "new-ca.pem", "u2.pem"], &d);
    assert!(ok, "{text}");
    // A cluster without TLS has nothing to rotate.
    let mut plain = fake_k8s("plain");
    plain["tls_disabled"] = json!(true);
    app.create_template(&member("p1"), plain).await;
    let r = app
        .post(
            "/v1/clusters",
            &member("p1"),
            json!({"cluster_template_id": "plain"}),
        )
        .await;
    let plain_id = r.body["uuid"].as_str().unwrap().to_string();
    app.settle(&plain_id, "CREATE_COMPLETE").await;
    let r = app
        .send(
            axum::http::Method::PATCH,
            &format!("/v1/certificates/{plain_id}"),
            &member("p1"),
            &latest,
            None,
        )
        .await;
    assert_eq!(
        r.error(400),
        "Rotating the CA certificate on a non-TLS cluster is not supported"
    );

    // A cluster whose driver refused to build it (no stack) had its keys
    // made all the same: they go with it.
    let (refused, refs) = refused_cluster(&app).await;
    for r in &refs {
        assert!(app.db.x509keypair_get(r).await.unwrap().is_some());
    }
    app.delete(&format!("/v1/clusters/{refused}"), &member("p1"))
        .await;
    app.settle(&refused, "gone").await;
    for r in &refs {
        assert!(app.db.x509keypair_get(r).await.unwrap().is_none(), "{r}");
    }

    // Gone with the cluster.
    let c = app.db.cluster_get(&id).await.unwrap().unwrap();
    let refs = [
        c.ca_cert_ref.clone().unwrap(),
        c.magnum_cert_ref.clone().unwrap(),
    ];
    assert!(app.db.x509keypair_get(&refs[0]).await.unwrap().is_some());
    app.delete(&format!("/v1/clusters/{id}"), &member("p1"))
        .await;
    app.settle(&id, "gone").await;
    for r in refs {
        assert!(app.db.x509keypair_get(&r).await.unwrap().is_none());
    }
    std::fs::remove_dir_all(d).ok();
}

/// `cert_manager_type = local`: files only Magnum's user can read, nothing
/// in the table, gone with the cluster.
#[tokio::test]
async fn local_certificate_store() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("magnum-local-certs-{}", uuid::Uuid::new_v4()));
    let app = TestApp::with_config(
        Backend::Sqlite,
        &format!(
            "[certificates]\ncert_manager_type = local\nstorage_path = {}\n",
            dir.join("store").display()
        ),
    )
    .await;
    app.create_template(&member("p1"), fake_k8s("t1")).await;
    let r = app
        .post(
            "/v1/clusters",
            &member("p1"),
            json!({"name": "c1", "cluster_template_id": "t1"}),
        )
        .await;
    let id = r.body["uuid"].as_str().unwrap().to_string();
    app.settle(&id, "CREATE_COMPLETE").await;
    let c = app.db.cluster_get(&id).await.unwrap().unwrap();
    let refs: Vec<String> = [
        &c.ca_cert_ref,
        &c.etcd_ca_cert_ref,
        &c.front_proxy_ca_cert_ref,
        &c.magnum_cert_ref,
    ]
    .into_iter()
    .map(|r| r.clone().unwrap())
    .collect();
    let store = dir.join("store");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store), 0o700);
    for r in &refs {
        assert!(app.db.x509keypair_get(r).await.unwrap().is_none());
        for ext in ["crt", "key", "pass"] {
            let f = store.join(format!("{r}.{ext}"));
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
        let key = std::fs::read_to_string(store.join(format!("{r}.key"))).unwrap();
        assert!(
            key.contains("ENCRYPTED PRIVATE KEY"),
            "keys are kept encrypted"
        );
    }
    // The API reads the CA from the files and signs with its key.
    let r = app
        .get(&format!("/v1/certificates/{id}"), &member("p1"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    let ca = std::fs::read_to_string(store.join(format!("{}.crt", refs[0]))).unwrap();
    assert_eq!(r.body["pem"].as_str().unwrap().trim(), ca.trim());
    std::fs::create_dir_all(&dir).unwrap();
    new_csr(&dir, "u", "/CN=user/O=team", &[]);
    let csr = std::fs::read_to_string(dir.join("u.csr")).unwrap();
    let r = app
        .post(
            "/v1/certificates",
            &member("p1"),
            json!({"cluster_uuid": id, "csr": csr}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    std::fs::write(dir.join("ca.pem"), &ca).unwrap();
    std::fs::write(dir.join("u.pem"), r.body["pem"].as_str().unwrap()).unwrap();
    let (ok, text) = openssl(&["verify", "-CAfile", "ca.pem", "u.pem"], &dir);
    assert!(ok, "{text}");
    // A cluster whose driver refused to build it (no stack) had its keys
    // made all the same: they go with it.
    let (refused, refused_refs) = refused_cluster(&app).await;
    for r in &refused_refs {
        assert!(store.join(format!("{r}.key")).exists(), "{r}");
    }
    app.delete(&format!("/v1/clusters/{refused}"), &member("p1"))
        .await;
    app.settle(&refused, "gone").await;
    for r in &refused_refs {
        for ext in ["crt", "key", "pass"] {
            assert!(!store.join(format!("{r}.{ext}")).exists(), "{r}.{ext}");
        }
    }

    // Gone with the cluster.
    app.delete(&format!("/v1/clusters/{id}"), &member("p1"))
        .await;
    app.settle(&id, "gone").await;
    let left: Vec<_> = std::fs::read_dir(&store).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    std::fs::remove_dir_all(dir).ok();
}
