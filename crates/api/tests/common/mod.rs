//! The harness of the API's HTTP-level tests: a router on a fresh database
//! of a chosen backend, requests with identities, and the macro that runs a
//! test on SQLite, PostgreSQL and MariaDB.

#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use magnum_api::{router, App, AppState};
use magnum_core::cloud::{CloudLookup, NoCloud};
use magnum_core::config::Config;
use magnum_core::policy::Enforcer;
use magnum_db::testing::TestDb;
pub use magnum_db::Backend;
use magnum_db::Database;
use serde_json::Value;
use tower::ServiceExt;

/// Run each named `async fn name(backend: Backend)` on every backend, as
/// separate tests: `sqlite::name`, `postgres::name`, `mysql::name`.
#[macro_export]
macro_rules! on_all_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::common::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::common::Backend::Postgres).await } )*
        }
        mod mysql {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::common::Backend::MySql).await } )*
        }
    };
}

/// Who sends a request.
#[derive(Debug, Clone)]
pub enum Who {
    /// No identity headers: the all-in-one default admin.
    Default,
    /// Explicit identity headers.
    User {
        user: String,
        project: String,
        roles: String,
    },
}

pub fn member(project: &str) -> Who {
    Who::User {
        user: format!("user-{project}"),
        project: project.into(),
        roles: "member,reader".into(),
    }
}

pub fn reader(project: &str) -> Who {
    Who::User {
        user: format!("reader-{project}"),
        project: project.into(),
        roles: "reader".into(),
    }
}

pub fn admin(project: &str) -> Who {
    Who::User {
        user: format!("admin-{project}"),
        project: project.into(),
        roles: "admin,member,reader".into(),
    }
}

pub struct TestApp {
    pub router: App,
    /// The state the router serves.
    pub state: AppState,
    pub db: Database,
    pub backend: Backend,
    /// The in-process conductor, driven by [`TestApp::settle`].
    pub conductor: magnum_conductor::Conductor,
    /// The fake driver's cloud of this test.
    pub cloud: magnum_conductor::fake_driver::FakeDriver,
    cloud_dir: std::path::PathBuf,
    _testdb: TestDb,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.cloud_dir);
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Assert this is upstream's error body with `status`; the detail comes back.
    pub fn error(&self, status: u16) -> String {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.raw
        );
        let errors = self.body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no errors list: {}", self.raw));
        assert_eq!(errors.len(), 1);
        let e = &errors[0];
        for key in ["request_id", "code", "status", "title", "detail", "links"] {
            assert!(e.get(key).is_some(), "error body lacks {key}: {}", self.raw);
        }
        assert_eq!(e["status"], status);
        e["detail"].as_str().unwrap_or_default().to_string()
    }
}

impl TestApp {
    pub async fn new(backend: Backend) -> TestApp {
        Self::with_config(backend, "").await
    }

    pub async fn with_config(backend: Backend, conf: &str) -> TestApp {
        let conf = Config::parse(conf, "test.conf").expect("test configuration");
        let policy = Enforcer::with_defaults();
        Self::with(backend, conf, policy).await
    }

    pub async fn with(backend: Backend, conf: Config, policy: Enforcer) -> TestApp {
        Self::build(backend, conf, policy, true).await
    }

    /// An API with no way to reach conductors: operations only queue.
    pub async fn without_bus(backend: Backend) -> TestApp {
        Self::without_bus_with_config(backend, "").await
    }

    /// As [`TestApp::without_bus`], with a configuration.
    pub async fn without_bus_with_config(backend: Backend, conf: &str) -> TestApp {
        let conf = Config::parse(conf, "test.conf").expect("test configuration");
        Self::build(backend, conf, Enforcer::with_defaults(), false).await
    }

    /// An API whose cloud lookups (Glance, Nova, Neutron) go to `cloud`.
    pub async fn with_cloud(backend: Backend, cloud: Arc<dyn CloudLookup>) -> TestApp {
        let conf = Config::parse("", "test.conf").expect("test configuration");
        Self::build_with(backend, conf, Enforcer::with_defaults(), true, cloud, true).await
    }

    /// An API where requests without identity headers have none, as
    /// `magnum api` without authentication serves them.
    pub async fn without_default_identity(backend: Backend) -> TestApp {
        let conf = Config::parse("", "test.conf").expect("test configuration");
        let cloud = Arc::new(NoCloud);
        Self::build_with(backend, conf, Enforcer::with_defaults(), true, cloud, false).await
    }

    async fn build(backend: Backend, conf: Config, policy: Enforcer, bus: bool) -> TestApp {
        Self::build_with(backend, conf, policy, bus, Arc::new(NoCloud), true).await
    }

    /// An API whose external drivers' conductors are reached through
    /// `external` (its configuration declares the drivers).
    pub async fn with_external(
        backend: Backend,
        conf: &str,
        external: Arc<dyn magnum_rpc::Client>,
    ) -> TestApp {
        let conf = Config::parse(conf, "test.conf").expect("test configuration");
        let mut app = Self::build(backend, conf, Enforcer::with_defaults(), true).await;
        app.router = router(app.state.clone().with_external(external));
        app
    }

