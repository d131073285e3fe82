//! Clients of the OpenStack services Magnum talks to.
//!
//! [`Session`] is keystoneauth's session in small: one identity (the
//! service user of `[keystone_auth]`, or a cluster's trustee acting through
//! its trust), a token fetched on first use and again shortly before it
//! expires, and the catalog that came with it to find other services.
//! The service clients ([`barbican::Barbican`], [`heat`]) borrow a
//! session. [`keystone::Keystone`] validates callers' tokens as
//! keystonemiddleware does, [`trusts::TrustManager`] makes and removes
//! clusters' trustees and trusts, and [`catalog::CatalogCloud`] looks
//! images, flavors, keypairs and networks up through a caller's own
//! catalog. Every HTTP client here is made by [`HttpClient`].

pub mod barbican;
pub mod catalog;
pub mod heat;
pub mod keystone;
mod session;
pub mod trusts;

pub use session::{
    find_endpoint, http_client, identity_url, ConfigError, Credential, HttpClient, Session,
};

/// An error and each of its causes once, joined by `: ` (how a chain is
/// logged: every error here leaves its cause out of its own text).
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// What went wrong talking to an OpenStack service.
#[derive(Debug, thiserror::Error)]
pub enum OsError {
    /// The service could not be reached, or answered garbage.
    #[error("{service} is unreachable: {reason}")]
    Unreachable { service: String, reason: String },
    /// The service answered with an error status.
    #[error("{service} answered {status}: {message}")]
    Status {
        service: String,
        status: u16,
        message: String,
    },
    /// Keystone refused our credentials.
    #[error("Keystone refused authentication ({0})")]
    Unauthorized(String),
    /// The catalog has no such endpoint.
    #[error("no {interface} endpoint of service type {service_type} in the catalog{region}")]
    NoEndpoint {
        service_type: String,
        interface: String,
        region: String,
    },
}

impl OsError {
    /// Whether the service said the thing does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, OsError::Status { status: 404, .. })
    }
}

/// An error status turned into an [`OsError`], with the service's own
/// message when its body has one in any of the usual shapes.
pub async fn status_error(service: &str, resp: reqwest::Response) -> OsError {
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            let pick = |v: &serde_json::Value| -> Option<String> {
                for k in ["description", "message", "title", "explanation"] {
                    if let Some(s) = v.get(k).and_then(|s| s.as_str()) {
                        return Some(s.to_string());
                    }
                }
                None
            };
            pick(&v)
                .or_else(|| v.get("error").and_then(pick))
                .or_else(|| v.as_object()?.values().find_map(pick))
        })
        .unwrap_or_else(|| body.chars().take(200).collect());
    OsError::Status {
        service: service.to_string(),
        status,
        message,
    }
}

/// Keystone's interface name for an oslo `endpoint_type` (`publicURL` ->
/// `public`).
pub fn interface_name(endpoint_type: &str) -> String {
    endpoint_type.trim_end_matches("URL").to_string()
}

/// Which endpoint of a service to use: its type, and the `endpoint_type`
/// and `region_name` of its `[<service>_client]` section.
#[derive(Debug, Clone)]
pub struct Selector {
    pub service_type: &'static str,
    pub interface: String,
    pub region: Option<String>,
}

impl Selector {
    pub fn from_conf(
        conf: &magnum_core::config::Config,
        section: &str,
        service_type: &'static str,
    ) -> Selector {
        let interface = conf
            .str(section, "endpoint_type")
            .unwrap_or_else(|| "publicURL".into());
        Selector {
            service_type,
            interface: interface_name(&interface),
            region: conf.str(section, "region_name").filter(|r| !r.is_empty()),
        }
    }

    /// This endpoint in a catalog.
    pub fn find(&self, catalog: &serde_json::Value) -> Result<String, OsError> {
        find_endpoint(
            catalog,
            self.service_type,
            &self.interface,
            self.region.as_deref(),
        )
    }

    /// This endpoint in a session's catalog.
    pub async fn url(&self, session: &Session) -> Result<String, OsError> {
        self.find(&session.token_body().await?["catalog"])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    /// A configuration error reads as before once its chain is printed,
    /// each cause once.
    #[test]
    fn configuration_errors_name_their_cause_once() {
        let conf = magnum_core::config::Config::parse(
            "[keystone_authtoken]\ncafile = /nonexistent/ca.pem\n",
            "test",
        )
        .unwrap();
        let e = http_client(&conf, "keystone_authtoken").unwrap_err();
        assert_eq!(
            e.to_string(),
            "[keystone_authtoken] cafile /nonexistent/ca.pem"
        );
        assert_eq!(
            Chain(&e).to_string(),
            "[keystone_authtoken] cafile /nonexistent/ca.pem: No such file or directory (os error 2)"
        );
        let e = Session::from_section(&conf, "keystone_authtoken").unwrap_err();
        assert_eq!(e.to_string(), "[keystone_authtoken] auth_url is not set");
    }

    #[test]
    fn endpoints_by_type_interface_and_region() {
        let catalog = json!([
            {"type": "key-manager", "endpoints": [
                {"interface": "internal", "region_id": "One", "url": "http://int:9311"},
                {"interface": "public", "region_id": "One", "url": "http://one:9311/"},
                {"interface": "public", "region_id": "Two", "url": "http://two:9311"},
            ]},
            {"type": "orchestration", "endpoints": []},
        ]);
        assert_eq!(
            find_endpoint(&catalog, "key-manager", "publicURL", None).unwrap(),
            "http://one:9311"
        );
        assert_eq!(
            find_endpoint(&catalog, "key-manager", "publicURL", Some("Two")).unwrap(),
            "http://two:9311"
        );
        assert_eq!(
            find_endpoint(&catalog, "key-manager", "internalURL", None).unwrap(),
            "http://int:9311"
        );
        let e = find_endpoint(&catalog, "orchestration", "public", Some("One")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no public endpoint of service type orchestration in the catalog for region One"
        );
    }
}
