//! `/v1/clusters/{cluster}/nodegroups` (microversion 1.9 and later): list
//! (summary view, optionally of one role), show (full view with label
//! differences from the cluster's labels), and the write side with
//! upstream's rules: create (202 with the new group), PATCH update of its
//! minimum and maximum sizes and (from 1.14) its Kubernetes node labels and
//! taints (202), and delete of a non-default group (204).
//!
//! Like the cluster write side ([`crate::cluster_ops`]), each write goes
//! through its service ([`crate::service::nodegroups`]), which queues the
//! operation together with the cluster's and the group's new statuses in
//! one transaction, so a refused request changes nothing, then nudges the
//! conductors.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use magnum_core::objects::status::ALL;
use magnum_core::objects::{Cluster, NodeGroup};
use magnum_core::MagnumError;
use magnum_db::Database;
use serde_json::{Map, Value};

use crate::cluster_templates::timestamp;
use crate::clusters::{find as find_cluster, labels_diff};
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, Field, Kind};
use crate::links::BaseUrl;
use crate::pagination::ListQuery;
use crate::request::{json_response, JsonBody};
use crate::version::Feature;
use crate::{patch, service, AppState};

mod views;
use views::{full, Summary, DOC_FIELDS};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/clusters/{cluster}/nodegroups", get(list).post(create))
        .route(
            "/clusters/{cluster}/nodegroups/{ident}",
            get(show).patch(update).delete(delete),
        )
}

async fn list(
    State(state): State<AppState>,
    mut ctx: Ctx,
    base: BaseUrl,
    Path(cluster): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    ctx.require(Feature::NodeGroups, "get_all")?;
    ctx.enforce(&state, "nodegroup:get_all", &ctx.own_target())?;
    ctx.all_projects_if_admin(&state, "nodegroup:get_all_all_projects")?;
    let q = ListQuery::parse(raw.as_deref(), &["role"])?;
    let cluster = find_cluster(&state.db, &ctx, &cluster).await?;
    let role = q
        .extra
        .iter()
        .find(|(k, _)| k == "role")
        .map(|(_, v)| v.clone());
    let (ctx, db) = (&ctx, &state.db);
    let cluster_uuid = cluster.uuid.as_str();
    let (page, limit) = q
        .resolve(
            state.max_limit,
            Database::nodegroup_sort_key_valid,
            |m| async move {
                let found = db.nodegroup_find(&ctx.context, cluster_uuid, &m).await?;
                let missing =
                    || MagnumError::NotFound(format!("Nodegroup {m} could not be found."));
                Ok(found.into_iter().next().ok_or_else(missing)?.id)
            },
        )
        .await?;
    let items = state
        .db
        .nodegroup_list(&ctx.context, &cluster.uuid, role.as_deref(), &page)
        .await?;
    let resource = format!("clusters/{}/nodegroups", cluster.uuid);
    let next = q.next_link(
        &base,
        &resource,
        items.len(),
        limit,
        items.last().map(|n| n.uuid.as_str()),
    );
    #[derive(serde::Serialize)]
    struct Body<'a> {
        nodegroups: Vec<Summary<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    }
    json_response(
        &Body {
            nodegroups: items.iter().map(Summary).collect(),
            next,
        },
        items.len() * 512,
    )
}

