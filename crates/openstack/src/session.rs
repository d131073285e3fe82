//! A Keystone session: one identity, its token and its catalog.

use std::time::Duration;

use magnum_core::config::Config;
use magnum_core::context::Token;
use serde_json::{json, Value};

use crate::OsError;

/// Who a session authenticates as.
#[derive(Clone)]
pub enum Credential {
    /// Password authentication, scoped to a project (or unscoped).
    Password {
        user: Value,
        password: String,
        scope: Option<Value>,
    },
    /// A trustee acting through a trust (impersonating its trustor).
    Trust {
        user_id: String,
        password: String,
        trust_id: String,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Password { user, .. } => write!(f, "Password({user}, ****)"),
            Credential::Trust {
                user_id, trust_id, ..
            } => write!(f, "Trust({user_id} via {trust_id}, ****)"),
        }
    }
}

struct Held {
    token: Token,
    /// When to fetch a new one: a minute before it expires, or after three
    /// quarters of its life for short-lived tokens.
    renew_at: chrono::DateTime<chrono::Utc>,
    body: Value,
}

/// keystoneauth's session in small.
pub struct Session {
    http: reqwest::Client,
    identity: String,
    credential: Credential,
    held: tokio::sync::Mutex<Option<Held>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("identity", &self.identity)
            .field("credential", &self.credential)
            .finish()
    }
}

/// `…/v3` for an auth_url given with or without the version.
pub fn identity_url(auth_url: &str) -> String {
    let base = auth_url.trim_end_matches('/');
    if base.ends_with("/v3") {
        base.to_string()
    } else {
        format!("{base}/v3")
    }
}

fn named(id: Option<String>, name: Option<String>, domain: Option<Value>) -> Option<Value> {
    match (id, name) {
        (Some(id), _) => Some(json!({ "id": id })),
        (None, Some(name)) => Some(json!({
            "name": name,
            "domain": domain.unwrap_or_else(|| json!({"id": "default"})),
        })),
        (None, None) => None,
    }
}

fn domain(id: Option<String>, name: Option<String>) -> Option<Value> {
    match (id, name) {
        (Some(id), _) => Some(json!({ "id": id })),
        (None, Some(name)) => Some(json!({ "name": name })),
        (None, None) => None,
    }
}

