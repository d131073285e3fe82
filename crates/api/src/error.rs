//! The one error type of the API and its rendering as upstream Magnum's
//! error body:
//! `{"errors": [{"request_id", "code", "status", "title", "detail", "links"}]}`
//! where `code` is `client` or `server` and `title` is the detail's first
//! sentence. Server errors are logged with their cause and answered with a
//! generic text, so nothing internal leaks to the caller.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use magnum_core::MagnumError;
use magnum_db::DbError;
use serde_json::{json, Value};

use crate::version::{Version, MAX_VERSION, MIN_VERSION};

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A failure of the operation itself, with upstream's text and code.
    #[error(transparent)]
    Magnum(#[from] MagnumError),
    /// Bad input caught by request validation (400).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("The method specified is not allowed for this resource.")]
    MethodNotAllowed,
    /// The resource exists from a later microversion (406).
    #[error("Version {version} was requested but the requested API {api} is not supported for this version.")]
    NotInVersion { version: String, api: &'static str },
    /// The client did not send the body within `[api] body_read_timeout`
    /// (408; the connection is closed).
    #[error("The request body was not received within {0} seconds.")]
    BodyTimeout(u64),
    #[error("Request is too large. The limit is {0} bytes.")]
    TooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The microversion header could not be read (406).
    #[error("{0}")]
    BadVersionHeader(String),
    /// A well-formed microversion outside the supported range (406).
    #[error("Version {0} was requested but the minor version is not supported by this service. The supported version range is: [{min}, {max}].", min = MIN_VERSION.header_value(), max = MAX_VERSION.header_value())]
    VersionUnsupported(Version),
    /// A failure of the database layer; its text is the cause's (as
    /// `source()`), so a logged chain names it once.
    #[error("storage failure")]
    Db(#[from] DbError),
    /// The message bus did not take a cast that nothing else records (an
    /// operation handed to an external driver's conductors); the cause is
    /// logged, the caller told to try again (503).
    #[error("the message bus did not take the message: {0}")]
    BusUnavailable(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        let code = match self {
            ApiError::Magnum(e) => e.code(),
            ApiError::BadRequest(_) => 400,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed => 405,
            ApiError::NotInVersion { .. } => 406,
            ApiError::BodyTimeout(_) => 408,
            ApiError::TooLarge(_) => 413,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::BadVersionHeader(_) | ApiError::VersionUnsupported(_) => 406,
            ApiError::Db(DbError::Duplicate) => 409,
            ApiError::Db(DbError::ValueRejected(_)) => 400,
            ApiError::Db(DbError::Unavailable(_)) => 503,
            ApiError::Db(_) => 500,
            ApiError::BusUnavailable(_) => 503,
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Invalid input for one attribute, in wsme's words.
    pub fn invalid_input(field: &str, value: &Value, reason: impl std::fmt::Display) -> ApiError {
        // As wsme shows it: Python's `str()` of the value.
        let mut shown = crate::pyliteral::show(value);
        if shown.chars().count() > 200 {
            shown = shown.chars().take(200).collect::<String>() + "...";
        }
        ApiError::BadRequest(format!(
            "Invalid input for field/attribute {field}. Value: '{shown}'. {reason}"
        ))
    }

    fn detail(&self) -> String {
        match self {
            // The cause (refused, timed out, …) is logged, not shown.
            ApiError::Db(DbError::Unavailable(_)) => {
                "The database is unreachable. Please try again later.".to_string()
            }
            ApiError::BusUnavailable(_) => {
                "The message bus is unreachable. Please try again later.".to_string()
            }
            ApiError::Magnum(MagnumError::Internal(_)) | ApiError::Db(_)
                if self.status().is_server_error() =>
            {
                "The server has either erred or is incapable of performing the requested operation."
                    .to_string()
            }
            ApiError::Db(e) => format!("storage failure: {e}"),
            other => other.to_string(),
        }
    }
}

/// The error body for a status and detail text.
pub fn error_body(status: StatusCode, detail: &str) -> Value {
    let title = detail.split('.').next().unwrap_or_default();
    json!({"errors": [{
        "request_id": "",
        "code": if status.is_server_error() { "server" } else { "client" },
        "status": status.as_u16(),
        "title": title,
        "detail": detail,
        "links": [],
    }]})
}

/// An error and each of its causes, joined by `: `: how a 5xx is logged.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            let chain = chain(&self);
            tracing::error!(status = status.as_u16(), "request failed: {chain}");
        } else {
            tracing::debug!(status = status.as_u16(), "request refused: {self}");
        }
        let detail = self.detail();
        let mut body = error_body(status, &detail);
        if let ApiError::VersionUnsupported(_) | ApiError::BadVersionHeader(_) = &self {
            if let Some(err) = body["errors"][0].as_object_mut() {
                err.insert("code".into(), json!("magnum.microversion-unsupported"));
                err.insert(
                    "title".into(),
                    json!("Requested microversion is unsupported"),
                );
                err.insert(
                    "links".into(),
                    json!([{"rel": "help", "href": "http://docs.openstack.org/api-guide/compute/microversions.html"}]),
                );
                err.insert("max_version".into(), json!(MAX_VERSION.to_string()));
                err.insert("min_version".into(), json!(MIN_VERSION.to_string()));
            }
        }
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::METHOD_NOT_ALLOWED {
            response.headers_mut().insert(
                "allow",
                HeaderValue::from_static("GET, POST, PATCH, DELETE"),
            );
        }
        if status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body may still be on its way: end the connection.
            response
                .headers_mut()
                .insert("connection", HeaderValue::from_static("close"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A logged chain names each cause once.
    #[test]
    fn chains_name_each_cause_once() {
        let e = ApiError::Db(DbError::Duplicate);
        assert_eq!(
            chain(&e),
            "storage failure: a row with this unique key already exists"
        );
        // What a 4xx shows is unchanged.
        assert_eq!(
            ApiError::Db(DbError::Duplicate).detail(),
            "storage failure: a row with this unique key already exists"
        );
    }
}
