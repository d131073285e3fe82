//! Request plumbing shared by every handler: the `x-openstack-request-id`,
//! the JSON body reader (size and time limits, malformed JSON), and the answers for
//! unknown routes and wrong methods.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::ApiError;
use crate::AppState;

/// The id of one request, `req-<uuid>`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Give every request an id, log it, and return it in
/// `x-openstack-request-id`. The request runs in a `request` span holding
/// the id, so every line logged while serving it names the request. It is
/// counted in the request metrics by its route's template (never its
/// path, which holds uuids and names), method and status.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    use tracing::Instrument as _;
    let began = std::time::Instant::now();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let id = format!("req-{}", uuid::Uuid::new_v4());
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let span = tracing::info_span!("request", id = %id);
    let mut response = async {
        let response = next.run(request).await;
        tracing::info!("{method} {path} {}", response.status().as_u16());
        response
    }
    .instrument(span)
    .await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-openstack-request-id", v);
    }
    magnum_core::metrics::http_request(
        route.as_ref().map_or("unmatched", |r| r.as_str()),
        method.as_str(),
        response.status().as_u16(),
        began.elapsed(),
    );
    response
}

/// Refuse, in the error body, a request whose path or query is not UTF-8
/// once percent-decoded (`/v1/clusters/%FF`): upstream's webob cannot
/// decode it and answers 400, and no route could take it.
pub async fn utf8_url(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let bad = |part: &str| std::str::from_utf8(&percent_decoded(part.as_bytes())).is_err();
    if bad(uri.path()) || uri.query().is_some_and(bad) {
        return ApiError::BadRequest(
            "The request URL is not valid UTF-8 once percent-decoded.".into(),
        )
        .into_response();
    }
    next.run(request).await
}

/// `%XX` escapes replaced by their bytes; anything else kept as it is.
fn percent_decoded(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !raw.contains(&b'%') {
        return std::borrow::Cow::Borrowed(raw);
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("The resource could not be found.".into())
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// A request body parsed as JSON, read within `[oslo_middleware]
/// max_request_body_size` and `[api] body_read_timeout`. As upstream's
/// wsme reads it: an empty body is no body whatever its media type; any
/// other must be sent as one of wsme's JSON media types (the type before
/// any `;` parameters, exactly as written), else 415.
#[derive(Debug)]
pub struct JsonBody(pub Value);

/// The media types wsme parses as JSON.
const JSON_TYPES: [&str; 3] = [
    "application/json",
    "text/javascript",
    "application/javascript",
];

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let media_type = req
            .headers()
            .get("content-type")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let limit = state.max_body;
        let read = axum::body::to_bytes(req.into_body(), limit);
        let bytes = tokio::time::timeout(state.body_timeout, read)
            .await
            .map_err(|_| ApiError::BodyTimeout(state.body_timeout.as_secs()))?
            .map_err(|e| body_error(&e, limit))?;
        if !bytes.is_empty() {
            let media_type = media_type.split(';').next().unwrap_or_default();
            if media_type == "application/x-www-form-urlencoded" {
                // wsme takes such a body as form parameters, none of which
                // any of our operations has.
                let keys: Vec<String> = url::form_urlencoded::parse(&bytes)
                    .map(|(k, _)| k.into_owned())
                    .collect();
                return Err(ApiError::BadRequest(format!(
                    "Unknown argument: \"{}\"",
                    keys.join(", ")
                )));
            }
            if !JSON_TYPES.contains(&media_type) {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "Unknown mimetype: {media_type}"
                )));
            }
        }
        parse_json(&bytes).map(JsonBody)
    }
}

/// Why a body could not be read: more than `limit` bytes (413), or the
/// client stopped sending before its end, e.g. shorter than its
/// Content-Length and then a half-close (400).
fn body_error(e: &axum::Error, limit: usize) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return ApiError::TooLarge(limit);
        }
        source = s.source();
    }
    tracing::debug!("request body unreadable: {e}");
    ApiError::BadRequest("The request body is incomplete: the client stopped sending it.".into())
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

#[cfg(test)]
mod tests {
    use super::percent_decoded;

    #[test]
    fn percent_escapes_decode_to_bytes() {
        assert_eq!(&*percent_decoded(b"/v1/a%20b"), b"/v1/a b");
        assert_eq!(&*percent_decoded(b"/%FF"), b"/\xff");
        assert_eq!(&*percent_decoded(b"/%C3%A9"), "/\u{e9}".as_bytes());
        assert_eq!(&*percent_decoded(b"/%zz%4"), b"/%zz%4");
        assert_eq!(&*percent_decoded(b"%41"), b"A");
    }
}
