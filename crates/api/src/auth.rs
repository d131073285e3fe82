//! Keystone authentication (`[DEFAULT] auth_strategy = keystone`), doing
//! what keystonemiddleware's `auth_token` does in front of upstream's API:
//! every request but the public routes (`/`, `/v1`) carries
//! `X-Auth-Token`, validated by [`Keystone`] (`magnum-openstack`: the
//! token cache, service tokens, `allow_expired`); the request context gets
//! the token's user, project, domain, roles, system scope and catalog.
//!
//! A missing, bad, expired or revoked token is 401 with `WWW-Authenticate:
//! Keystone uri="…"`; when Keystone cannot be reached the answer is 503.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use magnum_core::context::Token;
use magnum_core::MagnumError;
use magnum_openstack::keystone::ProjectLookupError;
use magnum_openstack::Chain;
use serde_json::json;

pub use magnum_openstack::keystone::{context_of, AuthFailure, Identity, Keystone};

use crate::AppState;

/// Whether Keystone knows the project `project_id`, asked with the
/// caller's own token, as upstream's `_validate_project_id` does. 404 is
/// `Ok(false)`; a refused token is a 500 (upstream's openstacksdk error
/// carries no code Magnum knows), a refused read 403, an unreachable or
/// failing Keystone 503.
pub async fn project_exists(
    ks: &Keystone,
    token: &Token,
    project_id: &str,
) -> Result<bool, MagnumError> {
    ks.project_exists(token, project_id)
        .await
        .map_err(|e| match e {
            ProjectLookupError::TokenRefused(_) => MagnumError::Internal(e.to_string()),
            ProjectLookupError::Forbidden(_) => MagnumError::NotAuthorized(e.to_string()),
            other => {
                tracing::warn!(
                    "cannot ask Keystone about project {project_id}: {}",
                    Chain(&other)
                );
                MagnumError::ServiceUnavailable(
                    "The identity service could not be reached; try again later.".into(),
                )
            }
        })
}

/// The 401 answer (keystonemiddleware's body and header).
pub fn unauthorized(ks: &Keystone) -> Response {
    let body = json!({"error": {
        "code": 401,
        "title": "Unauthorized",
        "message": "The request you have made requires authentication.",
    }});
    let mut resp = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("Keystone uri=\"{}\"", ks.www_authenticate())) {
        resp.headers_mut().insert("WWW-Authenticate", v);
    }
    resp
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
            unauthorized(ks)
        }
        Err(e @ AuthFailure::Unavailable(_)) => {
            tracing::error!("cannot validate tokens: {}", Chain(&e));
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
}
