//! Clusters: create (quota, the owner's trust, the cluster with its two
//! default node groups and its operation in one transaction), update,
//! resize and upgrade, each queued behind the cluster's status gate.

use magnum_core::config::opts;
use magnum_core::drivers::Driver;
use magnum_core::objects::{default_nodegroup, Cluster, ClusterTemplate, NodeGroup};
use magnum_core::state::Method;
use magnum_core::{cluster_rules, ovo, MagnumError};
use magnum_db::{CreateOutcome, Operation};
use serde_json::{json, Map, Value};

use crate::cluster_ops::FIELDS;
use crate::conduct::{enqueue, nudge, wire_context};
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::version::Feature;
use crate::{cluster_templates, fields, patch, AppState};

fn int(m: &Map<String, Value>, k: &str) -> Option<i64> {
    m.get(k).and_then(Value::as_i64)
}

/// Before 1.10 no node group may have zero nodes.
pub fn refuse_zero_nodes(ctx: &Ctx, node_count: i64) -> ApiResult<()> {
    if !ctx.has(Feature::ZeroNodes) && node_count == 0 {
        return Err(MagnumError::NotSupportedMsg(
            "Resizing a nodegroup to zero is not supported in the provided microversion.".into(),
        )
        .into());
    }
    Ok(())
}

/// Create the cluster `given` (validated attributes) asks for, owned by the
/// caller; its uuid comes back, its operation queued and announced.
pub async fn create(state: &AppState, ctx: &Ctx, given: &Map<String, Value>) -> ApiResult<String> {
    let node_count = int(given, "node_count").unwrap_or(1);
    let master_count = int(given, "master_count").unwrap_or(1);
    let create_timeout = int(given, "create_timeout").unwrap_or(60);
    let template_ident = given
        .get("cluster_template_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let template = template_for_create(state, ctx, template_ident).await?;
    let driver = state.drivers.for_template(&template)?;
    check_trust_possible(state, driver.as_ref())?;
    cluster_rules::check_storage_size(&template, int(given, "docker_volume_size"))?;
    driver.validate_master_size(master_count)?;
    refuse_zero_nodes(ctx, node_count)?;
    let limit = check_quota(state, ctx).await?;
    if template.is_hidden() && !ctx.context.is_admin {
        return Err(MagnumError::NotAuthorized("Not authorized.".into()).into());
    }

    let owner = (ctx.context.project_id.clone(), ctx.context.user_id.clone());
    let uuid = uuid::Uuid::new_v4().to_string();
    let mut cluster =
        cluster_rules::new_cluster(uuid, given, &template, owner, master_count, create_timeout)?;
    check_cloud(state, ctx, &cluster).await?;
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
        wire_context(ctx),
    );
    cluster.status_reason = None;
    if driver.external() {
        return create_elsewhere(state, ctx, cluster, op.args, limit).await;
    }
    insert(state, ctx, &cluster, &nodegroups, &op, limit).await?;
    nudge(state, &op).await;
    Ok(cluster.uuid)
}

/// A cluster of an external driver, as upstream's API creates one: the
/// quota counted (upstream's own check), then the unsaved cluster cast to
/// the conductors that run the driver, which store it with its node groups
/// and certificates (upstream's `cluster_create`). Nothing is written here;
/// a cast the bus does not take is 503.
async fn create_elsewhere(
    state: &AppState,
    ctx: &Ctx,
    cluster: Cluster,
    args: Map<String, Value>,
    limit: i64,
) -> ApiResult<String> {
    let project = ctx.context.project_id.clone().unwrap_or_default();
    if state.db.cluster_count(&project).await? >= limit {
        return Err(over_quota(limit));
    }
    let args = Value::Object(args);
    crate::conduct::cast_external(state, ctx, &cluster.uuid, Method::ClusterCreate, args).await?;
    Ok(cluster.uuid)
}

/// Make the owner's trust (with the owner's token, which only this request
/// holds) when Keystone is in use, then insert the cluster, its node groups
/// and its operation; a refused insert takes the trust back.
async fn insert(
    state: &AppState,
    ctx: &Ctx,
    cluster: &Cluster,
    nodegroups: &[NodeGroup],
    op: &Operation,
    limit: i64,
) -> ApiResult<()> {
    let trust = match (&state.auth, &state.trusts) {
        (crate::AuthMode::Keystone(_), Some(m)) => {
            let t = m.create(&ctx.context, &cluster.uuid).await.map_err(|e| {
                tracing::error!("cluster {}: {}", cluster.uuid, magnum_openstack::Chain(&e));
                MagnumError::TrusteeOrTrustToClusterFailed(cluster.uuid.clone())
            })?;
            state.db.trust_save(&t).await?;
            Some((m, t))
        }
        _ => None,
    };
    let refused = match state
        .db
        .cluster_create_queued(cluster, nodegroups, op, Some(limit))
        .await
    {
        Ok(CreateOutcome::Queued) => return Ok(()),
        Ok(CreateOutcome::OverQuota { .. }) => over_quota(limit),
        Err(e) => e.into(),
    };
    if let Some((m, t)) = trust {
        let _ = m.delete(&t).await;
        let _ = state.db.trust_forget(&t.cluster_uuid).await;
    }
    Err(refused)
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
            if !ctx.has(Feature::ZeroNodes) =>
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
            .get(opts::quotas::MAX_CLUSTERS_PER_PROJECT)
            .unwrap_or(20),
    };
    let makes_trust = matches!(state.auth, crate::AuthMode::Keystone(_)) && state.trusts.is_some();
    if makes_trust && state.db.cluster_count(&project).await? >= limit {
        return Err(over_quota(limit));
    }
    Ok(limit)
}