async fn show(
    State(state): State<AppState>,
    mut ctx: Ctx,
    base: BaseUrl,
    Path((cluster, ident)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.require(Feature::NodeGroups, "get_one")?;
    ctx.enforce(&state, "nodegroup:get", &ctx.own_target())?;
    ctx.all_projects_if_admin(&state, "nodegroup:get_one_all_projects")?;
    let cluster = find_cluster(&state.db, &ctx, &cluster).await?;
    let ng = find(&state.db, &ctx, &cluster, &ident).await?;
    Ok(Json(full(
        &ng,
        &cluster.labels.clone().unwrap_or_default(),
        &base,
    )))
}

/// A cluster's node group by id, UUID or name.
async fn find(db: &Database, ctx: &Ctx, cluster: &Cluster, ident: &str) -> ApiResult<NodeGroup> {
    let found = db
        .nodegroup_find(&ctx.context, &cluster.uuid, ident)
        .await?;
    crate::find::one(found, ident, &NODEGROUP)
}

const NODEGROUP: crate::find::Kind = crate::find::Kind {
    not_found: |ident| MagnumError::NodeGroupNotFound(ident.to_string()).into(),
    plural: "nodegroups",
    singular: "nodegroup",
};

const STR255: Kind = Kind::Str { min: 1, max: 255 };
const COUNT: Kind = Kind::Int {
    min: Some(0),
    max: None,
};

/// The attributes of upstream's API `NodeGroup` type. `name` is mandatory
/// here: upstream's object refuses a node group without one.
const FIELDS: &[Field] = &[
    Field::new(
        "id",
        Kind::Int {
            min: Some(1),
            max: None,
        },
    ),
    Field::new("uuid", Kind::Uuid),
    Field::new("name", STR255).mandatory(),
    Field::new("cluster_id", Kind::Uuid),
    Field::new("project_id", Kind::Text).readonly(),
    Field::new(
        "docker_volume_size",
        Kind::Int {
            min: Some(1),
            max: None,
        },
    ),
    Field::new("labels", Kind::Labels),
    Field::new("links", Kind::Text).readonly(),
    Field::new("flavor_id", STR255),
    Field::new("image_id", STR255),
    Field::new("node_addresses", Kind::Text).readonly(),
    Field::new("node_count", COUNT),
    Field::new("role", STR255),
    Field::new("min_node_count", COUNT),
    Field::new("max_node_count", COUNT),
    Field::new("is_default", Kind::Bool),
    Field::new("stack_id", Kind::Text).readonly(),
    Field::new("status", Kind::Enum(&ALL)),
    Field::new(
        "status_reason",
        Kind::Unicode {
            max: fields::MAX_TEXT,
        },
    ),
    Field::new(
        "version",
        Kind::Unicode {
            max: fields::MAX_TEXT,
        },
    ),
    Field::new("merge_labels", Kind::Bool),
    Field::new("labels_overridden", Kind::Labels),
    Field::new("labels_added", Kind::Labels),
    Field::new("labels_skipped", Kind::Labels),
    Field::new("node_labels", Kind::StrMap),
    Field::new("node_taints", Kind::ObjList),
    Field::new("created_at", Kind::Text).readonly(),
    Field::new("updated_at", Kind::Text).readonly(),
];

/// The attributes a request of this microversion knows.
fn fields_for(ctx: &Ctx) -> Vec<Field> {
    FIELDS
        .iter()
        .filter(|f| {
            ctx.has(Feature::NodeLabelsAndTaints)
                || !matches!(f.name, "node_labels" | "node_taints")
        })
        .copied()
        .collect()
}

fn field(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.name == name)
}

/// Upstream's `NodeGroupPatchType` internal attributes (beyond the common):
/// a PATCH may change only the minimum and maximum sizes, node labels and
/// node taints. The node count changes through the cluster resize action.
const PATCH_INTERNAL: [&str; 15] = [
    "/name",
    "/cluster_id",
    "/project_id",
    "/docker_volume_size",
    "/labels",
    "/flavor_id",
    "/image_id",
    "/node_addresses",
    "/node_count",
    "/role",
    "/is_default",
    "/stack_id",
    "/status",
    "/status_reason",
    "/version",
];

/// What a PATCH may change.
const PATCHABLE: [&str; 4] = [
    "min_node_count",
    "max_node_count",
    "node_labels",
    "node_taints",
];

