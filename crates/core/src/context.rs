//! The request context: who is asking, in which project, with which roles.
//! The API builds it from the headers Keystone's auth_token middleware sets
//! (or, without authentication, from a default admin identity); policy checks
//! and tenant filters read it.

use serde_json::{json, Value};

/// A bearer token: shown as `****` by `Debug`, so it never reaches a log.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Self {
        Token(token.into())
    }
    /// The token itself, for the one header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("****")
    }
}

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
    /// `all` for a system-scoped token.
    pub system_scope: Option<String>,
    /// The caller's token (Keystone mode), for calls made on its behalf.
    pub auth_token: Option<Token>,
    /// The service catalog of the caller's token (Keystone mode).
    pub catalog: Option<std::sync::Arc<Value>>,
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
            "system_scope": self.system_scope,
        })
    }

    /// The context as oslo.messaging carries it (upstream's
    /// `RequestContext.to_dict()` keys). No token: none is kept here.
    pub fn to_wire(&self) -> serde_json::Map<String, Value> {
        let v = json!({
            "auth_token": Value::Null,
            "auth_url": Value::Null,
            "auth_token_info": Value::Null,
            "domain_id": self.domain_id,
            "domain_name": Value::Null,
            "user_name": self.user_name,
            "user_id": self.user_id,
            "user_domain_id": self.user_domain_id,
            "user_domain_name": self.user_domain_name,
            "project_name": self.project_name,
            "project_id": self.project_id,
            "roles": self.roles,
            "is_admin": self.is_admin,
            "read_only": false,
            "show_deleted": false,
            "request_id": self.request_id,
            "all_tenants": self.all_tenants,
            "trust_id": Value::Null,
            "password": Value::Null,
        });
        match v {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        }
    }

    /// A context from its wire form (missing keys stay empty).
    pub fn from_wire(m: &serde_json::Map<String, Value>) -> Self {
        let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        RequestContext {
            request_id: s("request_id").unwrap_or_default(),
            user_id: s("user_id").or_else(|| s("user")),
            user_name: s("user_name"),
            project_id: s("project_id").or_else(|| s("tenant")),
            project_name: s("project_name"),
            domain_id: s("domain_id"),
            user_domain_id: s("user_domain_id"),
            user_domain_name: s("user_domain_name"),
            project_domain_id: s("project_domain_id"),
            roles: m
                .get("roles")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            is_admin: m.get("is_admin").and_then(Value::as_bool).unwrap_or(false),
            all_tenants: m
                .get("all_tenants")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            system_scope: s("system_scope"),
            ..Default::default()
        }
    }
}
