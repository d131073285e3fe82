//! API microversions: `OpenStack-API-Version: container-infra 1.x`.
//!
//! Every request under `/v1` carries a version in force: the one asked for
//! (`latest` meaning the maximum), or the minimum when none is asked for.
//! Every `/v1` response — errors included — tells the client the supported
//! range and the version in force, as upstream does.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// A microversion, such as 1.9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

pub const MIN_VERSION: Version = Version { major: 1, minor: 1 };
pub const MAX_VERSION: Version = Version {
    major: 1,
    minor: 14,
};

/// What a microversion added. Handlers ask [`Ctx::has`](crate::context::Ctx::has)
/// or [`Ctx::require`](crate::context::Ctx::require) about a feature, never
/// about a number: [`Feature::since`] is the one table of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// `rollback` on a cluster update.
    Rollback,
    /// `PATCH /v1/certificates/{cluster}`: rotate a cluster's CA.
    CaRotation,
    /// The cluster actions `resize` and `upgrade`.
    ClusterActions,
    /// An upgrade that runs (1.7 has the action but refuses it).
    Upgrade,
    /// `/v1/clusters/{cluster}/nodegroups`.
    NodeGroups,
    /// Node groups of zero nodes, and a cluster create naming a missing
    /// template answered 404 (400 before).
    ZeroNodes,
    /// `PATCH /v1/credentials/{cluster}`: rotate a cluster's credentials.
    CredentialRotation,
    /// Cluster views name the stack `cluster_id` (`stack_id` before).
    ClusterIdField,
    /// Node groups' `node_labels` and `node_taints`.
    NodeLabelsAndTaints,
}

impl Feature {
    /// The first microversion with the feature.
    pub const fn since(self) -> Version {
        let minor = match self {
            Feature::Rollback => 3,
            Feature::CaRotation => 5,
            Feature::ClusterActions => 7,
            Feature::Upgrade => 8,
            Feature::NodeGroups => 9,
            Feature::ZeroNodes => 10,
            Feature::CredentialRotation => 12,
            Feature::ClusterIdField => 13,
            Feature::NodeLabelsAndTaints => 14,
        };
        Version::new(1, minor)
    }
}

/// The service name sent back in version headers.
pub const SERVICE: &str = "container-infrastructure-management";
/// The service names accepted in a request's version header.
const SERVICES: [&str; 3] = [SERVICE, "container-infrastructure", "container-infra"];
/// The header carrying the requested version.
pub const HEADER: &str = "OpenStack-API-Version";
/// The header older clients used, holding just the number.
pub const LEGACY_HEADER: &str = "X-OpenStack-Magnum-API-Version";

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl Version {
    pub const fn new(major: u32, minor: u32) -> Self {
        Version { major, minor }
    }

    /// `container-infrastructure-management 1.x`.
    pub fn header_value(&self) -> String {
        format!("{SERVICE} {self}")
    }

    fn parse_number(text: &str) -> Option<Version> {
        let (major, minor) = text.split_once('.')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(major) || !digits(minor) {
            return None;
        }
        Some(Version::new(major.parse().ok()?, minor.parse().ok()?))
    }

    /// The version a request asks for; the minimum when it asks for none.
    pub fn from_headers(headers: &HeaderMap) -> Result<Version, ApiError> {
        let bad_service =
            || ApiError::BadVersionHeader(format!("Invalid service type for {HEADER} header"));
        let bad_value = || ApiError::BadVersionHeader(format!("Invalid value for {HEADER} header"));
        let requested = if let Some(value) = headers.get(HEADER) {
            let value = value.to_str().map_err(|_| bad_value())?;
            let mut words = value.split_whitespace();
            let (service, number) = match (words.next(), words.next(), words.next()) {
                (Some(s), Some(n), None) => (s, n),
                _ => return Err(bad_service()),
            };
            if !SERVICES.contains(&service) {
                return Err(bad_service());
            }
            number.to_string()
        } else if let Some(value) = headers.get(LEGACY_HEADER) {
            value.to_str().map_err(|_| bad_value())?.trim().to_string()
        } else {
            return Ok(MIN_VERSION);
        };
        if requested.eq_ignore_ascii_case("latest") {
            return Ok(MAX_VERSION);
        }
        let version = Self::parse_number(&requested).ok_or_else(bad_value)?;
        if version.major != MAX_VERSION.major {
            return Err(ApiError::BadVersionHeader(format!(
                "Mutually exclusive versions requested. Version {version} requested but not \
                 supported by this service. The supported version range is: [{}, {}].",
                MIN_VERSION.header_value(),
                MAX_VERSION.header_value()
            )));
        }
        if version < MIN_VERSION || version > MAX_VERSION {
            return Err(ApiError::VersionUnsupported(version));
        }
        Ok(version)
    }
}

