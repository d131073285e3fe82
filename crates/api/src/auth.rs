//! Keystone authentication (`[DEFAULT] auth_strategy = keystone`), doing
//! what keystonemiddleware's `auth_token` does in front of upstream's API:
//! every request but the public routes (`/`, `/v1`) carries
//! `X-Auth-Token`, validated against Keystone v3 with the service's own
//! credentials from `[keystone_authtoken]`; the request context gets the
//! token's user, project, domain, roles, system scope and catalog.
//!
//! Validated tokens are cached for `token_cache_time` seconds (bounded;
//! keyed by the token's SHA-256, so the cache holds no token). A missing,
//! bad, expired or revoked token is 401 with `WWW-Authenticate: Keystone
//! uri="…"`; when Keystone cannot be reached the answer is 503.
//! `X-Service-Token` is honoured as keystonemiddleware does: a valid service
//! token with a `service_token_roles` role lets an expired user token
//! through.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use magnum_core::config::Config;
use magnum_core::context::Token;
use magnum_core::RequestContext;
use serde_json::{json, Value};

use crate::AppState;

/// The most tokens kept in the cache.
const CACHE_MAX: usize = 10_000;

/// Why a request could not be authenticated.
#[derive(Debug)]
pub enum AuthFailure {
    /// No token, or one Keystone refuses: 401.
    Unauthorized,
    /// Keystone could not be asked: 503.
    Unavailable(String),
}