/// With Keystone, a driver that acts through the owner's trust (Heat)
/// cannot build a cluster when this service cannot make trusts: refused
/// here, naming the options to set, rather than failing in the conductor
/// later (upstream's conductor marks such a cluster CREATE_FAILED).
fn check_trust_possible(state: &AppState, driver: &dyn Driver) -> ApiResult<()> {
    if !driver.needs_trust()
        || state.trusts.is_some()
        || !matches!(state.auth, crate::AuthMode::Keystone(_))
    {
        return Ok(());
    }
    let unset = magnum_openstack::trusts::TrustManager::unset_options(&state.conf);
    Err(MagnumError::Invalid(format!(
        "The {} driver acts for the cluster's owner through a Keystone trust, and this \
         service cannot make one: its configuration must set {}.",
        driver.name(),
        if unset.is_empty() {
            "[trust] trustee_domain_admin_id or trustee_domain_admin_name, and \
             trustee_domain_admin_password"
                .to_string()
        } else {
            unset.join(", ")
        }
    ))
    .into())
}

fn over_quota(limit: i64) -> ApiError {
    MagnumError::ResourceLimitExceeded(format!(
        "You have reached the maximum clusters per project, {limit}. You may delete a \
         cluster to make room for a new one."
    ))
    .into()
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

/// Apply `ops` (a PATCH) to `cluster`: only its worker count and health
/// may change. Queued unless nothing changes (upstream's conductor returns
/// at once too).
pub async fn update(
    state: &AppState,
    ctx: &Ctx,
    cluster: &Cluster,
    ops: Vec<patch::Op>,
    rollback: bool,
) -> ApiResult<()> {
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

    let mut doc = match serde_json::to_value(cluster) {
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
    cluster_rules::check_update(FIELDS.iter().map(|f| f.name), &before, &checked)?;
    let node_count = if touched_node_count {
        int(&checked, "node_count").unwrap_or(1)
    } else {
        worker_count
    };
    refuse_zero_nodes(ctx, node_count)?;
    let health_status = checked.get("health_status").cloned().unwrap_or(Value::Null);
    let health_reason = checked
        .get("health_status_reason")
        .cloned()
        .unwrap_or(Value::Null);
    // Ours: a count given again to a cluster whose update failed retries
    // the update (upstream refuses updates in UPDATE_FAILED); health
    // reports alone stay health reports.
    let retry = touched_node_count
        && cluster.status.as_deref() == Some(magnum_core::objects::status::UPDATE_FAILED);
    let health_only = node_count == worker_count && !retry;
    if health_only
        && health_status == json!(cluster.health_status)
        && health_reason == json!(cluster.health_status_reason)
    {
        return Ok(());
    }
    let args = json!({
        "cluster": ovo::encode_stored(cluster),
        "node_count": node_count,
        "health_status": health_status,
        "health_status_reason": health_reason,
        "rollback": rollback,
    });
    let method = Method::ClusterUpdate;
    enqueue(state, ctx, cluster, method, args, health_only).await?;
    Ok(())
}

/// Resize a node group of `cluster` (`req`: the validated request) to
/// `node_count`, within the group's bounds and, for masters, the driver's.
pub async fn resize(
    state: &AppState,
    ctx: &Ctx,
    cluster: &Cluster,
    req: &Map<String, Value>,
    node_count: i64,
) -> ApiResult<()> {
    let ident = req.get("nodegroup").and_then(Value::as_str);
    let ng = action_nodegroup(state, ctx, cluster, ident).await?;
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
        let template = crate::clusters::template_of(&state.db, cluster).await?;
        state
            .drivers
            .for_template(&template)?
            .validate_master_resize(node_count)?;
    }
    let args = json!({
        "cluster": ovo::encode_stored(cluster),
        "node_count": node_count,
        "nodes_to_remove": req.get("nodes_to_remove").cloned().unwrap_or(json!([])),
        "nodegroup": ovo::encode_stored(&ng),
    });
    enqueue(state, ctx, cluster, Method::ClusterResize, args, false).await?;
    Ok(())
}

/// Upgrade `cluster` (or one of its node groups) to the template `req`
/// names; a non-default group only to the cluster's own template.
pub async fn upgrade(
    state: &AppState,
    ctx: &Ctx,
    cluster: &Cluster,
    req: &Map<String, Value>,
) -> ApiResult<()> {
    let template_ident = req
        .get("cluster_template")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let template = cluster_templates::find(&state.db, ctx, template_ident).await?;
    let ident = req.get("nodegroup").and_then(Value::as_str);
    let ng = action_nodegroup(state, ctx, cluster, ident).await?;
    if req.get("nodegroup").is_some()
        && Some(template.uuid.as_str()) != cluster.cluster_template_id.as_deref()
        && ng.is_default != Some(true)
    {
        let current = crate::clusters::template_of(&state.db, cluster).await?;
        return Err(MagnumError::InvalidClusterTemplateForUpgrade(format!(
            "Nodegroup {} can be upgraded only to match cluster's template ({}).",
            ng.name,
            current.name.unwrap_or_default()
        ))
        .into());
    }
    let args = json!({
        "cluster": ovo::encode_stored(cluster),
        "cluster_template": ovo::encode_stored(&template),
        "max_batch_size": int(req, "max_batch_size").unwrap_or(1),
        "nodegroup": ovo::encode_stored(&ng),
    });
    enqueue(state, ctx, cluster, Method::ClusterUpgrade, args, false).await?;
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
