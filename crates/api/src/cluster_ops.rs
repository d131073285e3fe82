//! `/v1/clusters`, write side: create (202 with the new uuid), PATCH
//! update (202), delete (204) and the actions resize (from 1.7) and upgrade
//! (from 1.8), per microversion, with upstream's defaults and validation.
//!
//! Each handler validates, then queues the operation together with the
//! cluster's new status in one transaction (so a refused request changes
//! nothing, and of two racing updates exactly one wins), then nudges the
//! conductors ([`crate::conduct`]).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use magnum_core::objects::status::*;
use magnum_core::objects::{default_nodegroup, Cluster, ClusterTemplate, NodeGroup};
use magnum_core::state::Method;
use magnum_core::{names, ovo, MagnumError};
use magnum_db::{CreateOutcome, Operation};
use serde_json::{json, Map, Value};

use crate::clusters::find;
use crate::conduct::{nudge, wire_context};
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, Field, Kind, MAX_TEXT};
use crate::request::JsonBody;
use crate::version::Version;
use crate::{cluster_templates, patch, AppState};

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

/// What a PATCH may change (upstream's `cluster_update_allowed_properties`).
const UPDATABLE_PROPERTIES: [&str; 3] = ["node_count", "health_status", "health_status_reason"];

fn accepted(uuid: &str) -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "uuid": uuid }))).into_response()
}

fn target(c: &Cluster) -> Value {
    json!({"project_id": c.project_id, "user_id": c.user_id})
}

fn is_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Bool(b)) => !b,
        Some(_) => false,
    }
}

fn int(m: &Map<String, Value>, k: &str) -> Option<i64> {
    m.get(k).and_then(Value::as_i64)
}

/// Upstream's `_enforce_volume_storage_size`.
fn check_storage_size(t: &ClusterTemplate, size: Option<i64>) -> ApiResult<()> {
    let size = size.or(t.docker_volume_size);
    if t.docker_storage_driver.as_deref() == Some("devicemapper") && size.is_none_or(|s| s < 3) {
        let shown = size.map_or("None".to_string(), |s| s.to_string());
        return Err(MagnumError::Invalid(format!(
            "docker volume size {shown} GB is not valid, expecting minimum value 3GB for \
             devicemapper storage driver."
        ))
        .into());
    }
    Ok(())
}

/// The template a new cluster names: 400 before 1.10 when missing, 404
/// after (upstream dropped `ct_not_found_to_bad_request` in 1.10).
async fn template_for_create(
    state: &AppState,
    ctx: &Ctx,
    ident: &str,
) -> ApiResult<ClusterTemplate> {
    match cluster_templates::find(&state.db, ctx, ident).await {
        Err(ApiError::Magnum(MagnumError::ClusterTemplateNotFound(t)))
            if ctx.version < Version::new(1, 10) =>
        {
            Err(ApiError::BadRequest(
                MagnumError::ClusterTemplateNotFound(t).to_string(),
            ))
        }
        other => other,
    }
}

/// Upstream's quota check, where upstream makes it: the project's
/// `Cluster` quota row, else `[quotas] max_clusters_per_project`; the
/// limit comes back. The count that holds is made with the inserts,
/// under the project's lock (`Database::cluster_create_queued`), so
/// concurrent creates never exceed the limit. When a trust is to be made
/// (Keystone), a first count here refuses before it is, and before the
/// checks upstream makes after this one; otherwise the count with the
/// inserts refuses alike, a statement fewer.
async fn check_quota(state: &AppState, ctx: &Ctx) -> ApiResult<i64> {
    let project = ctx.context.project_id.clone().unwrap_or_default();
    let limit = match state.db.quota_get(&project, "Cluster").await? {
        Some(q) => q.hard_limit,
        None => state
            .conf
            .int("quotas", "max_clusters_per_project")
            .unwrap_or(20),
    };
    let makes_trust = matches!(state.auth, crate::AuthMode::Keystone(_)) && state.trusts.is_some();
    if makes_trust && state.db.cluster_count(&project).await? >= limit {
        return Err(over_quota(limit));
    }
    Ok(limit)
}