/// A validated token: who, where, until when.
#[derive(Clone, Debug)]
pub struct Identity {
    pub context: RequestContext,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

struct Cached {
    identity: Identity,
    at: Instant,
}

/// Validates tokens with Keystone.
pub struct Keystone {
    http: reqwest::Client,
    /// The identity API, ending in `/v3`.
    identity: String,
    www_authenticate: String,
    /// The service's own session (`[keystone_authtoken]`).
    service: magnum_openstack::Session,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    ttl: Option<Duration>,
    service_roles: Vec<String>,
    service_roles_required: bool,
}

impl std::fmt::Debug for Keystone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystone")
            .field("identity", &self.identity)
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn text(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str().map(str::to_string)
}

fn expiry(token: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    text(token, &["expires_at"])
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// The request context a Keystone v3 token body describes.
pub fn context_of(token: &Value, raw: &str) -> RequestContext {
    let roles = token["roles"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let system_scope = token
        .get("system")
        .and_then(|s| s.get("all"))
        .and_then(Value::as_bool)
        .filter(|all| *all)
        .map(|_| "all".to_string());
    RequestContext {
        user_id: text(token, &["user", "id"]),
        user_name: text(token, &["user", "name"]),
        user_domain_id: text(token, &["user", "domain", "id"]),
        user_domain_name: text(token, &["user", "domain", "name"]),
        project_id: text(token, &["project", "id"]),
        project_name: text(token, &["project", "name"]),
        project_domain_id: text(token, &["project", "domain", "id"]),
        domain_id: text(token, &["domain", "id"]),
        roles,
        system_scope,
        auth_token: Some(Token::new(raw)),
        catalog: token.get("catalog").cloned().map(Arc::new),
        ..Default::default()
    }
}

impl Keystone {
    /// The validator `[keystone_authtoken]` describes.
    pub fn from_conf(conf: &Config) -> anyhow_like::Result<Keystone> {
        let s = |k: &str| conf.str("keystone_authtoken", k).filter(|v| !v.is_empty());
        let service = magnum_openstack::Session::from_section(conf, "keystone_authtoken")?;
        if s("project_name").is_none() && s("project_id").is_none() {
            return Err("[keystone_authtoken] project_name is not set".into());
        }
        let auth_url = s("auth_url").unwrap_or_default();
        let www = s("www_authenticate_uri")
            .or_else(|| s("auth_uri"))
            .unwrap_or_else(|| auth_url.clone());
        let ttl = conf
            .int("keystone_authtoken", "token_cache_time")
            .unwrap_or(300);
        Ok(Keystone {
            http: service.http().clone(),
            identity: service.identity_url().to_string(),
            www_authenticate: www,
            service,
            cache: Mutex::new(HashMap::new()),
            ttl: (ttl >= 0).then(|| Duration::from_secs(ttl as u64)),
            service_roles: conf.list("keystone_authtoken", "service_token_roles"),
            service_roles_required: conf.bool("keystone_authtoken", "service_token_roles_required"),
        })
    }

    /// The identity API (`…/v3`).
    pub fn identity_url(&self) -> &str {
        &self.identity
    }

    /// The HTTP client (shared with cloud lookups).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn unavailable(e: impl std::fmt::Display) -> AuthFailure {
        AuthFailure::Unavailable(e.to_string())
    }

    /// A token of the service user, fetched (and refreshed before it
    /// expires) with password authentication.
    pub async fn service_token(&self, refresh: bool) -> Result<Token, AuthFailure> {
        if refresh {
            self.service.invalidate().await;
        }
        self.service.token().await.map_err(Self::unavailable)
    }

    fn cached(&self, key: &[u8; 32], allow_expired: bool) -> Option<Identity> {
        let ttl = self.ttl?;
        let mut cache = self.cache.lock().ok()?;
        let hit = cache.get(key)?;
        let fresh = hit.at.elapsed() < ttl;
        let live = allow_expired
            || hit
                .identity
                .expires_at
                .is_none_or(|t| t > chrono::Utc::now());
        if fresh && live {
            return Some(hit.identity.clone());
        }
        cache.remove(key);
        None
    }

    fn remember(&self, key: [u8; 32], identity: &Identity) {
        if self.ttl.is_none() {
            return;
        }
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_MAX {
                let ttl = self.ttl.unwrap_or_default();
                cache.retain(|_, c| c.at.elapsed() < ttl);
                if cache.len() >= CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(
                key,
                Cached {
                    identity: identity.clone(),
                    at: Instant::now(),
                },
            );
        }
    }

    /// Validate `token`; expired tokens pass only with `allow_expired`.
    pub async fn validate(
        &self,
        token: &str,
        allow_expired: bool,
    ) -> Result<Identity, AuthFailure> {
        if token.is_empty() || token.len() > 8192 {
            return Err(AuthFailure::Unauthorized);
        }
        let key = digest(token);
        if let Some(hit) = self.cached(&key, allow_expired) {
            return Ok(hit);
        }
        let mut refresh = false;
        for _ in 0..2 {
            let service = self.service_token(refresh).await?;
            let mut url = format!("{}/auth/tokens", self.identity);
            if allow_expired {
                url.push_str("?allow_expired=1");
            }
            let resp = self
                .http
                .get(&url)
                .header("X-Auth-Token", service.expose())
                .header("X-Subject-Token", token)
                .send()
                .await
                .map_err(Self::unavailable)?;
            match resp.status() {
                s if s.is_success() => {
                    let data: Value = resp.json().await.map_err(Self::unavailable)?;
                    let t = &data["token"];
                    let identity = Identity {
                        context: context_of(t, token),
                        expires_at: expiry(t),
                    };
                    self.remember(key, &identity);
                    return Ok(identity);
                }
                // Our own token was refused: fetch a new one and retry once.
                StatusCode::UNAUTHORIZED if !refresh => refresh = true,
                StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(AuthFailure::Unauthorized)
                }
                s => {
                    return Err(AuthFailure::Unavailable(format!(
                        "token validation answered {s}"
                    )))
                }
            }
        }
        Err(AuthFailure::Unauthorized)
    }

    /// Whether Keystone knows the project `project_id`, asked with the
    /// caller's own token, as upstream's `_validate_project_id` does
    /// (`GET /v3/projects/{id}` through a session made of the request's
    /// token). 404 is `Ok(false)`; a refused token is a 500 (upstream's
    /// openstacksdk error carries no code Magnum knows), a refused read
    /// 403, an unreachable or failing Keystone 503.
    pub async fn project_exists(
        &self,
        token: &Token,
        project_id: &str,
    ) -> Result<bool, magnum_core::MagnumError> {
        use magnum_core::MagnumError;
        let unreachable = |e: &dyn std::fmt::Display| {
            tracing::warn!("cannot ask Keystone about project {project_id}: {e}");
            MagnumError::ServiceUnavailable(
                "The identity service could not be reached; try again later.".into(),
            )
        };
        let mut url = url::Url::parse(&self.identity).map_err(|e| unreachable(&e))?;
        url.path_segments_mut()
            .map_err(|()| unreachable(&"the identity URL cannot take a path"))?
            .pop_if_empty()
            .extend(["projects", project_id]);
        let resp = self
            .http
            .get(url)
            .header("X-Auth-Token", token.expose())
            .send()
            .await
            .map_err(|e| unreachable(&e))?;
        match resp.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            401 => Err(MagnumError::Internal(format!(
                "Keystone refused the caller's token when asked about project {project_id}"
            ))),
            403 => Err(MagnumError::NotAuthorized(format!(
                "Not authorized to read project {project_id}"
            ))),
            s => Err(unreachable(&format!("it answered {s}"))),
        }
    }

