//! The Magnum v1 REST API.
//!
//! Handlers are thin: extract and validate the request, check policy, call
//! the database or the conductor, render the view. The framework pieces —
//! request ids, microversions, the request context, the error body,
//! pagination and JSON-patch — live in their own modules and are shared by
//! every resource.

pub mod auth;
pub mod certificates;
pub mod cluster_ops;
pub mod cluster_templates;
pub mod clusters;
pub mod conduct;
pub mod context;
pub mod credentials;
pub mod error;
pub mod events;
pub mod federations;
pub mod fields;
pub mod find;
pub mod links;
pub mod nodegroups;
pub mod pagination;
pub mod patch;
pub mod pyliteral;
pub mod quotas;
pub mod request;
pub mod root;
pub mod service;
pub mod services;
pub mod version;

use magnum_core::config::opts;
use std::sync::Arc;

use axum::extract::Request;
use axum::routing::get;
use axum::Router;
use magnum_core::cloud::CloudLookup;
use magnum_core::config::Config;
use magnum_core::drivers::DriverRegistry;
use magnum_core::policy::Enforcer;
use magnum_db::Database;

pub use error::{ApiError, ApiResult};

/// How callers are identified.
#[derive(Debug, Clone)]
pub enum AuthMode {
    /// No authentication: identity comes from the `X-*` headers a Keystone
    /// middleware would set. A request with none has no identity, and the
    /// policy refuses it (403), as upstream without its Keystone filter
    /// does; unless [`AppState::default_identity`] is on.
    NoAuth,
    /// Tokens validated by Keystone (`auth::Keystone`).
    Keystone(Arc<auth::Keystone>),
}

/// What every handler can reach: one shared [`Shared`], so the clones axum
/// makes for each request's middleware and extractors are one reference
/// count each (a clone of the fields themselves copied the pool's name and
/// the driver list, a tenth of a `GET /`'s instructions).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
#[derive(Clone)]
pub struct Shared {
    pub db: Database,
    pub conf: Arc<Config>,
    pub policy: Arc<Enforcer>,
    pub drivers: DriverRegistry,
    pub cloud: Arc<dyn CloudLookup>,
    pub auth: AuthMode,
    /// Without authentication, a request with no identity headers acts as
    /// an admin of project `default` (`context::DEFAULT_PROJECT_ID`): only
    /// for all-in-one listening on a loopback address.
    pub default_identity: bool,
    /// `[api] max_limit`.
    pub max_limit: u64,
    /// `[oslo_middleware] max_request_body_size`.
    pub max_body: usize,
    /// `[api] body_read_timeout`: how long a request's body may take to
    /// arrive once the handler reads it.
    pub body_timeout: std::time::Duration,
    /// How operations reach conductors. `None`: no bus; queued operations
    /// wait for a conductor's sweep.
    pub conductor: Option<Arc<dyn magnum_rpc::Client>>,
    /// How the operations of clusters of external drivers reach the
    /// conductors that run them (`[drivers] external_topic`); `None`: no
    /// bus, and such operations are refused.
    pub external: Option<Arc<dyn magnum_rpc::Client>>,
    /// Makes each new cluster's Keystone trust (Keystone mode with `[trust]`).
    pub trusts: Option<Arc<magnum_openstack::trusts::TrustManager>>,
    /// Cluster certificates (`[certificates]`, `[x509]`).
    pub certs: Arc<magnum_certs::CertManager>,
    /// Rows that list pages may hold at once ([`PAGES_IN_FLIGHT`] pages of
    /// `max_limit`): a page takes as many permits as its limit before it
    /// reads, so a burst of large pages waits its turn instead of holding
    /// all their rows and answers in memory at once.
    pub rows_in_flight: Arc<tokio::sync::Semaphore>,
}

/// How many pages of `[api] max_limit` rows are read and rendered at once.
pub const PAGES_IN_FLIGHT: u64 = 4;

impl AppState {
    pub fn new(
        db: Database,
        conf: Arc<Config>,
        policy: Arc<Enforcer>,
        drivers: DriverRegistry,
        cloud: Arc<dyn CloudLookup>,
    ) -> Self {
        let max_limit = conf.get(opts::api::MAX_LIMIT).unwrap_or(1000).max(1) as u64;
        let max_body = conf
            .get(opts::oslo_middleware::MAX_REQUEST_BODY_SIZE)
            .unwrap_or(114_688)
            .max(0) as usize;
        let body_timeout = std::time::Duration::from_secs(
            conf.get(opts::api::BODY_READ_TIMEOUT).unwrap_or(30).max(1) as u64,
        );
        AppState(Arc::new(Shared {
            db,
            conf,
            policy,
            drivers,
            cloud,
            auth: AuthMode::NoAuth,
            default_identity: false,
            max_limit,
            max_body,
            body_timeout,
            conductor: None,
            external: None,
            trusts: None,
            certs: Arc::new(magnum_certs::CertManager::with_settings(Default::default())),
            rows_in_flight: Arc::new(tokio::sync::Semaphore::new(
                (max_limit * PAGES_IN_FLIGHT).min(u64::from(u32::MAX)) as usize,
            )),
        }))
    }

