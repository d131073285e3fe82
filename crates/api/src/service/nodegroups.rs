//! A cluster's node groups: create, update and delete, each queued behind
//! the cluster's status gate together with the group's new row or status.

use magnum_core::cloud::Lookup;
use magnum_core::config::opts;
use magnum_core::objects::status::*;
use magnum_core::objects::{Cluster, NodeGroup};
use magnum_core::state::Method;
use magnum_core::{nodegroup_rules, ovo, MagnumError};
use magnum_db::{DbError, Operation};
use serde_json::{json, Map, Value};

use crate::conduct::nudge;
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::AppState;

/// Create the group `given` (validated attributes) asks for in `cluster`;
/// the group as stored comes back, its operation queued and announced.
pub async fn create(
    state: &AppState,
    ctx: &Ctx,
    cluster: &Cluster,
    given: &Map<String, Value>,
) -> ApiResult<NodeGroup> {
    if cluster
        .api_address
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        return Err(MagnumError::ClusterApiAddressUnavailable.into());
    }
    let name = given
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let existing = state.db.nodegroups_of(&cluster.uuid).await?;
    if existing.iter().any(|n| n.name == name) {
        return Err(already_exists(name, cluster));
    }
    let uuid = uuid::Uuid::new_v4().to_string();
    let project = ctx.context.project_id.clone().unwrap_or_default();
    let mut ng = nodegroup_rules::new_group(uuid, given, cluster, project)?;
    if ng.image_id.is_none() {
        ng.image_id = crate::clusters::template_of(&state.db, cluster)
            .await?
            .image_id;
    }
    check_root_volume(state, ctx, cluster, ng.flavor_id.as_deref()).await?;

    // The group as upstream's API sends it (the conductor sets its status).
    let args = json!({
        "cluster": ovo::encode_stored(cluster),
        "nodegroup": ovo::encode(&ng),
    });
    ng.status = Some(CREATE_IN_PROGRESS.into());
    if handed_off(state, ctx, cluster, Method::NodegroupCreate, &args).await? {
        // As upstream's API answers: its conductor stores the group.
        return Ok(ng);
    }
    let op = queue(
        state,
        ctx,
        cluster,
        Method::NodegroupCreate,
        args,
        &ng,
        true,
    )
    .await?;
    // As stored (with its id and timestamps), before a conductor moves it.
    let stored = state.db.nodegroup_get(&ng.uuid).await?.unwrap_or(ng);
    nudge(state, &op).await;
    Ok(stored)
}

/// Update `old` to `new` (its patched sizes, node labels and taints); the
/// group as it now stands comes back, its operation queued and announced.
pub async fn update(
    state: &AppState,
    ctx: &Ctx,
    cluster: &Cluster,
    old: &NodeGroup,
    mut new: NodeGroup,
) -> ApiResult<NodeGroup> {
    check_root_volume(state, ctx, cluster, new.flavor_id.as_deref()).await?;
    nodegroup_rules::validate(&new)?;
    let changed = [
        "node_count",
        "min_node_count",
        "max_node_count",
        "node_labels",
        "node_taints",
    ];
    let args = json!({
        "cluster": ovo::encode_stored(cluster),
        "nodegroup": ovo::encode_changed(&new, &changed),
    });
    new.status = Some(UPDATE_IN_PROGRESS.into());
    new.status_reason = None;
    if handed_off(state, ctx, cluster, Method::NodegroupUpdate, &args).await? {
        return Ok(new);
    }
    let op = queue(
        state,
        ctx,
        cluster,
        Method::NodegroupUpdate,
        args,
        &new,
        false,
    )
    .await?;
    // The conductor stores the new sizes from the message; node labels and
    // taints are stored here, before any conductor hears of the operation.
    if new.node_labels != old.node_labels || new.node_taints != old.node_taints {
        let f: Map<String, Value> = [
            ("node_labels".to_string(), json!(new.node_labels)),
            ("node_taints".to_string(), json!(new.node_taints)),
        ]
        .into_iter()
        .collect();
        state.db.nodegroup_update_fields(&new.uuid, &f).await?;
    }
    nudge(state, &op).await;
    Ok(new)
}