fn set_headers(headers: &mut HeaderMap, in_force: Option<Version>) {
    let put = |headers: &mut HeaderMap, name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    put(
        headers,
        "OpenStack-API-Minimum-Version",
        MIN_VERSION.header_value(),
    );
    put(
        headers,
        "OpenStack-API-Maximum-Version",
        MAX_VERSION.header_value(),
    );
    if let Some(v) = in_force {
        put(headers, "OpenStack-API-Version", v.header_value());
    }
    headers.insert("vary", HeaderValue::from_static(HEADER));
}

/// Middleware for `/v1`: settle the version in force, refuse versions out
/// of range with 406, and put the version headers on every response.
pub async fn negotiate(mut request: Request, next: Next) -> Response {
    match Version::from_headers(request.headers()) {
        Ok(version) => {
            request.extensions_mut().insert(version);
            let mut response = next.run(request).await;
            set_headers(response.headers_mut(), Some(version));
            response
        }
        Err(err) => {
            let shown = match &err {
                ApiError::VersionUnsupported(v) => Some(*v),
                _ => None,
            };
            let mut response = err.into_response();
            set_headers(response.headers_mut(), shown);
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str, value: &str) -> Result<Version, ApiError> {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        Version::from_headers(&h)
    }

    #[test]
    fn versions() {
        assert_eq!(
            Version::from_headers(&HeaderMap::new()).unwrap(),
            MIN_VERSION
        );
        assert_eq!(
            parse(HEADER, "container-infra 1.9").unwrap(),
            Version::new(1, 9)
        );
        assert_eq!(
            parse(HEADER, "container-infra latest").unwrap(),
            MAX_VERSION
        );
        assert_eq!(
            parse(HEADER, "container-infrastructure-management 1.14").unwrap(),
            MAX_VERSION
        );
        assert_eq!(parse(LEGACY_HEADER, "1.4").unwrap(), Version::new(1, 4));
        assert!(matches!(
            parse(HEADER, "container-infra 1.15"),
            Err(ApiError::VersionUnsupported(_))
        ));
        assert!(matches!(
            parse(HEADER, "container-infra 1.0"),
            Err(ApiError::VersionUnsupported(_))
        ));
        assert!(matches!(
            parse(HEADER, "container-infra 2.1"),
            Err(ApiError::BadVersionHeader(_))
        ));
        assert!(matches!(
            parse(HEADER, "compute 1.1"),
            Err(ApiError::BadVersionHeader(_))
        ));
        assert!(matches!(
            parse(HEADER, "container-infra 1.x"),
            Err(ApiError::BadVersionHeader(_))
        ));
        assert!(matches!(
            parse(HEADER, "1.1"),
            Err(ApiError::BadVersionHeader(_))
        ));
        assert!(matches!(
            parse(HEADER, "container-infra 1.1.1"),
            Err(ApiError::BadVersionHeader(_))
        ));
    }
}

#[cfg(test)]
mod feature_tests {
    use super::*;

    /// Every feature comes with a version the API serves.
    #[test]
    fn every_feature_is_within_the_supported_range() {
        use Feature::*;
        for f in [
            Rollback,
            CaRotation,
            ClusterActions,
            Upgrade,
            NodeGroups,
            ZeroNodes,
            CredentialRotation,
            ClusterIdField,
            NodeLabelsAndTaints,
        ] {
            assert!(f.since() > MIN_VERSION && f.since() <= MAX_VERSION, "{f:?}");
        }
    }
}