fn over_quota(limit: i64) -> ApiError {
    MagnumError::ResourceLimitExceeded(format!(
        "You have reached the maximum clusters per project, {limit}. You may delete a \
         cluster to make room for a new one."
    ))
    .into()
}

pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.enforce(&state, "cluster:create", &ctx.own_target())?;
    let given = fields::validate_object("cluster", FIELDS, &body)?;
    let node_count = int(&given, "node_count").unwrap_or(1);
    let master_count = int(&given, "master_count").unwrap_or(1);
    let create_timeout = int(&given, "create_timeout").unwrap_or(60);
    let template_ident = given
        .get("cluster_template_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let template = template_for_create(&state, &ctx, &template_ident).await?;
    let driver = state.drivers.for_template(&template)?;
    check_storage_size(&template, int(&given, "docker_volume_size"))?;
    driver.validate_master_size(master_count)?;
    if ctx.version < Version::new(1, 10) && node_count == 0 {
        return Err(MagnumError::NotSupportedMsg(
            "Resizing a nodegroup to zero is not supported in the provided microversion.".into(),
        )
        .into());
    }
    let limit = check_quota(&state, &ctx).await?;
    if template.is_hidden() && !ctx.context.is_admin {
        return Err(MagnumError::NotAuthorized("Not authorized.".into()).into());
    }

    let s = |k: &str| given.get(k).and_then(Value::as_str).map(str::to_string);
    let mut labels = given
        .get("labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let template_labels = template.labels.clone().unwrap_or_default();
    if labels.is_empty() {
        labels = template_labels;
    } else if given.get("merge_labels").and_then(Value::as_bool) == Some(true) {
        let mut merged = template_labels;
        merged.extend(labels);
        labels = merged;
    }
    let pick = |k: &str, fallback: Option<String>| {
        if is_empty(given.get(k)) {
            fallback
        } else {
            s(k)
        }
    };
    let master_lb_enabled = given
        .get("master_lb_enabled")
        .and_then(Value::as_bool)
        .or(template.master_lb_enabled);
    if master_count > 1 && !master_lb_enabled.unwrap_or(false) {
        return Err(MagnumError::Invalid(
            "master_count must be 1 when master_lb_enabled is False".into(),
        )
        .into());
    }
    let mut cluster = Cluster {
        uuid: uuid::Uuid::new_v4().to_string(),
        name: Some(
            s("name")
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("{}-cluster", names::generate())),
        ),
        project_id: ctx.context.project_id.clone(),
        user_id: ctx.context.user_id.clone(),
        cluster_template_id: Some(template.uuid.clone()),
        keypair: s("keypair").or_else(|| template.keypair_id.clone()),
        docker_volume_size: if is_empty(given.get("docker_volume_size")) {
            template.docker_volume_size
        } else {
            int(&given, "docker_volume_size")
        },
        labels: Some(labels),
        master_flavor_id: pick("master_flavor_id", template.master_flavor_id.clone()),
        flavor_id: pick("flavor_id", template.flavor_id.clone()),
        fixed_network: pick("fixed_network", template.fixed_network.clone()),
        fixed_subnet: pick("fixed_subnet", template.fixed_subnet.clone()),
        floating_ip_enabled: given
            .get("floating_ip_enabled")
            .and_then(Value::as_bool)
            .or(template.floating_ip_enabled),
        master_lb_enabled,
        create_timeout: Some(create_timeout),
        discovery_url: s("discovery_url"),
        status: Some(CREATE_IN_PROGRESS.into()),
        ..Default::default()
    };
    check_cloud(&state, &ctx, &cluster).await?;
    let nodegroups = [
        default_nodegroup(&cluster, &template, master_count, true),
        default_nodegroup(&cluster, &template, node_count, false),
    ];
    // The cluster as upstream's API sends it (before the conductor sets
    // its status).
    let mut sent = cluster.clone();
    sent.status = None;
    let args = json!({
        "cluster": ovo::encode(&sent),
        "master_count": master_count,
        "node_count": node_count,
        "create_timeout": create_timeout,
    });
    let op = Operation::new(
        &cluster.uuid,
        "cluster_create",
        args.as_object().cloned().unwrap_or_default(),
        wire_context(&ctx),
    );
    cluster.status_reason = None;
    // The owner's trust is made with the owner's token, which only this
    // request holds.
    let trust = match (&state.auth, &state.trusts) {
        (crate::AuthMode::Keystone(_), Some(m)) => {
            let t = m.create(&ctx.context, &cluster.uuid).await.map_err(|e| {
                tracing::error!("cluster {}: {e}", cluster.uuid);
                MagnumError::TrusteeOrTrustToClusterFailed(cluster.uuid.clone())
            })?;
            state.db.trust_save(&t).await?;
            Some((m, t))
        }
        _ => None,
    };
    let refused = match state
        .db
        .cluster_create_queued(&cluster, &nodegroups, &op, Some(limit))
        .await
    {
        Ok(CreateOutcome::Queued) => None,
        Ok(CreateOutcome::OverQuota { .. }) => Some(over_quota(limit)),
        Err(e) => Some(e.into()),
    };
    if let Some(e) = refused {
        if let Some((m, t)) = trust {
            let _ = m.delete(&t).await;
            let _ = state.db.trust_forget(&t.cluster_uuid).await;
        }
        return Err(e);
    }
    nudge(&state, &op).await;
    Ok(accepted(&cluster.uuid))
}