    /// keystonemiddleware's decision for one request's headers.
    pub async fn authenticate(
        &self,
        user_token: Option<&str>,
        service_token: Option<&str>,
    ) -> Result<Identity, AuthFailure> {
        let mut allow_expired = false;
        if let Some(st) = service_token {
            let valid = match self.validate(st, false).await {
                Ok(svc) => {
                    let role_ok = svc
                        .context
                        .roles
                        .iter()
                        .any(|r| self.service_roles.contains(r));
                    allow_expired = role_ok;
                    !self.service_roles_required || role_ok
                }
                Err(AuthFailure::Unauthorized) => false,
                Err(e) => return Err(e),
            };
            if !valid {
                return Err(AuthFailure::Unauthorized);
            }
        }
        let Some(token) = user_token else {
            return Err(AuthFailure::Unauthorized);
        };
        self.validate(token, allow_expired).await
    }

    /// The 401 answer (keystonemiddleware's body and header).
    pub fn unauthorized(&self) -> Response {
        let body = json!({"error": {
            "code": 401,
            "title": "Unauthorized",
            "message": "The request you have made requires authentication.",
        }});
        let mut resp = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("Keystone uri=\"{}\"", self.www_authenticate))
        {
            resp.headers_mut().insert("WWW-Authenticate", v);
        }
        resp
    }
}

/// A tiny error alias so `from_conf` can say what is missing.
pub mod anyhow_like {
    pub type Result<T> = std::result::Result<T, String>;
}

/// The 503 answer when Keystone cannot be reached.
fn unavailable() -> Response {
    let body = json!({"error": {
        "code": 503,
        "title": "Service Unavailable",
        "message": "The Keystone service is temporarily unavailable.",
    }});
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Whether a path is public (upstream's `acl_public_routes = /, /v1`).
fn public(path: &str) -> bool {
    let p = path.trim_end_matches('/').trim_end_matches(".json");
    p.is_empty() || p == "/v1"
}

/// The middleware: authenticate, or answer 401/503.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let crate::AuthMode::Keystone(ks) = &state.auth else {
        return next.run(req).await;
    };
    if public(req.uri().path()) {
        return next.run(req).await;
    }
    let user = header(&req, "X-Auth-Token").map(str::to_string);
    let service = header(&req, "X-Service-Token").map(str::to_string);
    match ks.authenticate(user.as_deref(), service.as_deref()).await {
        Ok(identity) => {
            req.extensions_mut().insert(identity);
            let resp: Response<Body> = next.run(req).await;
            resp
        }
        Err(AuthFailure::Unauthorized) => {
            tracing::info!("rejecting request without a valid token");
            ks.unauthorized()
        }
        Err(AuthFailure::Unavailable(why)) => {
            tracing::error!("cannot validate tokens: Keystone unavailable: {why}");
            unavailable()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_routes_are_the_roots_only() {
        for p in ["/", "/v1", "/v1/", "/v1.json"] {
            assert!(public(p), "{p}");
        }
        for p in ["/v1/clusters", "/v2", "/v1/mservices"] {
            assert!(!public(p), "{p}");
        }
        assert_eq!(
            magnum_openstack::identity_url("http://k:5000"),
            "http://k:5000/v3"
        );
        assert_eq!(
            magnum_openstack::identity_url("http://k:5000/v3/"),
            "http://k:5000/v3"
        );
    }

    #[test]
    fn a_token_becomes_a_context_without_showing_the_token() {
        let body = json!({
            "user": {"id": "u1", "name": "alice", "domain": {"id": "default", "name": "Default"}},
            "project": {"id": "p1", "name": "proj", "domain": {"id": "default"}},
            "roles": [{"id": "r1", "name": "member"}, {"id": "r2", "name": "reader"}],
            "catalog": [{"type": "image", "endpoints": []}],
            "expires_at": "2030-01-01T00:00:00.000000Z",
        });
        let c = context_of(&body, "secret-token");
        assert_eq!(c.user_id.as_deref(), Some("u1"));
        assert_eq!(c.project_id.as_deref(), Some("p1"));
        assert_eq!(c.user_domain_name.as_deref(), Some("Default"));
        assert_eq!(c.roles, ["member", "reader"]);
        assert!(c.catalog.is_some());
        assert_eq!(c.system_scope, None);
        assert!(!format!("{c:?}").contains("secret-token"));
        assert!(expiry(&body).is_some());
        let sys = json!({"user": {"id": "u"}, "system": {"all": true}, "roles": []});
        assert_eq!(context_of(&sys, "t").system_scope.as_deref(), Some("all"));
    }
}
