//! Keystone token validation as keystonemiddleware's `auth_token` does it
//! in front of upstream's API: a caller's `X-Auth-Token` is validated
//! against Keystone v3 (`GET /v3/auth/tokens`) with the service's own
//! credentials from `[keystone_authtoken]`; the token's user, project,
//! domain, roles, system scope and catalog become the request context.
//!
//! Validated tokens are cached for `token_cache_time` seconds (bounded;
//! keyed by the token's SHA-256, so the cache holds no token).
//! `X-Service-Token` is honoured as keystonemiddleware does: a valid
//! service token with a `service_token_roles` role lets an expired user
//! token through (`allow_expired=1`). The HTTP answers (401, 503) are the
//! API's business.

use magnum_core::config::opts;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use magnum_core::config::Config;
use magnum_core::context::Token;
use magnum_core::RequestContext;
use reqwest::StatusCode;
use serde_json::Value;

use crate::{ConfigError, OsError, Session};

/// The most tokens kept in the cache.
const CACHE_MAX: usize = 10_000;

/// Why a request could not be authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    /// No token, or one Keystone refuses: 401.
    #[error("the request carries no valid token")]
    Unauthorized,
    /// Keystone could not be asked: 503.
    #[error("Keystone unavailable")]
    Unavailable(#[source] Unavailable),
}

/// Why Keystone could not be asked about a token.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// The service user has no token.
    #[error("no token of the service user")]
    ServiceToken(#[source] OsError),
    /// The validation request failed, or its answer could not be read.
    #[error("token validation failed")]
    Request(#[source] reqwest::Error),
    /// Keystone answered the validation with an unexpected status.
    #[error("token validation answered {0}")]
    Status(StatusCode),
}

impl From<Unavailable> for AuthFailure {
    fn from(e: Unavailable) -> AuthFailure {
        AuthFailure::Unavailable(e)
    }
}

/// Why Keystone could not say whether a project exists.
#[derive(Debug, thiserror::Error)]
pub enum ProjectLookupError {
    /// Keystone refused the caller's token (401).
    #[error("Keystone refused the caller's token when asked about project {0}")]
    TokenRefused(String),
    /// The caller may not read the project (403).
    #[error("Not authorized to read project {0}")]
    Forbidden(String),
    /// The identity URL is not one.
    #[error("the identity URL is not a URL")]
    InvalidUrl(#[source] url::ParseError),
    /// The identity URL cannot name a project.
    #[error("the identity URL cannot take a path")]
    Url,
    /// The request failed.
    #[error("the request failed")]
    Request(#[source] reqwest::Error),
    /// An unexpected status.
    #[error("it answered {0}")]
    Status(u16),
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
    service: Session,
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
    pub fn from_conf(conf: &Config) -> Result<Keystone, ConfigError> {
        let s = |k: &str| conf.str("keystone_authtoken", k).filter(|v| !v.is_empty());
        let service = Session::from_section(conf, "keystone_authtoken")?;
        if s("project_name").is_none() && s("project_id").is_none() {
            return Err(ConfigError::missing("keystone_authtoken", "project_name"));
        }
        let auth_url = s("auth_url").unwrap_or_default();
        let www = s("www_authenticate_uri")
            .or_else(|| s("auth_uri"))
            .unwrap_or_else(|| auth_url.clone());
        let ttl = conf
            .get(opts::keystone_authtoken::TOKEN_CACHE_TIME)
            .unwrap_or(300);
        Ok(Keystone {
            http: service.http().clone(),
            identity: service.identity_url().to_string(),
            www_authenticate: www,
            service,
            cache: Mutex::new(HashMap::new()),
            ttl: (ttl >= 0).then(|| Duration::from_secs(ttl as u64)),
            service_roles: conf.get(opts::keystone_authtoken::SERVICE_TOKEN_ROLES),
            service_roles_required: conf
                .get(opts::keystone_authtoken::SERVICE_TOKEN_ROLES_REQUIRED),
        })
    }

    /// The identity API (`…/v3`).
    pub fn identity_url(&self) -> &str {
        &self.identity
    }

    /// Where callers are told to authenticate (`www_authenticate_uri`).
    pub fn www_authenticate(&self) -> &str {
        &self.www_authenticate
    }

    /// The HTTP client (shared with cloud lookups).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A token of the service user, fetched (and refreshed before it
    /// expires) with password authentication.
    pub async fn service_token(&self, refresh: bool) -> Result<Token, Unavailable> {
        if refresh {
            self.service.invalidate().await;
        }
        self.service
            .token()
            .await
            .map_err(Unavailable::ServiceToken)
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
                .map_err(Unavailable::Request)?;
            match resp.status() {
                s if s.is_success() => {
                    let data: Value = resp.json().await.map_err(Unavailable::Request)?;
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
                s => return Err(Unavailable::Status(s).into()),
            }
        }
        Err(AuthFailure::Unauthorized)
    }

    /// Whether Keystone knows the project `project_id`, asked with the
    /// caller's own token, as upstream's `_validate_project_id` does
    /// (`GET /v3/projects/{id}` through a session made of the request's
    /// token). 404 is `Ok(false)`.
    pub async fn project_exists(
        &self,
        token: &Token,
        project_id: &str,
    ) -> Result<bool, ProjectLookupError> {
        let mut url = url::Url::parse(&self.identity).map_err(ProjectLookupError::InvalidUrl)?;
        url.path_segments_mut()
            .map_err(|()| ProjectLookupError::Url)?
            .pop_if_empty()
            .extend(["projects", project_id]);
        let resp = self
            .http
            .get(url)
            .header("X-Auth-Token", token.expose())
            .send()
            .await
            .map_err(ProjectLookupError::Request)?;
        match resp.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            401 => Err(ProjectLookupError::TokenRefused(project_id.to_string())),
            403 => Err(ProjectLookupError::Forbidden(project_id.to_string())),
            s => Err(ProjectLookupError::Status(s)),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn a_failure_names_each_cause_once() {
        let e = AuthFailure::from(Unavailable::Status(StatusCode::BAD_GATEWAY));
        assert_eq!(
            crate::Chain(&e).to_string(),
            "Keystone unavailable: token validation answered 502 Bad Gateway"
        );
        let e = AuthFailure::from(Unavailable::ServiceToken(OsError::Unauthorized(
            "401 Unauthorized".into(),
        )));
        assert_eq!(
            crate::Chain(&e).to_string(),
            "Keystone unavailable: no token of the service user: \
             Keystone refused authentication (401 Unauthorized)"
        );
    }
}
