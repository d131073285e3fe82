//! `/v1/clusters/{cluster}/nodegroups`, read side (microversion 1.9 and
//! later): list (summary view, optionally of one role) and show (full view
//! with label differences from the cluster's labels). Creating, updating
//! and deleting node groups arrive with the conductor (issue 3).

use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use magnum_core::objects::NodeGroup;
use magnum_core::MagnumError;
use magnum_db::Database;
use serde_json::{json, Map, Value};

use crate::cluster_templates::timestamp;
use crate::clusters::{find as find_cluster, labels_diff};
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::links::BaseUrl;
use crate::pagination::ListQuery;
use crate::version::Version;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/clusters/{cluster}/nodegroups", get(list))
        .route("/clusters/{cluster}/nodegroups/{ident}", get(show))
}

/// Node groups exist from microversion 1.9.
fn since_1_9(ctx: &Ctx, api: &'static str) -> ApiResult<()> {
    if ctx.version < Version::new(1, 9) {
        return Err(ApiError::NotInVersion {
            version: ctx.version.to_string(),
            api,
        });
    }
    Ok(())
}

const SUMMARY: [&str; 9] = [
    "uuid",
    "name",
    "flavor_id",
    "node_count",
    "role",
    "is_default",
    "image_id",
    "status",
    "stack_id",
];

fn full(ng: &NodeGroup, cluster_labels: &Map<String, Value>, base: &BaseUrl) -> Value {
    let stored = match serde_json::to_value(ng) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut out = Map::new();
    for field in [
        "id",
        "uuid",
        "name",
        "cluster_id",
        "project_id",
        "docker_volume_size",
        "labels",
        "flavor_id",
        "image_id",
        "node_addresses",
        "node_count",
        "role",
        "min_node_count",
        "max_node_count",
        "is_default",
        "stack_id",
        "status",
        "status_reason",
        "version",
        "node_labels",
        "node_taints",
    ] {
        out.insert(
            field.into(),
            stored.get(field).cloned().unwrap_or(Value::Null),
        );
    }
    out.insert("created_at".into(), timestamp(&ng.created_at));
    out.insert("updated_at".into(), timestamp(&ng.updated_at));
    let (overridden, added, skipped) =
        labels_diff(cluster_labels, &ng.labels.clone().unwrap_or_default());
    out.insert("labels_overridden".into(), Value::Object(overridden));
    out.insert("labels_added".into(), Value::Object(added));
    out.insert("labels_skipped".into(), Value::Object(skipped));
    let path = format!("nodegroups/{}", ng.uuid);
    let cluster_path = format!("clusters/{}", ng.cluster_id);
    out.insert(
        "links".into(),
        json!([
            base.link("self", &cluster_path, &path, false),
            base.link("bookmark", &cluster_path, &path, true)
        ]),
    );
    let mut sorted: Vec<(String, Value)> = out.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(sorted.into_iter().collect())
}

fn summary(ng: &NodeGroup) -> Value {
    let stored = match serde_json::to_value(ng) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut keys = SUMMARY;
    keys.sort_unstable();
    Value::Object(
        keys.iter()
            .map(|k| {
                (
                    k.to_string(),
                    stored.get(*k).cloned().unwrap_or(Value::Null),
                )
            })
            .collect(),
    )
}

async fn list(
    State(state): State<AppState>,
    mut ctx: Ctx,
    base: BaseUrl,
    Path(cluster): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    since_1_9(&ctx, "get_all")?;
    ctx.enforce(&state, "nodegroup:get_all", &ctx.own_target())?;
    if ctx.context.is_admin {
        ctx.enforce(&state, "nodegroup:get_all_all_projects", &ctx.own_target())?;
        ctx.context.all_tenants = true;
    }
    let q = ListQuery::parse(raw.as_deref(), &["role"])?;
    let cluster = find_cluster(&state.db, &ctx, &cluster).await?;
    let role = q
        .extra
        .iter()
        .find(|(k, _)| k == "role")
        .map(|(_, v)| v.clone());
    let limit = q.effective_limit(state.max_limit)?;
    q.dir()?;
    let marker_id = match &q.marker {
        Some(m) => Some(
            state
                .db
                .nodegroup_find(&ctx.context, &cluster.uuid, m)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| MagnumError::NotFound(format!("Nodegroup {m} could not be found.")))?
                .id,
        ),
        None => None,
    };
    let page = q.page(
        state.max_limit,
        marker_id,
        Database::nodegroup_sort_key_valid,
    )?;
    let items = state
        .db
        .nodegroup_list(&ctx.context, &cluster.uuid, role.as_deref(), &page)
        .await?;
    let mut body = Map::new();
    body.insert(
        "nodegroups".into(),
        Value::Array(items.iter().map(summary).collect()),
    );
    let resource = format!("clusters/{}/nodegroups", cluster.uuid);
    if let Some(next) = q.next_link(
        &base,
        &resource,
        items.len(),
        limit,
        items.last().map(|n| n.uuid.as_str()),
    ) {
        body.insert("next".into(), Value::String(next));
    }
    Ok(Json(Value::Object(body)))
}

async fn show(
    State(state): State<AppState>,
    mut ctx: Ctx,
    base: BaseUrl,
    Path((cluster, ident)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    since_1_9(&ctx, "get_one")?;
    ctx.enforce(&state, "nodegroup:get", &ctx.own_target())?;
    if ctx.context.is_admin {
        ctx.enforce(&state, "nodegroup:get_one_all_projects", &ctx.own_target())?;
        ctx.context.all_tenants = true;
    }
    let cluster = find_cluster(&state.db, &ctx, &cluster).await?;
    let mut found = state
        .db
        .nodegroup_find(&ctx.context, &cluster.uuid, &ident)
        .await?;
    let ng =
        match found.len() {
            0 => {
                return Err(
                    MagnumError::NotFound(format!("Nodegroup {ident} could not be found.")).into(),
                )
            }
            1 => found.remove(0),
            _ => return Err(MagnumError::Conflict(
                "Multiple nodegroups exist with same name. Please use the nodegroup uuid instead."
                    .into(),
            )
            .into()),
        };
    Ok(Json(full(
        &ng,
        &cluster.labels.clone().unwrap_or_default(),
        &base,
    )))
}
