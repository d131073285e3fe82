//! Ours, beside upstream's API: a cluster's history and the way out of a
//! failed create.
//!
//! - `GET /v1/clusters/{ident}/events` and
//!   `GET /v1/clusters/{ident}/nodegroups/{ng}/events`: the events of
//!   `rs_cluster_event` (`magnum_core::events`), paged like upstream's lists
//!   (`limit`, `marker` an event's uuid, `sort_dir`; sorted by when they
//!   were recorded), found and scoped like the cluster itself (another
//!   project's cluster is not found), policy `cluster:events`.
//! - `POST /v1/clusters/{ident}/actions/retry`: a CREATE_FAILED cluster
//!   queues its create again (202 with its uuid, as upstream's actions
//!   answer), policy `cluster:retry`; any other status is refused with
//!   400 in upstream's words.
//!
//! Upstream's clients never call these, so they are served at every 1.x
//! microversion and the maximum is not raised.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use magnum_core::objects::Cluster;
use magnum_core::ovo;
use magnum_core::state::Method;
use magnum_core::MagnumError;
use magnum_db::ClusterEvent;
use serde_json::{json, Value};

use crate::cluster_templates::timestamp;
use crate::clusters::find;
use crate::conduct;
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::links::BaseUrl;
use crate::pagination::ListQuery;
use crate::request::json_response;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/clusters/{ident}/events", get(cluster_events))
        .route(
            "/clusters/{ident}/nodegroups/{ng}/events",
            get(nodegroup_events),
        )
        .route("/clusters/{ident}/actions/retry", post(retry))
}

fn target(c: &Cluster) -> Value {
    json!({"project_id": c.project_id, "user_id": c.user_id})
}

/// The cluster `ident` as its show finds it, with `rule` enforced on it.
async fn cluster_for(
    state: &AppState,
    ctx: &mut Ctx,
    ident: &str,
    rule: &str,
) -> ApiResult<Cluster> {
    ctx.all_projects_if_admin(state, "cluster:get_one_all_projects")?;
    let cluster = find(&state.db, ctx, ident).await?;
    ctx.enforce(state, rule, &target(&cluster))?;
    Ok(cluster)
}

async fn cluster_events(
    State(state): State<AppState>,
    mut ctx: Ctx,
    base: BaseUrl,
    Path(ident): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let cluster = cluster_for(&state, &mut ctx, &ident, "cluster:events").await?;
    let resource = format!("clusters/{}/events", cluster.uuid);
    page(&state, &base, &cluster, None, &resource, q.as_deref()).await
}

async fn nodegroup_events(
    State(state): State<AppState>,
    mut ctx: Ctx,
    base: BaseUrl,
    Path((ident, ng)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let cluster = cluster_for(&state, &mut ctx, &ident, "cluster:events").await?;
    let found = state
        .db
        .nodegroup_find(&ctx.context, &cluster.uuid, &ng)
        .await?;
    let ng = crate::find::one(found, &ng, &NODEGROUP)?;
    let resource = format!("clusters/{}/nodegroups/{}/events", cluster.uuid, ng.uuid);
    page(
        &state,
        &base,
        &cluster,
        Some(&ng.uuid),
        &resource,
        q.as_deref(),
    )
    .await
}

const NODEGROUP: crate::find::Kind = crate::find::Kind {
    not_found: |ident| MagnumError::NodeGroupNotFound(ident.to_string()).into(),
    plural: "nodegroups",
    singular: "nodegroup",
};

/// One page of events, sorted by id (the order they were recorded in).
async fn page(
    state: &AppState,
    base: &BaseUrl,
    cluster: &Cluster,
    nodegroup: Option<&str>,
    resource: &str,
    query: Option<&str>,
) -> ApiResult<Response> {
    let q = ListQuery::parse(query, &[])?;
    let db = &state.db;
    let (page, limit) = q
        .resolve(
            state.max_limit,
            |k| k == "id" || k == "created_at",
            |m| async move {
                db.event_id(&cluster.uuid, &m).await?.ok_or_else(|| {
                    MagnumError::NotFound(format!("Event {m} could not be found.")).into()
                })
            },
        )
        .await?;
    let events = db.events_of(&cluster.uuid, nodegroup, &page).await?;
    let next = q.next_link(
        base,
        resource,
        events.len(),
        limit,
        events.last().map(|e| e.uuid.as_str()),
    );
    let mut body = serde_json::Map::new();
    body.insert(
        "events".into(),
        Value::Array(events.iter().map(view).collect()),
    );
    if let Some(next) = next {
        body.insert("next".into(), Value::String(next));
    }
    json_response(&Value::Object(body), events.len() * 512)
}

/// An event as the API shows it.
fn view(e: &ClusterEvent) -> Value {
    json!({
        "uuid": e.uuid,
        "cluster_uuid": e.cluster_uuid,
        "nodegroup_uuid": e.nodegroup_uuid,
        "operation_uuid": e.operation_uuid,
        "kind": e.kind,
        "method": e.method,
        "status": e.status,
        "reason_class": e.reason_class,
        "resource": e.resource,
        "message": e.message,
        "host": e.host,
        "created_at": timestamp(&e.created_at),
    })
}

/// Drive a CREATE_FAILED cluster's create again: the cluster and its
/// failed node groups go back to CREATE_IN_PROGRESS with the create
/// queued (arguments as upstream's `cluster_create`, plus `retry`), and
/// the driver retries the build it started (Heat: an update of the failed
/// stack, which replaces what failed).
async fn retry(
    State(state): State<AppState>,
    mut ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<Response> {
    ctx.all_projects_if_admin(&state, "cluster:update_all_projects")?;
    let cluster = find(&state.db, &ctx, &ident).await?;
    ctx.enforce(&state, "cluster:retry", &target(&cluster))?;
    if let Some(driver) = conduct::external_driver(&state, &cluster).await? {
        return Err(MagnumError::NotSupportedMsg(format!(
            "Retrying a failed create is not available for clusters of the external driver {}: \
             delete the cluster and create it again.",
            driver.name()
        ))
        .into());
    }
    let args = json!({
        "cluster": ovo::encode_stored(&cluster),
        "create_timeout": cluster.create_timeout,
        "retry": true,
    });
    conduct::enqueue_gated(
        &state,
        &ctx,
        &cluster,
        Method::ClusterCreate,
        args,
        Method::create_retry_gate(),
        |status| {
            MagnumError::NotSupported(format!(
                "Retrying the create of a cluster when status is \"{status}\""
            ))
        },
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "uuid": cluster.uuid }))).into_response())
}
