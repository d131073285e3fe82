//! Links in responses: the application URL a request was made to, and the
//! `self`/`bookmark` links every resource carries.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use magnum_core::config::opts;
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
            if state.conf.get(opts::api::ENABLED_SSL) {
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

    /// The `self` and `bookmark` links of one resource, serialized as
    /// [`BaseUrl::resource_links`] builds them, without building them.
    pub fn links<'a>(&'a self, resource: &'a str, uuid: &'a str) -> ResourceLinks<'a> {
        ResourceLinks {
            base: &self.0,
            resource,
            uuid,
        }
    }

    /// The `self` and `bookmark` links of one resource.
    pub fn resource_links(&self, resource: &str, uuid: &str) -> Value {
        json!([
            self.link("self", resource, uuid, false),
            self.link("bookmark", resource, uuid, true),
        ])
    }
}

/// See [`BaseUrl::links`].
pub struct ResourceLinks<'a> {
    base: &'a str,
    resource: &'a str,
    uuid: &'a str,
}

impl serde::Serialize for ResourceLinks<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct Link<'a>(&'a ResourceLinks<'a>, bool);
        impl serde::Serialize for Link<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let ResourceLinks {
                    base,
                    resource,
                    uuid,
                } = self.0;
                let mut m = s.serialize_map(Some(2))?;
                if self.1 {
                    m.serialize_entry("href", &format_args!("{base}/{resource}/{uuid}"))?;
                    m.serialize_entry("rel", "bookmark")?;
                } else {
                    m.serialize_entry("href", &format_args!("{base}/v1/{resource}/{uuid}"))?;
                    m.serialize_entry("rel", "self")?;
                }
                m.end()
            }
        }
        let mut seq = s.serialize_seq(Some(2))?;
        seq.serialize_element(&Link(self, false))?;
        seq.serialize_element(&Link(self, true))?;
        seq.end()
    }
}