/// A configuration that cannot make a client.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required option is missing or empty.
    #[error("[{section}] {option} is not set")]
    Missing {
        section: String,
        option: &'static str,
    },
    /// The CA bundle cannot be read.
    #[error("[{section}] cafile {path}")]
    CaFile {
        section: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The CA bundle is not PEM.
    #[error("[{section}] cafile {path}")]
    CaPem {
        section: String,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    /// The TLS backend refused the settings.
    #[error("cannot make an HTTP client")]
    Client(#[source] reqwest::Error),
}

impl ConfigError {
    pub(crate) fn missing(section: &str, option: &'static str) -> ConfigError {
        ConfigError::Missing {
            section: section.to_string(),
            option,
        }
    }
}

/// The one builder of the HTTP clients that talk to OpenStack: a total
/// timeout, an optional connect timeout, and TLS settings (`insecure`,
/// `cafile`) from a configuration section. No user agent is set (reqwest
/// sends none).
#[derive(Debug, Clone)]
pub struct HttpClient {
    timeout: Duration,
    connect_timeout: Option<Duration>,
    insecure: bool,
    cafile: Option<(String, String)>,
}

impl HttpClient {
    /// A client whose requests end after `timeout`, verifying certificates
    /// against the system's roots.
    pub fn new(timeout: Duration) -> HttpClient {
        HttpClient {
            timeout,
            connect_timeout: None,
            insecure: false,
            cafile: None,
        }
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> HttpClient {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Accept any certificate (`insecure = true`).
    pub fn insecure(mut self, insecure: bool) -> HttpClient {
        self.insecure = insecure;
        self
    }

    /// `insecure` and `cafile` of `section`.
    pub fn tls_of(mut self, conf: &Config, section: &str) -> HttpClient {
        self.insecure = conf.bool(section, "insecure");
        self.cafile = conf
            .str(section, "cafile")
            .filter(|c| !c.is_empty())
            .map(|c| (section.to_string(), c));
        self
    }

    pub fn build(self) -> Result<reqwest::Client, ConfigError> {
        let mut b = reqwest::Client::builder()
            .timeout(self.timeout)
            .danger_accept_invalid_certs(self.insecure);
        if let Some(t) = self.connect_timeout {
            b = b.connect_timeout(t);
        }
        if let Some((section, path)) = self.cafile {
            let pem = match std::fs::read(&path) {
                Ok(pem) => pem,
                Err(source) => {
                    return Err(ConfigError::CaFile {
                        section,
                        path,
                        source,
                    })
                }
            };
            match reqwest::Certificate::from_pem(&pem) {
                Ok(cert) => b = b.add_root_certificate(cert),
                Err(source) => {
                    return Err(ConfigError::CaPem {
                        section,
                        path,
                        source,
                    })
                }
            }
        }
        b.build().map_err(ConfigError::Client)
    }
}

/// The HTTP client of a session: 30 s a request, 5 s to connect, TLS
/// settings of `section` (`insecure`, `cafile`).
pub fn http_client(conf: &Config, section: &str) -> Result<reqwest::Client, ConfigError> {
    HttpClient::new(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .tls_of(conf, section)
        .build()
}

impl Session {
    pub fn new(http: reqwest::Client, auth_url: &str, credential: Credential) -> Session {
        Session {
            http,
            identity: identity_url(auth_url),
            credential,
            held: tokio::sync::Mutex::new(None),
        }
    }

    /// The password session a section of keystoneauth options describes
    /// (`auth_url`, `username`/`user_id`, `password`, `user_domain_*`,
    /// `project_name`/`project_id`, `project_domain_*`).
    pub fn from_section(conf: &Config, section: &str) -> Result<Session, ConfigError> {
        let s = |k: &str| conf.str(section, k).filter(|v| !v.is_empty());
        let auth_url = s("auth_url").ok_or_else(|| ConfigError::missing(section, "auth_url"))?;
        let user = named(
            s("user_id"),
            s("username"),
            domain(s("user_domain_id"), s("user_domain_name")),
        )
        .ok_or_else(|| ConfigError::missing(section, "username"))?;
        let password = conf
            .secret(section, "password")
            .map(|p| p.expose().to_string())
            .ok_or_else(|| ConfigError::missing(section, "password"))?;
        let scope = named(
            s("project_id"),
            s("project_name"),
            domain(s("project_domain_id"), s("project_domain_name")),
        )
        .map(|p| json!({ "project": p }));
        Ok(Session::new(
            http_client(conf, section)?,
            &auth_url,
            Credential::Password {
                user,
                password,
                scope,
            },
        ))
    }

    /// The session Magnum acts as for itself (upstream's admin context):
    /// `[keystone_auth]` when it names a user, else `[keystone_authtoken]`.
    pub fn service(conf: &Config) -> Result<Session, ConfigError> {
        let configured = |sec: &str| {
            conf.str(sec, "auth_url").is_some_and(|v| !v.is_empty())
                && (conf.str(sec, "username").is_some() || conf.str(sec, "user_id").is_some())
        };
        if configured("keystone_auth") {
            Session::from_section(conf, "keystone_auth")
        } else {
            Session::from_section(conf, "keystone_authtoken")
        }
    }

    /// A session for the same Keystone with another identity.
    pub fn with_credential(&self, credential: Credential) -> Session {
        Session {
            http: self.http.clone(),
            identity: self.identity.clone(),
            credential,
            held: tokio::sync::Mutex::new(None),
        }
    }

    /// The identity API (`…/v3`).
    pub fn identity_url(&self) -> &str {
        &self.identity
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn auth_body(&self) -> Value {
        match &self.credential {
            Credential::Password {
                user,
                password,
                scope,
            } => {
                let mut u = user.clone();
                u["password"] = json!(password);
                let mut auth =
                    json!({"identity": {"methods": ["password"], "password": {"user": u}}});
                if let Some(scope) = scope {
                    auth["scope"] = scope.clone();
                }
                json!({ "auth": auth })
            }
            Credential::Trust {
                user_id,
                password,
                trust_id,
            } => json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {"id": user_id, "password": password}}},
                "scope": {"OS-TRUST:trust": {"id": trust_id}},
            }}),
        }
    }

    async fn authenticate(&self) -> Result<Held, OsError> {
        let unreachable = |e: String| OsError::Unreachable {
            service: "Keystone".into(),
            reason: e,
        };
        let resp = self
            .http
            .post(format!("{}/auth/tokens", self.identity))
            .json(&self.auth_body())
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        match resp.status().as_u16() {
            200..=299 => {}
            401 | 403 => {
                tracing::error!(
                    "Keystone refused {:?} ({}): check the configuration",
                    self.credential,
                    resp.status()
                );
                return Err(OsError::Unauthorized(resp.status().to_string()));
            }
            _ => return Err(crate::status_error("Keystone", resp).await),
        }
        let token = resp
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(Token::new)
            .ok_or_else(|| unreachable("no X-Subject-Token in its answer".into()))?;
        let mut body: Value = resp.json().await.map_err(|e| unreachable(e.to_string()))?;
        let until = body["token"]["expires_at"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(chrono::Utc::now);
        let now = chrono::Utc::now();
        let margin = std::cmp::min(chrono::Duration::seconds(60), (until - now) / 4);
        Ok(Held {
            token,
            renew_at: until - margin,
            body: body["token"].take(),
        })
    }

    async fn with_held<T>(&self, f: impl FnOnce(&Held) -> T) -> Result<T, OsError> {
        let mut held = self.held.lock().await;
        let fresh = held
            .as_ref()
            .is_some_and(|h| h.renew_at > chrono::Utc::now());
        if !fresh {
            *held = Some(self.authenticate().await?);
        }
        match held.as_ref() {
            Some(h) => Ok(f(h)),
            None => Err(OsError::Unauthorized("no token".into())),
        }
    }

    /// A valid token (fetched or refreshed as needed).
    pub async fn token(&self) -> Result<Token, OsError> {
        self.with_held(|h| h.token.clone()).await
    }

    /// The token body Keystone sent (user, project, roles, catalog).
    pub async fn token_body(&self) -> Result<Value, OsError> {
        self.with_held(|h| h.body.clone()).await
    }

    /// Forget the token (after a 401 from a service).
    pub async fn invalidate(&self) {
        *self.held.lock().await = None;
    }

    /// The URL of a service from the catalog.
    pub async fn endpoint(
        &self,
        service_type: &str,
        interface: &str,
        region: Option<&str>,
    ) -> Result<String, OsError> {
        let body = self.token_body().await?;
        find_endpoint(&body["catalog"], service_type, interface, region)
    }

    /// Send a request built with a valid token; a 401 fetches a new token
    /// and tries once more.
    pub async fn send(
        &self,
        service: &str,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, OsError> {
        for attempt in 0..2 {
            let token = self.token().await?;
            let resp = build(&self.http, token.expose())
                .send()
                .await
                .map_err(|e| OsError::Unreachable {
                    service: service.to_string(),
                    reason: e.to_string(),
                })?;
            if resp.status().as_u16() == 401 && attempt == 0 {
                self.invalidate().await;
                continue;
            }
            return Ok(resp);
        }
        Err(OsError::Unauthorized(format!(
            "{service} refused a fresh token"
        )))
    }
}

/// Find an endpoint in a catalog (a token body's `catalog` list).
pub fn find_endpoint(
    catalog: &Value,
    service_type: &str,
    interface: &str,
    region: Option<&str>,
) -> Result<String, OsError> {
    let interface = crate::interface_name(interface);
    catalog
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["type"] == service_type)
        .flat_map(|s| s["endpoints"].as_array().into_iter().flatten())
        .find(|e| {
            e["interface"] == interface.as_str()
                && region.is_none_or(|r| e["region_id"] == r || e["region"] == r)
        })
        .and_then(|e| e["url"].as_str())
        .map(|u| u.trim_end_matches('/').to_string())
        .ok_or_else(|| OsError::NoEndpoint {
            service_type: service_type.to_string(),
            interface,
            region: region
                .map(|r| format!(" for region {r}"))
                .unwrap_or_default(),
        })
}