    async fn build_with(
        backend: Backend,
        conf: Config,
        policy: Enforcer,
        bus: bool,
        lookups: Arc<dyn CloudLookup>,
        default_identity: bool,
    ) -> TestApp {
        let testdb = TestDb::create_migrated(backend).await;
        let db = testdb.migrated().await;
        let cloud_dir = std::env::temp_dir().join(format!("magnum-cloud-{}", uuid::Uuid::new_v4()));
        let cloud = magnum_conductor::fake_driver::FakeDriver::new(cloud_dir.clone());
        let drivers = magnum_core::drivers::registry_with(vec![Arc::new(cloud.clone())], &conf);
        let mut settings = magnum_conductor::Settings::from_conf(&conf, "test-conductor");
        settings.grace = 0;
        // Short-lived certificates in the table unless the configuration
        // names a store; ring signs with 2048-bit keys at least.
        let certs = if conf.str("certificates", "cert_manager_type").is_some() {
            magnum_certs::CertManager::from_conf(&conf)
        } else {
            magnum_certs::CertManager::with_settings(magnum_core::x509::X509Settings {
                rsa_key_size: 2048,
                term_of_validity_days: 30,
                ..Default::default()
            })
        };
        let conductor = magnum_conductor::Conductor::new(
            db.clone(),
            drivers.clone(),
            settings,
            magnum_conductor::Notifier::none(),
        )
        .with_certs(certs.clone());
        let client = magnum_rpc::LocalClient::new(Arc::new(conductor.clone()));
        let mut state = AppState::new(
            db.clone(),
            Arc::new(conf),
            Arc::new(policy),
            drivers,
            lookups,
        )
        .with_certs(certs)
        // As all-in-one on a loopback address: `Who::Default` is its admin.
        .with_default_identity(default_identity);
        if bus {
            state = state.with_conductor(Arc::new(client));
        }
        TestApp {
            router: router(state.clone()),
            state,
            db,
            backend,
            conductor,
            cloud,
            cloud_dir,
            _testdb: testdb,
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        who: &Who,
        headers: &[(&str, &str)],
        body: Option<Body>,
    ) -> Resp {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "magnum.test:9511");
        if let Who::User {
            user,
            project,
            roles,
        } = who
        {
            req = req
                .header("X-User-Id", user)
                .header("X-Project-Id", project)
                .header("X-Roles", roles);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let has_body = body.is_some();
        if has_body
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(body.unwrap_or_else(Body::empty)).expect("request");
        let resp = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("router answers");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let raw = String::from_utf8_lossy(&bytes).to_string();
        let body = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&raw).unwrap_or(Value::Null)
        };
        Resp {
            status,
            headers,
            body,
            raw,
        }
    }

    pub async fn get(&self, path: &str, who: &Who) -> Resp {
        self.send(Method::GET, path, who, &[], None).await
    }

    pub async fn post(&self, path: &str, who: &Who, body: Value) -> Resp {
        self.send(
            Method::POST,
            path,
            who,
            &[],
            Some(Body::from(body.to_string())),
        )
        .await
    }

    pub async fn patch(&self, path: &str, who: &Who, body: Value) -> Resp {
        self.send(
            Method::PATCH,
            path,
            who,
            &[],
            Some(Body::from(body.to_string())),
        )
        .await
    }

    pub async fn delete(&self, path: &str, who: &Who) -> Resp {
        self.send(Method::DELETE, path, who, &[], None).await
    }

    /// Create a template as `who`, asserting 201; its body comes back.
    pub async fn create_template(&self, who: &Who, body: Value) -> Value {
        let r = self.post("/v1/clustertemplates", who, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "create failed: {}", r.raw);
        r.body
    }

    /// Cut the fake cloud off (every operation call answers that it is
    /// unreachable) or bring it back.
    pub fn cloud_outage(&self, on: bool) {
        let flag = self.cloud_dir.join("outage");
        if on {
            std::fs::create_dir_all(&self.cloud_dir).unwrap();
            std::fs::write(flag, "").unwrap();
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }

    /// Run the conductor's sweep and status sync until the cluster
    /// reaches `status` (or is gone, for `"gone"`); its full view comes
    /// back. Fails after 30 seconds, naming the status it was stuck in.
    pub async fn settle(&self, cluster: &str, status: &str) -> Value {
        let path = format!("/v1/clusters/{cluster}");
        let mut last = String::new();
        for _ in 0..150 {
            self.conductor.tick().await;
            let r = self.get(&path, &Who::Default).await;
            if status == "gone" && r.status == StatusCode::NOT_FOUND {
                return Value::Null;
            }
            let now = r.body["status"].as_str().unwrap_or_default().to_string();
            if now == status {
                return r.body;
            }
            last = format!("{now}: {}", r.raw);
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        panic!("cluster {cluster} never reached {status}; last seen {last}");
    }

    /// Create a cluster as `who`, asserting 202; its uuid comes back.
    pub async fn create_cluster(&self, who: &Who, body: Value) -> String {
        let r = self
            .send(
                Method::POST,
                "/v1/clusters",
                who,
                &[("OpenStack-API-Version", "container-infra latest")],
                Some(Body::from(body.to_string())),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "create failed: {}", r.raw);
        r.body["uuid"].as_str().unwrap().to_string()
    }

    /// How many templates exist, whoever owns them.
    pub async fn template_count(&self) -> usize {
        let r = self.get("/v1/clustertemplates", &Who::Default).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
        r.body["clustertemplates"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0)
    }
}

/// A Kubernetes template on the fake driver.
pub fn fake_k8s(name: &str) -> Value {
    serde_json::json!({
        "name": name,
        "coe": "kubernetes",
        "image_id": "fedora-coreos",
        "driver": "fake",
        "flavor_id": "m1.small",
        "master_flavor_id": "m1.medium",
        "keypair_id": "kp",
        "docker_volume_size": 5,
        "labels": {"fake_seconds": "0", "kube_tag": "v1.30"},
    })
}

/// A minimal valid Kubernetes template body.
pub fn k8s(name: &str) -> Value {
    serde_json::json!({
        "name": name,
        "coe": "kubernetes",
        "image_id": "ubuntu-22.04",
        "cluster_distro": "ubuntu",
    })
}
