//! `PATCH /v1/credentials/{cluster}` (from microversion 1.12): rotate the
//! credentials a cluster uses to reach the cloud. As upstream, the rotation
//! is a synchronous call to a conductor (`credential_rotate`), whose
//! refusals come back as the API's answer.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::patch;
use axum::{Json, Router};
use magnum_core::{ovo, MagnumError};
use magnum_rpc::RpcError;
use serde_json::json;

use crate::clusters::find;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::version::Feature;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/credentials/{ident}", patch(rotate))
}

/// A conductor's failure as the API's answer: upstream's exception classes
/// keep their codes.
pub fn remote_failure(e: RpcError) -> ApiError {
    match e {
        RpcError::Remote(f) => {
            let msg = f.message.lines().next().unwrap_or_default().to_string();
            match f.class.trim_end_matches("_Remote") {
                "ClusterNotFound" => MagnumError::NotFound(msg).into(),
                "NotAuthorized" => MagnumError::NotAuthorized(msg).into(),
                "Conflict" => MagnumError::Conflict(msg).into(),
                // The cloud could not be asked: nothing happened, try again.
                "ServiceUnavailable" => MagnumError::ServiceUnavailable(msg).into(),
                "NotSupported" | "InvalidParameterValue" | "Invalid" => {
                    MagnumError::NotSupportedMsg(msg).into()
                }
                _ => MagnumError::Internal(format!("{}: {msg}", f.class)).into(),
            }
        }
        other => MagnumError::Internal(format!("conductor unreachable: {other}")).into(),
    }
}

async fn rotate(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<Response> {
    ctx.require(Feature::CredentialRotation, "patch")?;
    ctx.enforce(&state, "credential:rotate", &ctx.own_target())?;
    let cluster = find(&state.db, &ctx, &ident).await?;
    // A cluster of an external driver: the conductors that run it rotate.
    let client = match crate::conduct::external_driver(&state, &cluster).await? {
        Some(_) => &state.external,
        None => &state.conductor,
    };
    let Some(client) = client else {
        return Err(MagnumError::Internal(
            "no conductor can be reached: set [DEFAULT] transport_url".into(),
        )
        .into());
    };
    let args = json!({ "cluster": ovo::encode_stored(&cluster) });
    client
        .call(
            "credential_rotate",
            args.as_object().cloned().unwrap_or_default(),
            ctx.context.to_wire(),
        )
        .await
        .map_err(remote_failure)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "uuid": cluster.uuid }))).into_response())
}
