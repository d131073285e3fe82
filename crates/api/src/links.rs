//! Links in responses: the application URL a request was made to, and the
//! `self`/`bookmark` links every resource carries.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::AppState;

/// The application URL of the request (`http://host:port`), honouring
/// `X-Forwarded-Proto` and `X-Forwarded-Host` set by a proxy in front.
#[derive(Debug, Clone)]
pub struct BaseUrl(pub String);

impl FromRequestParts<AppState> for BaseUrl {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let h = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let scheme = h("x-forwarded-proto").unwrap_or_else(|| {
            if state.conf.bool("api", "enabled_ssl") {
                "https".into()
            } else {
                "http".into()
            }
        });
        let host = h("x-forwarded-host")
            .or_else(|| h("host"))
            .or_else(|| parts.uri.authority().map(|a| a.to_string()))
            .unwrap_or_else(|| "localhost".into());
        Ok(BaseUrl(format!("{scheme}://{host}")))
    }
}

impl BaseUrl {
    /// `<base>/v1/<resource><args>` or, for a bookmark, `<base>/<resource><args>`;
    /// `args` starting with `?` are a query, otherwise a path segment.
    pub fn url(&self, resource: &str, args: &str, bookmark: bool) -> String {
        let sep = if args.starts_with('?') { "" } else { "/" };
        if bookmark {
            format!("{}/{resource}{sep}{args}", self.0)
        } else {
            format!("{}/v1/{resource}{sep}{args}", self.0)
        }
    }

    /// A link object.
    pub fn link(&self, rel: &str, resource: &str, args: &str, bookmark: bool) -> Value {
        json!({"href": self.url(resource, args, bookmark), "rel": rel})
    }

    /// The `self` and `bookmark` links of one resource.
    pub fn resource_links(&self, resource: &str, uuid: &str) -> Value {
        json!([
            self.link("self", resource, uuid, false),
            self.link("bookmark", resource, uuid, true),
        ])
    }
}
