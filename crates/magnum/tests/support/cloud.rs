//! The real OpenStack services of the program-level tests: Keystone,
//! Glance, Barbican and Heat from PyPI (started by `scripts/*.sh`), a
//! double for Nova and Neutron, tokens and catalog registration.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;

pub const KEYSTONE: &str = "http://127.0.0.1:5001";

pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/keystone.sh")
}

pub fn keystone(args: &[&str]) {
    let out = run(Command::new("bash").arg(script()).args(args));
    assert!(
        out.status.success(),
        "scripts/keystone.sh {args:?} failed:\n{}",
        text(&out)
    );
}

/// A project-scoped token for `user` of `project`.
pub fn token(user: &str, project: &str) -> String {
    token_of(user, "secret", project)
}

pub fn token_of(user: &str, password: &str, project: &str) -> String {
    sign_in(json!({
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "password": password, "domain": {"id": "default"}}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}},
    }))
    .0
}

/// `POST /v3/auth/tokens` with `auth`: the token and its body.
fn sign_in(auth: Value) -> (String, Value) {
    let body = json!({ "auth": auth });
    let (status, headers, text) = http_with(
        KEYSTONE,
        "POST",
        "/v3/auth/tokens?nocatalog",
        &[],
        Some(&body.to_string()),
    );
    assert_eq!(status, 201, "{text}");
    let token = headers
        .into_iter()
        .find(|(k, _)| k == "x-subject-token")
        .map(|(_, v)| v)
        .unwrap();
    (token, serde_json::from_str(&text).unwrap())
}

/// A token of `user` in `project` that expires at the returned instant,
/// `life` from now. The test Keystone's tokens live an hour; one made from
/// an application credential expires no later than the credential does.
pub fn short_lived_token(user: &str, project: &str, life: Duration) -> (String, Instant) {
    let (token, body) = sign_in(json!({
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "password": "secret", "domain": {"id": "default"}}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}},
    }));
    let user_id = body["token"]["user"]["id"].as_str().unwrap();
    let ends = Instant::now() + life;
    let expires_at = chrono::Utc::now() + life;
    let credential = json!({"application_credential": {
        "name": format!("short-lived-{}", expires_at.timestamp_micros()),
        "expires_at": expires_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
    }});
    let (status, _, text) = http_with(
        KEYSTONE,
        "POST",
        &format!("/v3/users/{user_id}/application_credentials"),
        &[("X-Auth-Token", &token)],
        Some(&credential.to_string()),
    );
    assert_eq!(status, 201, "{text}");
    let credential: Value = serde_json::from_str(&text).unwrap();
    let credential = &credential["application_credential"];
    let (short, body) = sign_in(json!({
        "identity": {"methods": ["application_credential"], "application_credential": {
            "id": credential["id"], "secret": credential["secret"]}},
    }));
    let expiry = body["token"]["expires_at"].as_str().unwrap();
    let expiry = chrono::DateTime::parse_from_rfc3339(expiry).unwrap();
    assert!(
        expiry <= expires_at + chrono::Duration::seconds(1),
        "Keystone did not cap the token at its credential's expiry: {expiry}"
    );
    (short, ends)
}

