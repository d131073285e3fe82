//! Handing operations to conductors. A handler first queues the operation
//! in the database (with the status change it implies, in one
//! transaction), then calls [`nudge`]: a cast of upstream's RPC method with
//! the operation's id in the context. The cast only saves time: when it is
//! lost, or no bus is configured, a conductor's sweep runs the queued
//! operation after `[conductor] operation_grace` seconds.
//!
//! A cluster of an external driver (`[drivers] external_drivers`) is
//! another conductor's: its operations are not queued but handed off
//! ([`hand_off`]), as upstream's API hands them to upstream's conductor.

use std::sync::Arc;

use magnum_core::drivers::Driver;
use magnum_core::objects::Cluster;
use magnum_core::state::{Gate, Method};
use magnum_core::MagnumError;
use magnum_db::{Operation, OPERATION_KEY};
use serde_json::Value;

use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// The operation of `method` on `cluster` with `args` (an object), as the
/// conductor will receive it.
pub fn operation(ctx: &Ctx, cluster: &Cluster, method: Method, args: Value) -> Operation {
    let args = match args {
        Value::Object(m) => m,
        _ => Default::default(),
    };
    Operation::new(&cluster.uuid, method.name(), args, wire_context(ctx))
}

/// Upstream's refusal of `method` when the cluster's status gate did not
/// let it in: with the status the cluster has now (the gate saw a newer one
/// than the caller read).
pub async fn refusal(state: &AppState, cluster: &Cluster, method: Method) -> ApiError {
    refused(state, cluster, |status| method.refusal(status)).await
}

/// What `refuse` says of the status the cluster has now (the gate saw
/// it), or 404 when it is gone.
async fn refused(
    state: &AppState,
    cluster: &Cluster,
    refuse: impl FnOnce(&str) -> MagnumError,
) -> ApiError {
    match state.db.cluster_get(&cluster.uuid).await {
        Ok(Some(now)) => refuse(now.status.as_deref().unwrap_or("None")).into(),
        Ok(None) => MagnumError::ClusterNotFound(cluster.uuid.clone()).into(),
        Err(e) => e.into(),
    }
}

pub async fn enqueue(
    state: &AppState,
    ctx: &Ctx,
    cluster: &Cluster,
    method: Method,
    args: Value,
    health_only: bool,
) -> ApiResult<()> {
    enqueue_gated(
        state,
        ctx,
        cluster,
        method,
        args,
        method.gate(health_only),
        |status| method.refusal(status),
    )
    .await
}

/// [`enqueue`] behind a gate of the caller's own (an operation of ours
/// that starts where upstream's do not), refused in its own words. A
/// cluster of an external driver is handed off instead.
pub async fn enqueue_gated(
    state: &AppState,
    ctx: &Ctx,
    cluster: &Cluster,
    method: Method,
    args: Value,
    gate: Gate<'_>,
    refuse: impl FnOnce(&str) -> MagnumError,
) -> ApiResult<()> {
    if external_driver(state, cluster).await?.is_some() {
        return hand_off(state, ctx, cluster, method, args, gate, refuse).await;
    }
    let op = operation(ctx, cluster, method, args);
    if !state.db.operation_enqueue(&op, gate).await? {
        return Err(refused(state, cluster, refuse).await);
    }
    nudge(state, &op).await;
    Ok(())
}

/// The external driver that builds `cluster`, if its template's is one
/// (no statement when no external driver is declared).
pub async fn external_driver(
    state: &AppState,
    cluster: &Cluster,
) -> ApiResult<Option<Arc<dyn Driver>>> {
    if !state.drivers.has_external() {
        return Ok(None);
    }
    let template = crate::clusters::template_of(&state.db, cluster).await?;
    Ok(state
        .drivers
        .for_template(&template)
        .ok()
        .filter(|d| d.external()))
}

/// Hand `method` on a cluster of an external driver to the conductors that
/// run it, as upstream's API hands it to upstream's conductor: the
/// cluster's status must pass `gate` as it stands (refused in `refuse`'s
/// words), nothing is written here (those conductors make the status
/// changes, as upstream's does), and the cast must be taken by the bus:
/// otherwise 503, and nothing has changed.
pub async fn hand_off(
    state: &AppState,
    ctx: &Ctx,
    cluster: &Cluster,
    method: Method,
    args: Value,
    gate: Gate<'_>,
    refuse: impl FnOnce(&str) -> MagnumError,
) -> ApiResult<()> {
    let status = cluster.status.as_deref().unwrap_or("None");
    if !gate.from.contains(&status) {
        return Err(refuse(status).into());
    }
    cast_external(state, ctx, &cluster.uuid, method, args).await
}

/// Cast `method` to the external drivers' conductors (see [`hand_off`]).
pub async fn cast_external(
    state: &AppState,
    ctx: &Ctx,
    cluster_uuid: &str,
    method: Method,
    args: Value,
) -> ApiResult<()> {
    let Some(client) = &state.external else {
        return Err(ApiError::BusUnavailable(
            "no [DEFAULT] transport_url: the external drivers' conductors cannot be reached".into(),
        ));
    };
    let args = match args {
        Value::Object(m) => m,
        _ => Default::default(),
    };
    client
        .cast(method.name(), args, wire_context(ctx))
        .await
        .map_err(|e| {
            ApiError::BusUnavailable(format!(
                "{} of cluster {cluster_uuid} for an external driver: {e}",
                method.name()
            ))
        })?;
    tracing::info!(
        "{} of cluster {cluster_uuid} handed to the external drivers' conductors",
        method.name()
    );
    Ok(())
}

pub fn wire_context(ctx: &Ctx) -> serde_json::Map<String, Value> {
    ctx.context.to_wire()
}

/// Tell conductors about a queued operation.
pub async fn nudge(state: &AppState, op: &Operation) {
    // Every queued operation comes here once, after it was queued.
    magnum_core::metrics::operation_queued(&op.method);
    let Some(client) = &state.conductor else {
        return;
    };
    let mut context = op.context.clone();
    context.insert(OPERATION_KEY.into(), Value::String(op.uuid.clone()));
    if let Err(e) = client.cast(&op.method, op.args.clone(), context).await {
        tracing::warn!(
            "{} of cluster {} is queued but the cast failed ({e}); a conductor's sweep will run it",
            op.method,
            op.cluster_uuid
        );
    }
}