    /// The fields, to set while the state is being built.
    fn fields(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }

    /// Wait until a page of `limit` rows may be read (see
    /// [`AppState::rows_in_flight`]); the permit lasts until it is dropped.
    pub async fn page_permit(&self, limit: u64) -> tokio::sync::OwnedSemaphorePermit {
        let n = limit.clamp(1, self.max_limit) as u32;
        self.rows_in_flight
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("the page semaphore is never closed")
    }

    /// Authenticate callers with Keystone.
    pub fn with_keystone(mut self, keystone: Arc<auth::Keystone>) -> Self {
        self.fields().auth = AuthMode::Keystone(keystone);
        self
    }

    /// Let requests without identity headers act as the default admin
    /// (see [`AppState::default_identity`]).
    pub fn with_default_identity(mut self, on: bool) -> Self {
        self.fields().default_identity = on;
        self
    }

    /// Keep cluster certificates with `certs`.
    pub fn with_certs(mut self, certs: magnum_certs::CertManager) -> Self {
        self.fields().certs = Arc::new(certs);
        self
    }

    /// Make cluster trusts with `trusts`.
    pub fn with_trusts(mut self, trusts: Option<magnum_openstack::trusts::TrustManager>) -> Self {
        self.fields().trusts = trusts.map(Arc::new);
        self
    }

    /// Send operations to conductors through `client`.
    pub fn with_conductor(mut self, client: Arc<dyn magnum_rpc::Client>) -> Self {
        self.fields().conductor = Some(client);
        self
    }

    /// Send the operations of external drivers' clusters through `client`.
    pub fn with_external(mut self, client: Arc<dyn magnum_rpc::Client>) -> Self {
        self.fields().external = Some(client);
        self
    }
}

/// The API as a service: the router behind path normalisation.
pub type App = tower::util::MapRequest<Router, fn(Request) -> Request>;

/// The path as upstream's stack routes it: repeated slashes are one
/// (paste's URLMap in front of upstream's app collapses them, so
/// `/v1//clustertemplates` is `/v1/clustertemplates`), and a trailing slash
/// is dropped (`/v1/clustertemplates/` is `/v1/clustertemplates`, as pecan
/// treats it). `None` when the path is already so.
fn normalised_path(path: &str) -> Option<String> {
    let trailing = path.len() > 1 && path.ends_with('/');
    if !trailing && !path.contains("//") {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    if out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    Some(out)
}

/// Route the request by its [`normalised_path`].
fn normalise_path(mut request: Request) -> Request {
    if let Some(path) = normalised_path(request.uri().path()) {
        let rebuilt = match request.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        if let Ok(uri) = rebuilt.parse() {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// The whole API.
pub fn router(state: AppState) -> App {
    tower::ServiceExt::map_request(routes(state), normalise_path as fn(Request) -> Request)
}

fn routes(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/", get(root::v1))
        .merge(cluster_templates::routes())
        .merge(clusters::routes())
        .merge(events::routes())
        .merge(nodegroups::routes())
        .merge(services::routes())
        .merge(quotas::routes())
        .merge(credentials::routes())
        .merge(certificates::routes())
        .merge(federations::routes())
        .fallback(request::not_found)
        .method_not_allowed_fallback(request::method_not_allowed)
        .layer(axum::middleware::from_fn(version::negotiate));
    Router::new()
        .route("/", get(root::root))
        .nest("/v1", v1)
        .fallback(request::not_found)
        .method_not_allowed_fallback(request::method_not_allowed)
        .layer(axum::middleware::from_fn(request::utf8_url))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn(request::request_id))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::normalised_path;

    #[test]
    fn paths_are_normalised_as_upstream_routes_them() {
        assert_eq!(normalised_path("/v1/clusters"), None);
        assert_eq!(normalised_path("/"), None);
        assert_eq!(normalised_path("//"), Some("/".into()));
        assert_eq!(
            normalised_path("/v1//clustertemplates"),
            Some("/v1/clustertemplates".into())
        );
        assert_eq!(
            normalised_path("//v1///clusters//x//"),
            Some("/v1/clusters/x".into())
        );
        assert_eq!(
            normalised_path("/v1/clusters/"),
            Some("/v1/clusters".into())
        );
    }
}