/// Delete a group that is not one of the cluster's defaults.
pub async fn delete(
    state: &AppState,
    ctx: &Ctx,
    cluster: &Cluster,
    mut ng: NodeGroup,
) -> ApiResult<()> {
    if ng.is_default == Some(true) {
        return Err(MagnumError::NotSupportedMsg(
            "Deleting a default nodegroup is not supported.".into(),
        )
        .into());
    }
    let args = json!({
        "cluster": ovo::encode_stored(cluster),
        "nodegroup": ovo::encode_stored(&ng),
    });
    ng.status = Some(DELETE_IN_PROGRESS.into());
    if handed_off(state, ctx, cluster, Method::NodegroupDelete, &args).await? {
        return Ok(());
    }
    let op = queue(
        state,
        ctx,
        cluster,
        Method::NodegroupDelete,
        args,
        &ng,
        false,
    )
    .await?;
    nudge(state, &op).await;
    Ok(())
}

fn already_exists(name: &str, cluster: &Cluster) -> crate::error::ApiError {
    MagnumError::NodeGroupAlreadyExists {
        name: name.to_string(),
        cluster: cluster.name.clone().unwrap_or_else(|| "None".into()),
    }
    .into()
}

/// Upstream's `validate_flavor_root_volume_size`: with a cloud configured,
/// a flavor without a root disk needs a boot volume (the cluster's
/// `boot_volume_size` label, else `[cinder] default_boot_volume_size`).
async fn check_root_volume(
    state: &AppState,
    ctx: &Ctx,
    cluster: &Cluster,
    flavor: Option<&str>,
) -> ApiResult<()> {
    let Some(flavor) = flavor else { return Ok(()) };
    if !state.cloud.configured() {
        return Ok(());
    }
    let boot_volume_size = cluster
        .labels
        .as_ref()
        .and_then(|l| l.get("boot_volume_size"))
        .map(magnum_core::objects::label_string)
        .and_then(|s| s.trim().parse::<i64>().ok())
        .or_else(|| state.conf.get(opts::cinder::DEFAULT_BOOT_VOLUME_SIZE))
        .unwrap_or(0);
    if boot_volume_size > 0 {
        return Ok(());
    }
    match state.cloud.flavor(&ctx.context, flavor).await {
        Ok(Lookup::Found(f)) if f.disk_gb == 0 => Err(MagnumError::NotSupportedMsg(
            "Flavor with zero root volume size is not supported when boot_volume_size is zero."
                .into(),
        )
        .into()),
        // An unknown flavor is for the driver to report, as upstream.
        Ok(_) | Err(MagnumError::FlavorNotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// For a cluster of an external driver, `method` handed to the conductors
/// that run it (behind the same status gate, nothing written here): true;
/// false for a cluster of ours, whose operation the caller queues.
async fn handed_off(
    state: &AppState,
    ctx: &Ctx,
    cluster: &Cluster,
    method: Method,
    args: &Value,
) -> ApiResult<bool> {
    if crate::conduct::external_driver(state, cluster)
        .await?
        .is_none()
    {
        return Ok(false);
    }
    let gate = method.gate(false);
    crate::conduct::hand_off(state, ctx, cluster, method, args.clone(), gate, |status| {
        method.refusal(status)
    })
    .await?;
    Ok(true)
}

/// Queue `method` for `cluster` behind its status gate, with the group's
/// new row (`is_new`) or status; refuse as upstream's conductor does when
/// the cluster's status forbids it. The caller nudges.
async fn queue(
    state: &AppState,
    ctx: &Ctx,
    cluster: &Cluster,
    method: Method,
    args: Value,
    ng: &NodeGroup,
    is_new: bool,
) -> ApiResult<Operation> {
    let op = crate::conduct::operation(ctx, cluster, method, args);
    let gate = method.gate(false);
    match state
        .db
        .nodegroup_enqueue(&op, gate, Some((ng, is_new)))
        .await
    {
        Ok(true) => Ok(op),
        Ok(false) => Err(crate::conduct::refusal(state, cluster, method).await),
        // Another request created a group of this name meanwhile.
        Err(DbError::Duplicate) if is_new => Err(already_exists(&ng.name, cluster)),
        Err(e) => Err(e.into()),
    }
}
