//! The request context: who is asking, in which project, with which roles.
//! The API builds it from the headers Keystone's auth_token middleware sets
//! (or, without authentication, from a default admin identity); policy checks
//! and tenant filters read it.

use serde_json::{json, Value};

/// Identity and scope of one request.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub request_id: String,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    pub domain_id: Option<String>,
    pub user_domain_id: Option<String>,
    pub user_domain_name: Option<String>,
    pub project_domain_id: Option<String>,
    pub roles: Vec<String>,
    /// Whether the `context_is_admin` policy rule holds for these credentials.
    pub is_admin: bool,
    /// Admin listings and lookups span every project (upstream's `all_tenants`).
    pub all_tenants: bool,
}

impl RequestContext {
    /// The credentials oslo.policy evaluates rules against
    /// (`RequestContext.to_policy_values()` upstream).
    pub fn policy_creds(&self) -> Value {
        json!({
            "user_id": self.user_id,
            "user": self.user_id,
            "project_id": self.project_id,
            "tenant": self.project_id,
            "domain_id": self.domain_id,
            "user_domain_id": self.user_domain_id,
            "project_domain_id": self.project_domain_id,
            "roles": self.roles,
            "is_admin": self.is_admin,
            "system_scope": Value::Null,
        })
    }
}
