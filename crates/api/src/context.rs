//! Building the [`RequestContext`] of a request.
//!
//! Without authentication the identity comes from the headers Keystone's
//! auth_token middleware would set (`X-User-Id`, `X-Project-Id`, `X-Roles`,
//! …). A request carrying none of them has no identity, so the policy
//! refuses it as upstream's does; except against `all-in-one` on a loopback
//! address (`AppState::default_identity`), where it acts as an admin of a
//! default project, so a newcomer's first commands just work. Whether the
//! caller is an admin is the `context_is_admin` policy rule.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use magnum_core::RequestContext;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::request::RequestId;
use crate::version::{Feature, Version, MIN_VERSION};
use crate::AppState;

/// The identity a request without identity headers acts as.
pub const DEFAULT_PROJECT_ID: &str = "default";
pub const DEFAULT_USER_ID: &str = "admin";

/// The context of the request being served, with its microversion.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub context: RequestContext,
    pub version: Version,
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

const IDENTITY_HEADERS: [&str; 4] = ["X-User-Id", "X-Project-Id", "X-Roles", "X-User-Name"];

/// The context the identity headers describe (no authentication); with
/// none of them, the default admin when `default_identity` holds.
pub fn from_headers(
    headers: &HeaderMap,
    request_id: String,
    default_identity: bool,
) -> RequestContext {
    if default_identity && !IDENTITY_HEADERS.iter().any(|h| headers.contains_key(*h)) {
        return RequestContext {
            request_id,
            user_id: Some(DEFAULT_USER_ID.into()),
            user_name: Some(DEFAULT_USER_ID.into()),
            project_id: Some(DEFAULT_PROJECT_ID.into()),
            project_name: Some(DEFAULT_PROJECT_ID.into()),
            roles: vec!["admin".into(), "member".into(), "reader".into()],
            ..Default::default()
        };
    }
    let roles = header(headers, "X-Roles")
        .map(|r| {
            r.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    RequestContext {
        request_id,
        user_id: header(headers, "X-User-Id"),
        user_name: header(headers, "X-User-Name"),
        project_id: header(headers, "X-Project-Id"),
        project_name: header(headers, "X-Project-Name"),
        domain_id: header(headers, "X-Domain-Id"),
        user_domain_id: header(headers, "X-User-Domain-Id"),
        user_domain_name: header(headers, "X-User-Domain-Name"),
        project_domain_id: header(headers, "X-Project-Domain-Id"),
        roles,
        ..Default::default()
    }
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let mut context = match &state.auth {
            crate::AuthMode::NoAuth => {
                from_headers(&parts.headers, request_id, state.default_identity)
            }
            crate::AuthMode::Keystone(_) => {
                // The middleware put it there; without it, nobody passed.
                let identity =
                    parts
                        .extensions
                        .get::<crate::auth::Identity>()
                        .ok_or_else(|| {
                            magnum_core::MagnumError::NotAuthorized("Not authorized.".into())
                        })?;
                let mut c = identity.context.clone();
                c.request_id = request_id;
                c
            }
        };
        context.is_admin = state
            .policy
            .enforce("context_is_admin", &json!({}), &context.policy_creds())
            .unwrap_or(false);
        let version = parts
            .extensions
            .get::<Version>()
            .copied()
            .unwrap_or(MIN_VERSION);
        Ok(Ctx { context, version })
    }
}

impl Ctx {
    /// Whether the request's microversion has `feature`.
    pub fn has(&self, feature: Feature) -> bool {
        self.version >= feature.since()
    }

    /// Upstream's 406 for `api` (the method's name in its message) when the
    /// request's microversion lacks `feature`.
    pub fn require(&self, feature: Feature, api: &'static str) -> Result<(), ApiError> {
        if self.has(feature) {
            return Ok(());
        }
        Err(ApiError::NotInVersion {
            version: self.version.to_string(),
            api,
        })
    }

    /// Upstream's widening for admins: an admin reads and acts across
    /// projects, once `rule` (an `*_all_projects` policy) allows it for
    /// them; others stay in their project.
    pub fn all_projects_if_admin(&mut self, state: &AppState, rule: &str) -> Result<(), ApiError> {
        if self.context.is_admin {
            self.enforce(state, rule, &self.own_target())?;
            self.context.all_tenants = true;
        }
        Ok(())
    }

    /// Enforce a policy rule against a target; 403 when it does not hold.
    pub fn enforce(&self, state: &AppState, action: &str, target: &Value) -> Result<(), ApiError> {
        if self.allows(state, action, target) {
            Ok(())
        } else {
            Err(magnum_core::MagnumError::PolicyNotAuthorized(action.to_string()).into())
        }
    }

    /// Whether a policy rule holds (an unknown rule does not).
    pub fn allows(&self, state: &AppState, action: &str, target: &Value) -> bool {
        match state
            .policy
            .enforce(action, target, &self.context.policy_creds())
        {
            Ok(allowed) => allowed,
            Err(e) => {
                tracing::error!("policy check {action} failed: {e}");
                false
            }
        }
    }

    /// The policy target for a request that names no object: the caller's
    /// own project and user, as upstream's default target.
    pub fn own_target(&self) -> Value {
        json!({
            "project_id": self.context.project_id,
            "user_id": self.context.user_id,
        })
    }
}