fn accepted(body: Value) -> Response {
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    base: BaseUrl,
    Path(cluster): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.require(Feature::NodeGroups, "post")?;
    let given = fields::validate_object("nodegroup", &fields_for(&ctx), &body)?;
    ctx.enforce(&state, "nodegroup:create", &ctx.own_target())?;
    let cluster = find_cluster(&state.db, &ctx, &cluster).await?;
    let stored = service::nodegroups::create(&state, &ctx, &cluster, &given).await?;
    let cluster_labels = cluster.labels.unwrap_or_default();
    Ok(accepted(full(&stored, &cluster_labels, &base)))
}

async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    base: BaseUrl,
    Path((cluster, ident)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.require(Feature::NodeGroups, "patch")?;
    let ops = parse_patch(&body)?;
    let cluster = find_cluster(&state.db, &ctx, &cluster).await?;
    ctx.enforce(&state, "nodegroup:update", &ctx.own_target())?;
    let ng = find(&state.db, &ctx, &cluster, &ident).await?;
    let new = patched(&ctx, &ng, ops)?;
    let new = service::nodegroups::update(&state, &ctx, &cluster, &ng, new).await?;
    let cluster_labels = cluster.labels.unwrap_or_default();
    Ok(accepted(full(&new, &cluster_labels, &base)))
}

/// A node group PATCH: upstream's rules, and upstream judges a path by its
/// first segment (`/labels/x` is as internal as `/labels`).
fn parse_patch(body: &Value) -> ApiResult<Vec<patch::Op>> {
    let ops = patch::parse_with(body, &["/min_node_count"], &PATCH_INTERNAL)?;
    for op in &ops {
        let top = format!("/{}", op.path[1..].split('/').next().unwrap_or_default());
        if patch::INTERNAL.contains(&top.as_str()) || PATCH_INTERNAL.contains(&top.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "'{}' is an internal attribute and can not be updated",
                op.path
            )));
        }
    }
    Ok(ops)
}

/// `ng` with `ops` applied to the attributes this microversion shows, each
/// patchable one checked as its field; the others stay as they are.
fn patched(ctx: &Ctx, ng: &NodeGroup, ops: Vec<patch::Op>) -> ApiResult<NodeGroup> {
    let labels_and_taints = ctx.has(Feature::NodeLabelsAndTaints);
    let stored = match serde_json::to_value(ng) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let doc: Map<String, Value> = DOC_FIELDS
        .iter()
        .filter(|k| labels_and_taints || !matches!(**k, "node_labels" | "node_taints"))
        .map(|k| {
            (
                k.to_string(),
                stored.get(*k).cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    let patched = patch::apply(doc, ops)?;
    let mut changed = Map::new();
    for name in PATCHABLE {
        if name.starts_with("node_") && !labels_and_taints {
            continue;
        }
        let value = match patched.get(name) {
            None | Some(Value::Null) => Value::Null,
            Some(v) => match field(name) {
                Some(f) => fields::check(f, v)?,
                None => v.clone(),
            },
        };
        changed.insert(name.to_string(), value);
    }
    let mut new = ng.clone();
    new.min_node_count = Some(
        changed
            .get("min_node_count")
            .and_then(Value::as_i64)
            .unwrap_or(0),
    );
    new.max_node_count = changed.get("max_node_count").and_then(Value::as_i64);
    if labels_and_taints {
        new.node_labels = changed
            .get("node_labels")
            .and_then(Value::as_object)
            .cloned();
        new.node_taints = changed
            .get("node_taints")
            .and_then(Value::as_array)
            .cloned();
    }
    Ok(new)
}

async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((cluster, ident)): Path<(String, String)>,
) -> ApiResult<Response> {
    ctx.require(Feature::NodeGroups, "delete")?;
    ctx.enforce(&state, "nodegroup:delete", &ctx.own_target())?;
    let cluster = find_cluster(&state.db, &ctx, &cluster).await?;
    let ng = find(&state.db, &ctx, &cluster, &ident).await?;
    service::nodegroups::delete(&state, &ctx, &cluster, ng).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
