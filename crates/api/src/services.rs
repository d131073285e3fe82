//! `/v1/mservices` (each Magnum service process and whether it is up) and
//! `/v1/stats` (how many clusters and nodes a project has).

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use magnum_core::config::opts;
use magnum_core::MagnumError;
use magnum_db::ServiceRecord;
use serde_json::{json, Value};

use crate::cluster_templates::timestamp;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/mservices", get(mservices))
        .route("/stats", get(stats))
}

/// Upstream's liveness rule: forced down, or no heartbeat within
/// `[DEFAULT] service_down_time` seconds, is down.
fn state(s: &ServiceRecord, down_after: i64) -> &'static str {
    if s.forced_down == Some(true) {
        return "down";
    }
    let Some(last) = s.last_seen_up.or(s.updated_at).or(s.created_at) else {
        return "down";
    };
    let elapsed = (Utc::now().naive_utc() - last).num_seconds().abs();
    if elapsed <= down_after {
        "up"
    } else {
        "down"
    }
}

fn query_args(raw: Option<&str>, accepted: &[&str]) -> ApiResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if !accepted.contains(&k.as_ref()) {
            return Err(ApiError::BadRequest(format!("Unknown argument: \"{k}\"")));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

async fn mservices(
    State(state_): State<AppState>,
    ctx: Ctx,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    ctx.enforce(&state_, "magnum-service:get_all", &ctx.own_target())?;
    query_args(q.as_deref(), &[])?;
    let down_after = state_
        .conf
        .get(opts::default::SERVICE_DOWN_TIME)
        .unwrap_or(180);
    let rows = state_.db.service_list().await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|s| {
            json!({
                "binary": s.binary,
                "created_at": timestamp(&s.created_at),
                "disabled": s.disabled.unwrap_or(false),
                "disabled_reason": s.disabled_reason,
                "host": s.host,
                "id": s.id,
                "report_count": s.report_count,
                "state": state(s, down_after),
                "updated_at": timestamp(&s.updated_at),
            })
        })
        .collect();
    Ok(Json(json!({ "mservices": items })))
}

async fn stats(
    State(state_): State<AppState>,
    ctx: Ctx,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    ctx.enforce(&state_, "stats:get_all", &ctx.own_target())?;
    let mut project_id = None;
    let mut kind = "cluster".to_string();
    for (k, v) in query_args(q.as_deref(), &["project_id", "type"])? {
        match k.as_str() {
            "project_id" => project_id = Some(v),
            _ => kind = v,
        }
    }
    if kind.to_lowercase() != "cluster" {
        return Err(MagnumError::Invalid(
            "Invalid stats type. Allowed values are 'cluster'".into(),
        )
        .into());
    }
    // Non-admins see their own project only.
    if !ctx.context.is_admin {
        let own = ctx.context.project_id.clone();
        let asked = project_id.clone().or_else(|| own.clone());
        if asked != own {
            return Err(MagnumError::NotAuthorized("Not authorized.".into()).into());
        }
        project_id = own;
    }
    let (clusters, nodes) = state_.db.cluster_stats(project_id.as_deref()).await?;
    Ok(Json(json!({"clusters": clusters, "nodes": nodes})))
}
