//! Horizon's Container Infra panels (PyPI `magnum-ui` in PyPI `horizon`,
//! started by `scripts/horizon.sh`) in Debian's headless chromium, driven
//! by selenium (`tests/peers/horizon_browser.py`): against our all-in-one
//! found in the real Keystone's catalog, a member signs in, opens Project >
//! Container Infra > Cluster Templates, creates a template through the
//! form and opens its details, then creates a cluster through the Create
//! Cluster form (from a template of the test driver, which the form cannot
//! choose), watches it go CREATE_IN_PROGRESS to CREATE_COMPLETE, opens its
//! details, resizes it (UPDATE_IN_PROGRESS to UPDATE_COMPLETE), deletes it and
//! then its template; a reader sees the lists, and a create it tries through the same
//! form is refused (our API's 403, which Horizon shows as an error;
//! magnum-ui itself offers the form to everyone). Each step saves a
//! screenshot under the test's directory (printed).

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use support::cloud::*;
use support::*;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/horizon.sh")
}

fn horizon(args: &[&str]) -> String {
    let out = run(Command::new("bash").arg(script()).args(args));
    assert!(
        out.status.success(),
        "scripts/horizon.sh {args:?} failed:\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Run the browser driver as `role`; its steps, each with its screenshot.
fn browse(
    venv: &str,
    shots: &Path,
    role: &str,
    template: &str,
    image: &str,
    cluster_template: &str,
) -> Vec<Value> {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/horizon_browser.py");
    let shots = shots.join(role);
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new(format!("{venv}/bin/python"))
        .arg(driver)
        .args([
            "http://127.0.0.1:8088",
            shots.to_str().unwrap(),
            role,
            template,
            image,
            cluster_template,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{role}: screenshots in {}\n{stdout}", shots.display());
    assert!(
        out.status.success(),
        "the {role}'s walk through Horizon failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// Point the shared Keystone's catalog at this test's API and Nova/Neutron
/// double. Horizon keeps the catalog of the token it signs in with for the
/// whole session, so doing this just before each sign-in keeps a walk on
/// these services even if another test repoints the catalog meanwhile.
fn claim_catalog(dir: &Path, api: &str) {
    let port = std::fs::read_to_string(dir.join("cloud.port")).unwrap();
    let base = format!("http://127.0.0.1:{}", port.trim());
    let admin = admin_token();
    register(&admin, "compute", &format!("{base}/compute/v2.1"));
    register(&admin, "network", &format!("{base}/network"));
    keystone(&["endpoint", &format!("{api}/v1")]);
}

#[test]
fn horizon_container_infra_panels() {
    keystone(&["start"]);
    horizon(&["browser"]);
    let venv = horizon(&["venv"]);
    let dir = tempdir("horizon");
    let member = token("a-member", "project-a");
    glance_with_image(&member);
    let _cloud = cloud_double(&dir);
    let conf = conf(&dir, &format!("{KEYSTONE}/v3"));
    let server = all_in_one(&dir, &conf);
    let url = server.url.clone();
    horizon(&["start"]);

    let template = format!("horizon-{}", std::process::id());
    let shots = dir.join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    // Clusters are made from a template of the test driver (through the
    // API: magnum-ui's form has no driver choice).
    let fake = format!("{template}-fake");
    let (s, _, t) = call(
        &url,
        "POST",
        "/v1/clustertemplates",
        Some(&member),
        Some(
            json!({"name": fake, "coe": "kubernetes", "image_id": "fedora-coreos-40",
                    "driver": "fake", "labels": {"fake_seconds": "6"},
                    "flavor_id": "m1.small", "master_flavor_id": "m1.medium",
                    "keypair_id": "kp", "external_network_id": "public"}),
        ),
    );
    assert_eq!(s, 201, "{t}");
    claim_catalog(&dir, &url);
    let steps = browse(
        &venv,
        &shots,
        "member",
        &template,
        "fedora-coreos-40",
        &fake,
    );
    let names: Vec<&str> = steps.iter().filter_map(|s| s["step"].as_str()).collect();
    assert_eq!(
        names,
        [
            "sign-in-a-member",
            "open-project-cluster_templates",
            "template-form",
            "template-created",
            "template-details",
            "open-project-clusters",
            "cluster-form",
            "cluster-created",
            "cluster-details",
            "cluster-resized",
            "cluster-deleted",
            "template-deleted"
        ]
    );
    for s in &steps {
        if let Some(p) = s["screenshot"].as_str() {
            assert!(std::fs::metadata(p).unwrap().len() > 1000, "{p}");
        }
    }

    // The form made it in our API, as the member's project's.
    let (s, _, list) = call(&url, "GET", "/v1/clustertemplates", Some(&member), None);
    assert_eq!(s, 200, "{list}");
    let made: Vec<&Value> = list["clustertemplates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"] == template.as_str())
        .collect();
    assert_eq!(made.len(), 1, "{list}");
    assert_eq!(made[0]["coe"], "kubernetes");
    // magnum-ui sends the image by the name Glance listed.
    assert_eq!(made[0]["image_id"], "fedora-coreos-40");

    claim_catalog(&dir, &url);
    let steps = browse(&venv, &shots, "reader", &template, "fedora-coreos-40", "");
    let names: Vec<&str> = steps.iter().filter_map(|s| s["step"].as_str()).collect();
    assert_eq!(
        names,
        [
            "sign-in-a-reader",
            "open-project-cluster_templates",
            "reader-sees-templates",
            "reader-template-form",
            "reader-create-refused",
            "open-project-clusters"
        ]
    );
    // The reader's form made nothing.
    let (s, _, list) = call(&url, "GET", "/v1/clustertemplates", Some(&member), None);
    assert_eq!(s, 200, "{list}");
    assert_eq!(
        list["clustertemplates"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["name"] == format!("{template}-reader").as_str())
            .count(),
        0,
        "{list}"
    );

    // The cluster's template, deleted through Horizon, is gone.
    let (s, _, body) = call(
        &url,
        "GET",
        &format!("/v1/clustertemplates/{}", t["uuid"].as_str().unwrap()),
        Some(&member),
        None,
    );
    assert_eq!(s, 404, "{body}");
    let uuid = made[0]["uuid"].as_str().unwrap().to_string();
    let (s, _, body) = call(
        &url,
        "DELETE",
        &format!("/v1/clustertemplates/{uuid}"),
        Some(&member),
        None,
    );
    assert_eq!(s, 204, "{body}");
    drop(server);
    println!("screenshots: {}", shots.display());
}
