//! Handing operations to conductors. A handler first queues the operation
//! in the database (with the status change it implies, in one
//! transaction), then calls [`nudge`]: a cast of upstream's RPC method with
//! the operation's id in the context. The cast only saves time: when it is
//! lost, or no bus is configured, a conductor's sweep runs the queued
//! operation after `[conductor] operation_grace` seconds.

use magnum_conductor::OPERATION_KEY;
use magnum_db::Operation;
use serde_json::Value;

use crate::context::Ctx;
use crate::AppState;

/// The request context as queued with an operation (no token).
pub fn wire_context(ctx: &Ctx) -> serde_json::Map<String, Value> {
    ctx.context.to_wire()
}

/// Tell conductors about a queued operation.
pub async fn nudge(state: &AppState, op: &Operation) {
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
