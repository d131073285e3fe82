//! `/v1/certificates`: a cluster's CA (`GET /v1/certificates/{cluster}`,
//! optionally `?ca_cert_type=etcd|front_proxy`) and the signing of a CSR
//! with it (`POST /v1/certificates`), as upstream; private keys never leave
//! the server.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use magnum_certs::CaType;
use magnum_core::objects::Cluster;
use magnum_core::state::Method;
use magnum_core::MagnumError;
use serde_json::{json, Value};

use crate::clusters::find;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, Field, Kind};
use crate::links::BaseUrl;
use crate::request::JsonBody;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/certificates", post(sign))
        .route("/certificates/{ident}", get(show).patch(rotate))
}

const FIELDS: &[Field] = &[
    Field::new("cluster_uuid", Kind::Str { min: 1, max: 255 }).mandatory(),
    Field::new("bay_uuid", Kind::Str { min: 1, max: 255 }),
    Field::new("csr", Kind::Str { min: 1, max: 65535 }).mandatory(),
    Field::new("pem", Kind::Text).readonly(),
    Field::new("ca_cert_type", Kind::Str { min: 0, max: 255 }),
    Field::new("links", Kind::Text).readonly(),
];

fn target(c: &Cluster) -> Value {
    json!({"project_id": c.project_id, "user_id": c.user_id})
}

/// The certificate as upstream shows it: `csr` and `ca_cert_type` only
/// when the request set them (a signing echoes what it was sent).
fn view(
    c: &Cluster,
    pem: &str,
    csr: Option<&str>,
    ca_cert_type: Option<&Value>,
    base: &BaseUrl,
) -> Value {
    let mut v = json!({
        "cluster_uuid": c.uuid,
        "pem": pem,
        "links": [
            base.link("self", "certificates", &c.uuid, false),
            base.link("bookmark", "certificates", &c.uuid, true),
        ],
    });
    if let Some(csr) = csr {
        v["csr"] = json!(csr);
    }
    if let Some(t) = ca_cert_type {
        v["ca_cert_type"] = t.clone();
    }
    v
}

async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    base: BaseUrl,
    Path(ident): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let cluster = find(&state.db, &ctx, &ident).await?;
    ctx.enforce(&state, "certificate:get", &target(&cluster))?;
    let ca_type = q.as_deref().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "ca_cert_type")
            .map(|(_, v)| v.to_string())
    });
    let ca = state
        .certs
        .ca(&state.db, &cluster, CaType::parse(ca_type.as_deref()))
        .await?;
    Ok(Json(view(
        &cluster,
        ca.certificate.as_deref().unwrap_or_default(),
        None,
        None,
        &base,
    )))
}

async fn sign(
    State(state): State<AppState>,
    ctx: Ctx,
    base: BaseUrl,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    // Upstream's cluster_uuid is a property whose setter looks the cluster
    // up before any type check: a number names no cluster.
    for key in ["cluster_uuid", "bay_uuid"] {
        if let Some(v) = body.get(key).filter(|v| !v.is_string() && !v.is_null()) {
            return Err(ApiError::BadRequest(
                MagnumError::ClusterNotFound(crate::pyliteral::show(v)).to_string(),
            ));
        }
    }
    let given = fields::validate_object("certificate", FIELDS, &body)?;
    let cluster = signing_cluster(&state, &ctx, &given).await?;
    ctx.enforce(&state, "certificate:create", &target(&cluster))?;
    let csr = given
        .get("csr")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let ca_type = CaType::parse(given.get("ca_cert_type").and_then(Value::as_str));
    let pem = state.certs.sign(&state.db, &cluster, &csr, ca_type).await?;
    Ok((
        StatusCode::CREATED,
        Json(view(
            &cluster,
            &pem,
            Some(&csr),
            given.get("ca_cert_type"),
            &base,
        )),
    )
        .into_response())
}

/// The cluster a signing request names (`cluster_uuid`, or the older
/// `bay_uuid`): an unknown one is a bad request here, not a missing
/// resource.
async fn signing_cluster(
    state: &AppState,
    ctx: &Ctx,
    given: &serde_json::Map<String, Value>,
) -> ApiResult<Cluster> {
    let ident = given
        .get("cluster_uuid")
        .or_else(|| given.get("bay_uuid"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    match find(&state.db, ctx, ident).await {
        Err(ApiError::Magnum(MagnumError::ClusterNotFound(c))) => Err(ApiError::BadRequest(
            MagnumError::ClusterNotFound(c).to_string(),
        )),
        other => other,
    }
}

/// `PATCH /v1/certificates/{cluster}` (from 1.5): rotate the cluster's
/// CAs. Queued like every cluster operation; 202 with the uuid.
async fn rotate(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<Response> {
    ctx.require(crate::version::Feature::CaRotation, "patch")?;
    let cluster = find(&state.db, &ctx, &ident).await?;
    ctx.enforce(&state, "certificate:rotate_ca", &target(&cluster))?;
    let template = crate::clusters::template_of(&state.db, &cluster).await?;
    if template.tls_disabled == Some(true) {
        return Err(MagnumError::NotSupportedMsg(
            "Rotating the CA certificate on a non-TLS cluster is not supported".into(),
        )
        .into());
    }
    let args = json!({ "cluster": magnum_core::ovo::encode_stored(&cluster) });
    crate::conduct::enqueue(
        &state,
        &ctx,
        &cluster,
        Method::RotateCaCertificate,
        args,
        false,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "uuid": cluster.uuid }))).into_response())
}