pub fn call(
    url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Vec<(String, String)>, Value) {
    let mut headers = vec![("OpenStack-API-Version", "container-infra latest")];
    if let Some(t) = token {
        headers.push(("X-Auth-Token", t));
    }
    let body = body.map(|b| b.to_string());
    let (s, h, text) = http_with(url, method, path, &headers, body.as_deref());
    (s, h, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub fn conf(dir: &std::path::Path, auth_url: &str) -> String {
    conf_with(dir, auth_url, "x509keypair")
}

/// The configuration of an all-in-one with Keystone, keeping cluster
/// certificates in `cert_manager`.
pub fn conf_with(dir: &std::path::Path, auth_url: &str, cert_manager: &str) -> String {
    write_conf(
        dir,
        &format!(
            "[DEFAULT]\nauth_strategy = keystone\n[api]\nport = 0\n[conductor]\nsync_interval = 1\n\
             [certificates]\ncert_manager_type = {cert_manager}\n\
             [keystone_authtoken]\nauth_url = {auth_url}\nusername = magnum\npassword = magnum-secret\n\
             project_name = service\nuser_domain_name = Default\nproject_domain_name = Default\n\
             www_authenticate_uri = {auth_url}\n\
             [trust]\ntrustee_domain_name = magnum\ntrustee_domain_admin_name = magnum-domain-admin\n\
             trustee_domain_admin_password = domain-secret\n"
        ),
    )
    .to_str()
    .unwrap()
    .to_string()
}

pub fn all_in_one(dir: &std::path::Path, conf: &str) -> Server {
    let cloud = dir.join("cloud");
    start_env(
        &[
            "--config-file",
            conf,
            "all-in-one",
            "--data-dir",
            dir.join("data").to_str().unwrap(),
        ],
        &[("MAGNUM_FAKE_CLOUD", cloud.to_str().unwrap())],
        "listening on ",
    )
}

/// An admin token (the bootstrap admin, project `admin`).
pub fn admin_token() -> String {
    token_of("admin", "admin-secret", "admin")
}

pub fn kget(token: &str, path: &str) -> Value {
    let (s, _, body) = http_with(KEYSTONE, "GET", path, &[("X-Auth-Token", token)], None);
    assert_eq!(s, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Point the catalog's public endpoint of `service_type` at `url`.
pub fn register(token: &str, service_type: &str, url: &str) {
    let services = kget(token, &format!("/v3/services?type={service_type}"));
    let id = match services["services"].as_array().and_then(|s| s.first()) {
        Some(s) => s["id"].as_str().unwrap().to_string(),
        None => {
            let body = json!({"service": {"type": service_type, "name": service_type}});
            let (s, _, b) = http_with(
                KEYSTONE,
                "POST",
                "/v3/services",
                &[("X-Auth-Token", token)],
                Some(&body.to_string()),
            );
            assert_eq!(s, 201, "{b}");
            serde_json::from_str::<Value>(&b).unwrap()["service"]["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let eps = kget(
        token,
        &format!("/v3/endpoints?service_id={id}&interface=public"),
    );
    match eps["endpoints"].as_array().and_then(|e| e.first()) {
        Some(e) => {
            let body = json!({"endpoint": {"url": url}});
            let path = format!("/v3/endpoints/{}", e["id"].as_str().unwrap());
            let (s, _, b) = http_with(
                KEYSTONE,
                "PATCH",
                &path,
                &[("X-Auth-Token", token)],
                Some(&body.to_string()),
            );
            assert_eq!(s, 200, "{b}");
        }
        None => {
            let body = json!({"endpoint": {"service_id": id, "interface": "public", "url": url, "region_id": "RegionOne"}});
            let (s, _, b) = http_with(
                KEYSTONE,
                "POST",
                "/v3/endpoints",
                &[("X-Auth-Token", token)],
                Some(&body.to_string()),
            );
            assert_eq!(s, 201, "{b}");
        }
    }
}

/// The Nova and Neutron doubles, registered in the catalog.
pub struct CloudDouble(std::process::Child);

impl Drop for CloudDouble {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn cloud_double(dir: &std::path::Path) -> CloudDouble {
    let port_file = dir.join("cloud.port");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/cloud_double.py");
    let child = Command::new(venv().join("bin/python"))
        .arg(script)
        .arg(&port_file)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let port = loop {
        if let Ok(p) = std::fs::read_to_string(&port_file) {
            if !p.is_empty() {
                break p;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the cloud double did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let admin = admin_token();
    let base = format!("http://127.0.0.1:{port}");
    register(&admin, "compute", &format!("{base}/compute/v2.1"));
    register(&admin, "network", &format!("{base}/network"));
    CloudDouble(child)
}

/// Delete the trusts a user made (left by an earlier run that failed
/// half-way), so counts start from nothing.
pub fn forget_trusts_of(user_token: &str) {
    let (s, _, body) = http_with(
        KEYSTONE,
        "GET",
        "/v3/auth/tokens",
        &[
            ("X-Auth-Token", user_token),
            ("X-Subject-Token", user_token),
        ],
        None,
    );
    assert_eq!(s, 200, "{body}");
    let me: Value = serde_json::from_str(&body).unwrap();
    let id = me["token"]["user"]["id"].as_str().unwrap();
    let trusts = kget(
        user_token,
        &format!("/v3/OS-TRUST/trusts?trustor_user_id={id}"),
    );
    for t in trusts["trusts"].as_array().unwrap() {
        let path = format!("/v3/OS-TRUST/trusts/{}", t["id"].as_str().unwrap());
        let (s, _, b) = http_with(
            KEYSTONE,
            "DELETE",
            &path,
            &[("X-Auth-Token", user_token)],
            None,
        );
        // 404: gone meanwhile (Heat drops its own trusts as it deletes
        // stacks of earlier tests).
        assert!(s == 204 || s == 404, "{s} {b}");
    }
}

pub const BARBICAN: &str = "http://127.0.0.1:9311";

/// The real Barbican of `scripts/barbican.sh`, in the catalog.
pub fn barbican_start() {
    let out = run(Command::new("bash")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/barbican.sh"))
        .arg("start"));
    assert!(
        out.status.success(),
        "scripts/barbican.sh start failed:\n{}",
        text(&out)
    );
}

pub fn barbican_get(token: &str, url: &str) -> Value {
    let (s, _, body) = http_with(url, "GET", "", &[("X-Auth-Token", token)], None);
    assert_eq!(s, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap()
}

pub fn barbican_payload(token: &str, secret: &str) -> String {
    let (s, _, body) = http_with(
        secret,
        "GET",
        "/payload",
        &[("X-Auth-Token", token), ("Accept", "text/plain")],
        None,
    );
    assert_eq!(s, 200, "GET {secret}/payload: {body}");
    body
}

/// The references of every certificate container `token`'s project holds.
pub fn barbican_containers(token: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let page = barbican_get(
            token,
            &format!("{BARBICAN}/v1/containers?limit=100&offset={offset}"),
        );
        let items = page["containers"].as_array().cloned().unwrap_or_default();
        out.extend(
            items
                .iter()
                .filter_map(|c| c["container_ref"].as_str().map(str::to_string)),
        );
        if items.len() < 100 {
            return out;
        }
        offset += 100;
    }
}

/// The real Glance of `scripts/glance.sh`, with images of project A:
/// `fedora-coreos-40` (os_distro fedora-coreos) and `ubuntu-24.04`
/// (os_distro ubuntu).
pub fn glance_with_image(owner_token: &str) {
    let out = run(Command::new("bash")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/glance.sh"))
        .arg("start"));
    assert!(
        out.status.success(),
        "scripts/glance.sh start failed:\n{}",
        text(&out)
    );
    let glance = "http://127.0.0.1:9393";
    for (name, distro) in [
        ("fedora-coreos-40", "fedora-coreos"),
        ("ubuntu-24.04", "ubuntu"),
    ] {
        let (s, _, list) = http_with(
            glance,
            "GET",
            &format!("/v2/images?name={name}"),
            &[("X-Auth-Token", owner_token)],
            None,
        );
        assert_eq!(s, 200, "{list}");
        if serde_json::from_str::<Value>(&list).unwrap()["images"] == json!([]) {
            let body = json!({"name": name, "os_distro": distro,
                              "disk_format": "qcow2", "container_format": "bare"});
            let (s, _, b) = http_with(
                glance,
                "POST",
                "/v2/images",
                &[("X-Auth-Token", owner_token)],
                Some(&body.to_string()),
            );
            assert_eq!(s, 201, "{b}");
        }
    }
}

/// The real `openstack` client as a user of a project, by password
/// through the test Keystone (our API found in its catalog).
pub fn openstack_as(user: &str, project: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = openstack_command();
    cmd.env("OS_AUTH_URL", format!("{KEYSTONE}/v3"))
        .env("OS_USERNAME", user)
        .env("OS_PASSWORD", "secret")
        .env("OS_PROJECT_NAME", project)
        .env("OS_USER_DOMAIN_NAME", "Default")
        .env("OS_PROJECT_DOMAIN_NAME", "Default")
        .env("OS_IDENTITY_API_VERSION", "3")
        .env("OS_REGION_NAME", "RegionOne")
        .args(args);
    run(&mut cmd)
}

/// The real Heat of `scripts/heat.sh`, in the catalog.
pub fn heat_start() {
    let out = run(Command::new("bash")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/heat.sh"))
        .arg("start"));
    assert!(
        out.status.success(),
        "scripts/heat.sh start failed:\n{}",
        text(&out)
    );
}

/// The fake-cloud Heat environment of the tests (`tests/heat/`).
pub fn fake_cloud_env() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/heat/fake-cloud-env.yaml")
}

/// An all-in-one with Keystone whose Heat drivers send the fake cloud.
/// `extra` lines go into its `[conductor]` section.
pub fn heat_conf(dir: &std::path::Path, extra: &str) -> String {
    let conf = conf_with(dir, &format!("{KEYSTONE}/v3"), "x509keypair");
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("[conductor]\n", &format!("[conductor]\n{extra}"));
    std::fs::write(
        &conf,
        format!(
            "{text}[drivers]\nheat_environment_files = {}\n",
            fake_cloud_env().display()
        ),
    )
    .unwrap();
    conf
}

/// A token of `user` in `project` for polling: made anew once it is 10 s
/// old (the test Keystone's tokens live 30 s), so polls do not each cost
/// Keystone a login.
pub fn polling_token(user: &str, project: &str) -> String {
    use std::sync::Mutex;
    type Cache = Vec<((String, String), (Instant, String))>;
    static CACHE: Mutex<Cache> = Mutex::new(Vec::new());
    let key = (user.to_string(), project.to_string());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.retain(|(_, (at, _))| at.elapsed() < Duration::from_secs(10));
    if let Some((_, (_, tok))) = cache.iter().find(|(k, _)| *k == key) {
        return tok.clone();
    }
    let tok = token(user, project);
    cache.push((key, (Instant::now(), tok.clone())));
    tok
}

pub fn wait_status(url: &str, cluster: &str, user: &str, want: &[&str], secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let tok = polling_token(user, "project-a");
        let (s, _, c) = call(
            url,
            "GET",
            &format!("/v1/clusters/{cluster}"),
            Some(&tok),
            None,
        );
        if want.contains(&"gone") && s == 404 {
            return Value::Null;
        }
        if let Some(st) = c["status"].as_str() {
            if want.contains(&st) {
                return c;
            }
        }
        assert!(
            Instant::now() < deadline,
            "cluster {cluster} stuck: {s} {c}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Project A's id.
pub fn project_a(tok: &str) -> String {
    let (s, _, me) = http_with(
        KEYSTONE,
        "GET",
        "/v3/auth/tokens",
        &[("X-Auth-Token", tok), ("X-Subject-Token", tok)],
        None,
    );
    assert_eq!(s, 200);
    let me: Value = serde_json::from_str(&me).unwrap();
    me["token"]["project"]["id"].as_str().unwrap().to_string()
}

/// The stacks of project A Heat lists (a member's view), but deleted ones.
pub fn heat_stacks(name: &str) -> Vec<Value> {
    let tok = token("a-member", "project-a");
    let project = project_a(&tok);
    let (s, _, body) = http_with(
        "http://127.0.0.1:8004",
        "GET",
        &format!("/v1/{project}/stacks?name={name}"),
        &[("X-Auth-Token", &tok)],
        None,
    );
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    // A stack just deleted shows DELETE_COMPLETE until Heat hides it.
    v["stacks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["stack_status"] != "DELETE_COMPLETE")
        .cloned()
        .collect()
}
