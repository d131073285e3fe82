//! Request plumbing shared by every handler: the `x-openstack-request-id`,
//! the JSON body reader (size and time limits, malformed JSON), and the answers for
//! unknown routes and wrong methods.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;

use crate::error::ApiError;
use crate::AppState;

/// The id of one request, `req-<uuid>`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Give every request an id, log it, and return it in
/// `x-openstack-request-id`.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = format!("req-{}", uuid::Uuid::new_v4());
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let mut response = next.run(request).await;
    tracing::info!(request_id = %id, "{method} {path} {}", response.status().as_u16());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-openstack-request-id", v);
    }
    response
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("The resource could not be found.".into())
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// A request body parsed as JSON, read within `[oslo_middleware]
/// max_request_body_size` and `[api] body_read_timeout`.
#[derive(Debug)]
pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(ct) = req.headers().get("content-type") {
            let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
            if !ct.is_empty() && !ct.contains("json") && !ct.starts_with("text/plain") {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "Unsupported Content-Type {ct}: the body must be JSON."
                )));
            }
        }
        let limit = state.max_body;
        let read = axum::body::to_bytes(req.into_body(), limit);
        let bytes = tokio::time::timeout(state.body_timeout, read)
            .await
            .map_err(|_| ApiError::BodyTimeout(state.body_timeout.as_secs()))?
            .map_err(|_| ApiError::TooLarge(limit))?;
        parse_json(&bytes).map(JsonBody)
    }
}

fn parse_json(bytes: &Bytes) -> Result<Value, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::BadRequest(
            "Missing argument: the request body is empty.".into(),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        tracing::debug!("malformed JSON body: {e}");
        ApiError::BadRequest("Request is not in valid JSON format".into())
    })
}

/// A 200 answer whose JSON body is serialized straight from `body` (views
/// that borrow from the rows they show, with no JSON tree in between) into
/// a buffer of about `size_hint` bytes.
pub fn json_response<T: serde::Serialize>(
    body: &T,
    size_hint: usize,
) -> crate::error::ApiResult<Response> {
    use axum::http::header;
    use axum::response::IntoResponse;
    let mut buf = Vec::with_capacity(size_hint.clamp(256, 8 << 20));
    serde_json::to_writer(&mut buf, body).map_err(|e| {
        crate::error::ApiError::from(magnum_core::MagnumError::Internal(format!(
            "cannot render the answer: {e}"
        )))
    })?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Bytes::from(buf),
    )
        .into_response())
}
