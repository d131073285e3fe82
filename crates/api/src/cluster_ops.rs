//! `/v1/clusters`, write side: create (202 with the new uuid), PATCH
//! update (202), delete (204) and the actions resize (from 1.7) and upgrade
//! (from 1.8), per microversion, with upstream's defaults and validation.
//!
//! Each handler validates the request and checks the caller's policy; the
//! service ([`crate::service::clusters`]) applies upstream's rules, then
//! queues the operation together with the cluster's new status in one
//! transaction (so a refused request changes nothing, and of two racing
//! updates exactly one wins) and nudges the conductors ([`crate::conduct`]).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use magnum_core::objects::status::ALL;
use magnum_core::objects::Cluster;
use magnum_core::state::Method;
use magnum_core::MagnumError;
use serde_json::{json, Value};

use crate::clusters::find;
use crate::conduct::enqueue;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, Field, Kind, MAX_TEXT};
use crate::request::JsonBody;
use crate::version::Feature;
use crate::{patch, service, AppState};

const STR255: Kind = Kind::Str { min: 1, max: 255 };
/// wsme's `wtypes.text`.
const TEXT: Kind = Kind::Unicode { max: MAX_TEXT };
const HEALTH: [&str; 3] = ["HEALTHY", "UNHEALTHY", "UNKNOWN"];

/// The attributes of upstream's API `Cluster` type.
pub const FIELDS: &[Field] = &[
    Field::new("uuid", Kind::Uuid),
    Field::new("name", Kind::Name { min: 1, max: 242 }),
    Field::new("cluster_template_id", TEXT).mandatory(),
    Field::new("keypair", STR255),
    Field::new(
        "node_count",
        Kind::Int {
            min: Some(0),
            max: None,
        },
    ),
    Field::new(
        "master_count",
        Kind::Int {
            min: Some(1),
            max: None,
        },
    ),
    Field::new(
        "docker_volume_size",
        Kind::Int {
            min: Some(1),
            max: None,
        },
    ),
    Field::new("labels", Kind::Labels),
    Field::new("master_flavor_id", STR255),
    Field::new("flavor_id", STR255),
    Field::new(
        "create_timeout",
        Kind::Int {
            min: Some(0),
            max: None,
        },
    ),
    Field::new("links", Kind::Text).readonly(),
    Field::new("stack_id", Kind::Text).readonly(),
    Field::new("cluster_id", Kind::Text).readonly(),
    Field::new("status", Kind::Enum(&ALL)),
    Field::new("status_reason", TEXT),
    Field::new("health_status", Kind::Enum(&HEALTH)),
    Field::new("health_status_reason", Kind::StrMap),
    Field::new("discovery_url", TEXT),
    Field::new("api_address", Kind::Text).readonly(),
    Field::new("coe_version", Kind::Text).readonly(),
    Field::new("container_version", Kind::Text).readonly(),
    Field::new("project_id", Kind::Text).readonly(),
    Field::new("user_id", Kind::Text).readonly(),
    Field::new("node_addresses", Kind::Text).readonly(),
    Field::new("master_addresses", Kind::Text).readonly(),
    Field::new("faults", Kind::StrMap),
    Field::new("fixed_network", STR255),
    Field::new("fixed_subnet", STR255),
    Field::new("floating_ip_enabled", Kind::Bool),
    Field::new("merge_labels", Kind::Bool),
    Field::new("labels_overridden", Kind::Labels),
    Field::new("labels_added", Kind::Labels),
    Field::new("labels_skipped", Kind::Labels),
    Field::new("master_lb_enabled", Kind::Bool),
    Field::new("created_at", Kind::Text),
    Field::new("updated_at", Kind::Text),
];

/// Upstream's `ClusterPatchType` internal attributes (beyond the common).
const PATCH_INTERNAL: [&str; 9] = [
    "/api_address",
    "/node_addresses",
    "/master_addresses",
    "/stack_id",
    "/cluster_id",
    "/ca_cert_ref",
    "/magnum_cert_ref",
    "/etcd_ca_cert_ref",
    "/front_proxy_ca_cert_ref",
];

fn accepted(uuid: &str) -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "uuid": uuid }))).into_response()
}

fn target(c: &Cluster) -> Value {
    json!({"project_id": c.project_id, "user_id": c.user_id})
}

pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.enforce(&state, "cluster:create", &ctx.own_target())?;
    let given = fields::validate_object("cluster", FIELDS, &body)?;
    let uuid = service::clusters::create(&state, &ctx, &given).await?;
    Ok(accepted(&uuid))
}

/// The rollback query parameter (from 1.3).
fn rollback(ctx: &Ctx, query: Option<&str>) -> ApiResult<bool> {
    let Some(q) = query else { return Ok(false) };
    for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
        if k == "rollback" {
            if !ctx.has(Feature::Rollback) {
                return Err(ApiError::BadRequest(format!(
                    "Unknown argument: \"rollback\" (microversion {})",
                    ctx.version
                )));
            }
            return fields::parse_bool(&Value::String(v.to_string())).ok_or_else(|| {
                ApiError::invalid_input(
                    "rollback",
                    &Value::String(v.to_string()),
                    "Invalid boolean",
                )
            });
        }
    }
    Ok(false)
}

pub async fn update(
    State(state): State<AppState>,
    mut ctx: Ctx,
    Path(ident): Path<String>,
    RawQuery(query): RawQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let ops = patch::parse_with(&body, &["/cluster_template_id"], &PATCH_INTERNAL)?;
    let rollback = rollback(&ctx, query.as_deref())?;
    ctx.all_projects_if_admin(&state, "cluster:update_all_projects")?;
    let cluster = find(&state.db, &ctx, &ident).await?;
    ctx.enforce(&state, "cluster:update", &target(&cluster))?;
    ctx.enforce(&state, "cluster:update_health_status", &target(&cluster))?;
    service::clusters::update(&state, &ctx, &cluster, ops, rollback).await?;
    Ok(accepted(&cluster.uuid))
}

pub async fn delete(
    State(state): State<AppState>,
    mut ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<Response> {
    ctx.all_projects_if_admin(&state, "cluster:delete_all_projects")?;
    let cluster = find(&state.db, &ctx, &ident).await?;
    ctx.enforce(&state, "cluster:delete", &target(&cluster))?;
    enqueue(
        &state,
        &ctx,
        &cluster,
        Method::ClusterDelete,
        json!({ "uuid": cluster.uuid }),
        false,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

const RESIZE_FIELDS: &[Field] = &[
    Field::new(
        "node_count",
        Kind::Int {
            min: Some(0),
            max: None,
        },
    )
    .mandatory(),
    Field::new("nodes_to_remove", Kind::StrList),
    Field::new("nodegroup", STR255),
];

const UPGRADE_FIELDS: &[Field] = &[
    Field::new(
        "max_batch_size",
        Kind::Int {
            min: Some(1),
            max: None,
        },
    ),
    Field::new("nodegroup", STR255),
    Field::new("cluster_template", STR255),
];

pub async fn resize(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.require(Feature::ClusterActions, "resize")?;
    let req = fields::validate_object("cluster_resize_req", RESIZE_FIELDS, &body)?;
    let node_count = req.get("node_count").and_then(Value::as_i64).unwrap_or(0);
    service::clusters::refuse_zero_nodes(&ctx, node_count)?;
    let cluster = find(&state.db, &ctx, &ident).await?;
    ctx.enforce(&state, "cluster:resize", &target(&cluster))?;
    service::clusters::resize(&state, &ctx, &cluster, &req, node_count).await?;
    Ok(accepted(&cluster.uuid))
}

pub async fn upgrade(
    State(state): State<AppState>,
    mut ctx: Ctx,
    Path(ident): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.require(Feature::ClusterActions, "upgrade")?;
    let req = fields::validate_object("cluster_upgrade_req", UPGRADE_FIELDS, &body)?;
    if !ctx.has(Feature::Upgrade) {
        return Err(MagnumError::NotSupportedMsg(
            "Cluster upgrade is not supported in the provided microversion.".into(),
        )
        .into());
    }
    ctx.all_projects_if_admin(&state, "cluster:upgrade_all_projects")?;
    let cluster = find(&state.db, &ctx, &ident).await?;
    ctx.enforce(&state, "cluster:upgrade", &target(&cluster))?;
    service::clusters::upgrade(&state, &ctx, &cluster, &req).await?;
    Ok(accepted(&cluster.uuid))
}