/// Flavors and keypair exist in the cloud, when one is configured.
async fn check_cloud(state: &AppState, ctx: &Ctx, c: &Cluster) -> ApiResult<()> {
    if !state.cloud.configured() {
        return Ok(());
    }
    for flavor in [&c.flavor_id, &c.master_flavor_id].into_iter().flatten() {
        state.cloud.flavor(&ctx.context, flavor).await?;
    }
    if let Some(k) = &c.keypair {
        state.cloud.keypair(&ctx.context, k).await?;
    }
    Ok(())
}

/// The rollback query parameter (from 1.3).
fn rollback(ctx: &Ctx, query: Option<&str>) -> ApiResult<bool> {
    let Some(q) = query else { return Ok(false) };
    for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
        if k == "rollback" {
            if ctx.version < Version::new(1, 3) {
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
    if ctx.context.is_admin {
        ctx.enforce(&state, "cluster:update_all_projects", &ctx.own_target())?;
        ctx.context.all_tenants = true;
    }
    let cluster = find(&state.db, &ctx, &ident).await?;
    ctx.enforce(&state, "cluster:update", &target(&cluster))?;
    ctx.enforce(&state, "cluster:update_health_status", &target(&cluster))?;
    let ngs = state.db.nodegroups_of(&cluster.uuid).await?;
    let worker = ngs
        .iter()
        .find(|n| n.is_default == Some(true) && n.role.as_deref() != Some("master"));
    let worker_count = worker.and_then(|w| w.node_count).unwrap_or(0);
    let master_count: i64 = ngs
        .iter()
        .filter(|n| n.role.as_deref() == Some("master"))
        .filter_map(|n| n.node_count)
        .sum();

    let mut doc = match serde_json::to_value(&cluster) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    doc.insert("node_count".into(), json!(worker_count));
    doc.insert("master_count".into(), json!(master_count));
    doc.retain(|k, _| FIELDS.iter().any(|f| f.name == k && !f.readonly));
    let before = doc.clone();
    let touched_node_count = ops.iter().any(|o| o.path == "/node_count");
    let patched = patch::apply(doc, ops)?;
    let checked = fields::validate_object("cluster", FIELDS, &Value::Object(patched))?;
    let before = fields::validate_object("cluster", FIELDS, &Value::Object(before))?;
    let mut delta: Vec<&str> = FIELDS
        .iter()
        .map(|f| f.name)
        .filter(|k| checked.get(*k) != before.get(*k))
        .filter(|k| !UPDATABLE_PROPERTIES.contains(k))
        .collect();
    if !delta.is_empty() {
        delta.sort_unstable();
        return Err(MagnumError::Invalid(format!(
            "cannot change cluster property(ies) {}.",
            delta.join(", ")
        ))
        .into());
    }
    let node_count = if touched_node_count {
        int(&checked, "node_count").unwrap_or(1)
    } else {
        worker_count
    };
    if ctx.version < Version::new(1, 10) && node_count == 0 {
        return Err(MagnumError::NotSupportedMsg(
            "Resizing a nodegroup to zero is not supported in the provided microversion.".into(),
        )
        .into());
    }
    let health_status = checked.get("health_status").cloned().unwrap_or(Value::Null);
    let health_reason = checked
        .get("health_status_reason")
        .cloned()
        .unwrap_or(Value::Null);
    let health_only = node_count == worker_count;
    if health_only
        && health_status == json!(cluster.health_status)
        && health_reason == json!(cluster.health_status_reason)
    {
        // Nothing changes; upstream's conductor returns at once too.
        return Ok(accepted(&cluster.uuid));
    }
    let args = json!({
        "cluster": ovo::encode_stored(&cluster),
        "node_count": node_count,
        "health_status": health_status,
        "health_status_reason": health_reason,
        "rollback": rollback,
    });
    queue(
        &state,
        &ctx,
        &cluster,
        Method::ClusterUpdate,
        args,
        health_only,
    )
    .await?;
    Ok(accepted(&cluster.uuid))
}

/// Queue `method` behind its status gate; refuse as upstream's conductor
/// does when the cluster's status forbids it.
async fn queue(
    state: &AppState,
    ctx: &Ctx,
    cluster: &Cluster,
    method: Method,
    args: Value,
    health_only: bool,
) -> ApiResult<Operation> {
    let op = Operation::new(
        &cluster.uuid,
        method.name(),
        args.as_object().cloned().unwrap_or_default(),
        wire_context(ctx),
    );
    let gate = method.gate(health_only);
    if !state.db.operation_enqueue(&op, gate).await? {
        let now = state
            .db
            .cluster_get(&cluster.uuid)
            .await?
            .ok_or_else(|| MagnumError::ClusterNotFound(cluster.uuid.clone()))?;
        return Err(method
            .refusal(now.status.as_deref().unwrap_or("None"))
            .into());
    }
    nudge(state, &op).await;
    Ok(op)
}

pub async fn delete(
    State(state): State<AppState>,
    mut ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<Response> {
    if ctx.context.is_admin {
        ctx.enforce(&state, "cluster:delete_all_projects", &ctx.own_target())?;
        ctx.context.all_tenants = true;
    }
    let cluster = find(&state.db, &ctx, &ident).await?;
    ctx.enforce(&state, "cluster:delete", &target(&cluster))?;
    queue(
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

fn since(ctx: &Ctx, minor: u32, api: &'static str) -> ApiResult<()> {
    if ctx.version < Version::new(1, minor) {
        return Err(ApiError::NotInVersion {
            version: ctx.version.to_string(),
            api,
        });
    }
    Ok(())
}

/// The node group an action names, else the default worker group.
async fn action_nodegroup(
    state: &AppState,
    ctx: &Ctx,
    cluster: &Cluster,
    ident: Option<&str>,
) -> ApiResult<NodeGroup> {
    match ident.filter(|s| !s.is_empty()) {
        Some(ident) => {
            let mut found = state
                .db
                .nodegroup_find(&ctx.context, &cluster.uuid, ident)
                .await?;
            match found.len() {
                1 => Ok(found.remove(0)),
                0 => Err(MagnumError::NodeGroupNotFound(ident.to_string()).into()),
                _ => Err(MagnumError::Conflict(
                    "Multiple nodegroups exist with same name. Please use the nodegroup uuid \
                     instead."
                        .into(),
                )
                .into()),
            }
        }
        None => state
            .db
            .nodegroups_of(&cluster.uuid)
            .await?
            .into_iter()
            .find(|n| n.is_default == Some(true) && n.role.as_deref() != Some("master"))
            .ok_or_else(|| MagnumError::NodeGroupNotFound("default-worker".into()).into()),
    }
}

pub async fn resize(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    since(&ctx, 7, "resize")?;
    let req = fields::validate_object("cluster_resize_req", RESIZE_FIELDS, &body)?;
    let node_count = int(&req, "node_count").unwrap_or(0);
    if ctx.version < Version::new(1, 10) && node_count == 0 {
        return Err(MagnumError::NotSupportedMsg(
            "Resizing a nodegroup to zero is not supported in the provided microversion.".into(),
        )
        .into());
    }
    let cluster = find(&state.db, &ctx, &ident).await?;
    ctx.enforce(&state, "cluster:resize", &target(&cluster))?;
    let ng = action_nodegroup(
        &state,
        &ctx,
        &cluster,
        req.get("nodegroup").and_then(Value::as_str),
    )
    .await?;
    let min = ng.min_node_count.unwrap_or(0);
    let out_of_bounds = ng.role.as_deref() != Some("master")
        && (min > node_count || ng.max_node_count.is_some_and(|m| m > 0 && m < node_count));
    if out_of_bounds {
        return Err(MagnumError::NgResizeOutBounds {
            nodegroup: ng.name.clone(),
            min: min.to_string(),
            max: ng
                .max_node_count
                .map_or("None".to_string(), |m| m.to_string()),
        }
        .into());
    }
    if ng.role.as_deref() == Some("master") {
        let template = crate::clusters::template_of(&state.db, &cluster).await?;
        state
            .drivers
            .for_template(&template)?
            .validate_master_resize(node_count)?;
    }
    let args = json!({
        "cluster": ovo::encode_stored(&cluster),
        "node_count": node_count,
        "nodes_to_remove": req.get("nodes_to_remove").cloned().unwrap_or(json!([])),
        "nodegroup": ovo::encode_stored(&ng),
    });
    queue(&state, &ctx, &cluster, Method::ClusterResize, args, false).await?;
    Ok(accepted(&cluster.uuid))
}

pub async fn upgrade(
    State(state): State<AppState>,
    mut ctx: Ctx,
    Path(ident): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    since(&ctx, 7, "upgrade")?;
    let req = fields::validate_object("cluster_upgrade_req", UPGRADE_FIELDS, &body)?;
    if ctx.version == Version::new(1, 7) {
        return Err(MagnumError::NotSupportedMsg(
            "Cluster upgrade is not supported in the provided microversion.".into(),
        )
        .into());
    }
    if ctx.context.is_admin {
        ctx.enforce(&state, "cluster:upgrade_all_projects", &ctx.own_target())?;
        ctx.context.all_tenants = true;
    }
    let cluster = find(&state.db, &ctx, &ident).await?;
    ctx.enforce(&state, "cluster:upgrade", &target(&cluster))?;
    let template_ident = req
        .get("cluster_template")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let template = cluster_templates::find(&state.db, &ctx, template_ident).await?;
    let ng = action_nodegroup(
        &state,
        &ctx,
        &cluster,
        req.get("nodegroup").and_then(Value::as_str),
    )
    .await?;
    if req.get("nodegroup").is_some()
        && Some(template.uuid.as_str()) != cluster.cluster_template_id.as_deref()
        && ng.is_default != Some(true)
    {
        let current = crate::clusters::template_of(&state.db, &cluster).await?;
        return Err(MagnumError::InvalidClusterTemplateForUpgrade(format!(
            "Nodegroup {} can be upgraded only to match cluster's template ({}).",
            ng.name,
            current.name.unwrap_or_default()
        ))
        .into());
    }
    let args = json!({
        "cluster": ovo::encode_stored(&cluster),
        "cluster_template": ovo::encode_stored(&template),
        "max_batch_size": int(&req, "max_batch_size").unwrap_or(1),
        "nodegroup": ovo::encode_stored(&ng),
    });
    queue(&state, &ctx, &cluster, Method::ClusterUpgrade, args, false).await?;
    Ok(accepted(&cluster.uuid))
}
