//! `/v1/clusters`, read side: list (summary view), detail and show (full
//! view), per microversion. Counts and addresses come from the cluster's
//! node groups; label differences from its template's labels. The write
//! side is in [`crate::cluster_ops`].

use std::collections::HashMap;

use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use magnum_core::objects::{Cluster, Labels, NodeGroup};
use magnum_core::MagnumError;
use magnum_db::{ClusterFilter, Database};
use serde_json::{json, Map, Value};

use crate::cluster_templates::timestamp;
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::fields::canonical_uuid;
use crate::links::BaseUrl;
use crate::pagination::ListQuery;
use crate::{cluster_ops, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/clusters", get(list).post(cluster_ops::create))
        .route("/clusters/detail", get(detail))
        .route(
            "/clusters/{ident}",
            get(show)
                .patch(cluster_ops::update)
                .delete(cluster_ops::delete),
        )
        .route(
            "/clusters/{ident}/actions/resize",
            post(cluster_ops::resize),
        )
        .route(
            "/clusters/{ident}/actions/upgrade",
            post(cluster_ops::upgrade),
        )
}

/// Statuses upstream reports faults for.
const FAILED: [&str; 5] = [
    "CREATE_FAILED",
    "UPDATE_FAILED",
    "DELETE_FAILED",
    "ROLLBACK_FAILED",
    "RESUME_FAILED",
];

/// The fields of the summary view (upstream's `expand=False`).
const SUMMARY: [&str; 13] = [
    "uuid",
    "name",
    "cluster_template_id",
    "keypair",
    "docker_volume_size",
    "labels",
    "node_count",
    "status",
    "master_flavor_id",
    "flavor_id",
    "create_timeout",
    "master_count",
    "health_status",
];

/// Upstream's `get_labels_diff`: labels that differ from the template's,
/// labels the template lacks, and template labels the cluster lacks.
pub fn labels_diff(parent: &Labels, labels: &Labels) -> (Labels, Labels, Labels) {
    let mut overridden = Map::new();
    let mut added = Map::new();
    let skipped = parent
        .iter()
        .filter(|(k, _)| !labels.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in labels {
        match parent.get(k) {
            Some(p) if p != v => {
                overridden.insert(k.clone(), p.clone());
            }
            Some(_) => {}
            None => {
                added.insert(k.clone(), v.clone());
            }
        }
    }
    (overridden, added, skipped)
}

/// What a view needs besides the cluster row.
struct Extras<'a> {
    nodegroups: &'a [NodeGroup],
    template_labels: Option<&'a Labels>,
    faults: bool,
}

fn view(c: &Cluster, x: &Extras, base: &BaseUrl, expand: bool, version_minor: u32) -> Value {
    let use_cluster_id = version_minor >= 13;
    let is_master = |n: &&NodeGroup| n.role.as_deref() == Some("master");
    let count = |master: bool| -> i64 {
        x.nodegroups
            .iter()
            .filter(|n| is_master(n) == master)
            .map(|n| n.node_count.unwrap_or(0))
            .sum()
    };
    let addresses = |master: bool| -> Vec<String> {
        x.nodegroups
            .iter()
            .filter(|n| is_master(n) == master)
            .flat_map(|n| n.node_addresses.clone().unwrap_or_default())
            .collect()
    };
    let mut all = Map::new();
    let stored = match serde_json::to_value(c) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for field in [
        "uuid",
        "name",
        "cluster_template_id",
        "keypair",
        "docker_volume_size",
        "labels",
        "master_flavor_id",
        "flavor_id",
        "create_timeout",
        "status",
        "status_reason",
        "health_status",
        "health_status_reason",
        "discovery_url",
        "api_address",
        "coe_version",
        "container_version",
        "project_id",
        "user_id",
        "fixed_network",
        "fixed_subnet",
        "floating_ip_enabled",
        "master_lb_enabled",
    ] {
        all.insert(
            field.into(),
            stored.get(field).cloned().unwrap_or(Value::Null),
        );
    }
    all.insert("created_at".into(), timestamp(&c.created_at));
    all.insert("updated_at".into(), timestamp(&c.updated_at));
    all.insert("node_count".into(), json!(count(false)));
    all.insert("master_count".into(), json!(count(true)));
    all.insert("node_addresses".into(), json!(addresses(false)));
    all.insert("master_addresses".into(), json!(addresses(true)));
    let id_field = if use_cluster_id {
        "cluster_id"
    } else {
        "stack_id"
    };
    all.insert(id_field.into(), json!(c.stack_id));
    let mut out: Map<String, Value> = if expand {
        let empty = Map::new();
        let labels = c.labels.clone().unwrap_or_default();
        let (overridden, added, skipped) =
            labels_diff(x.template_labels.unwrap_or(&empty), &labels);
        all.insert("labels_overridden".into(), Value::Object(overridden));
        all.insert("labels_added".into(), Value::Object(added));
        all.insert("labels_skipped".into(), Value::Object(skipped));
        if x.faults && c.status.as_deref().is_some_and(|s| FAILED.contains(&s)) {
            let faults: Map<String, Value> = x
                .nodegroups
                .iter()
                .filter(|n| n.status.as_deref().is_some_and(|s| s.ends_with("FAILED")))
                .map(|n| (n.name.clone(), json!(n.status_reason)))
                .collect();
            all.insert("faults".into(), Value::Object(faults));
        }
        all
    } else {
        all.into_iter()
            .filter(|(k, _)| SUMMARY.contains(&k.as_str()) || k == id_field)
            .collect()
    };
    out.insert("links".into(), base.resource_links("clusters", &c.uuid));
    let mut sorted: Vec<(String, Value)> = out.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(sorted.into_iter().collect())
}

/// Find a cluster by UUID or name among the caller's.
pub async fn find(db: &Database, ctx: &Ctx, ident: &str) -> ApiResult<Cluster> {
    let not_found = || MagnumError::ClusterNotFound(ident.to_string());
    if let Some(uuid) = canonical_uuid(ident) {
        return db
            .cluster_by_uuid(&ctx.context, &uuid)
            .await?
            .ok_or_else(|| not_found().into());
    }
    let mut found = db.clusters_by_name(&ctx.context, ident).await?;
    match found.len() {
        0 => Err(not_found().into()),
        1 => Ok(found.remove(0)),
        _ => Err(MagnumError::Conflict(
            "Multiple clusters exist with same name. Please use the cluster uuid instead.".into(),
        )
        .into()),
    }
}

/// The template a cluster was built from.
pub async fn template_of(
    db: &Database,
    c: &Cluster,
) -> ApiResult<magnum_core::objects::ClusterTemplate> {
    let admin = magnum_core::RequestContext {
        is_admin: true,
        all_tenants: true,
        ..Default::default()
    };
    let id = c.cluster_template_id.clone().unwrap_or_default();
    db.cluster_template_by_uuid(&admin, &id)
        .await?
        .ok_or_else(|| MagnumError::ClusterTemplateNotFound(id).into())
}

async fn template_labels(
    db: &Database,
    ctx: &Ctx,
    uuid: Option<&str>,
) -> ApiResult<Option<Labels>> {
    let Some(uuid) = uuid else { return Ok(None) };
    let mut admin = ctx.context.clone();
    admin.is_admin = true;
    admin.all_tenants = true;
    Ok(db
        .cluster_template_by_uuid(&admin, uuid)
        .await?
        .and_then(|t| t.labels))
}

async fn list(
    State(state): State<AppState>,
    mut ctx: Ctx,
    base: BaseUrl,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    collection(&state, &mut ctx, &base, q.as_deref(), false).await
}

async fn detail(
    State(state): State<AppState>,
    mut ctx: Ctx,
    base: BaseUrl,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    collection(&state, &mut ctx, &base, q.as_deref(), true).await
}

async fn collection(
    state: &AppState,
    ctx: &mut Ctx,
    base: &BaseUrl,
    query: Option<&str>,
    expand: bool,
) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(query, &[])?;
    let (rule, all_rule) = if expand {
        ("cluster:detail", "cluster:detail_all_projects")
    } else {
        ("cluster:get_all", "cluster:get_all_all_projects")
    };
    ctx.enforce(state, rule, &ctx.own_target())?;
    if ctx.context.is_admin {
        ctx.enforce(state, all_rule, &ctx.own_target())?;
        ctx.context.all_tenants = true;
    }
    let limit = q.effective_limit(state.max_limit)?;
    q.dir()?;
    let marker_id = match &q.marker {
        Some(m) => Some(
            state
                .db
                .cluster_by_uuid(&ctx.context, m)
                .await?
                .ok_or_else(|| MagnumError::ClusterNotFound(m.clone()))?
                .id,
        ),
        None => None,
    };
    let page = q.page(state.max_limit, marker_id, Database::cluster_sort_key_valid)?;
    let clusters = state
        .db
        .cluster_list(&ctx.context, &ClusterFilter::default(), &page)
        .await?;
    let mut labels_of: HashMap<String, Option<Labels>> = HashMap::new();
    let mut items = Vec::with_capacity(clusters.len());
    for c in &clusters {
        let ngs = state.db.nodegroups_of(&c.uuid).await?;
        let tid = c.cluster_template_id.clone().unwrap_or_default();
        if expand && !labels_of.contains_key(&tid) {
            let labels = template_labels(&state.db, ctx, c.cluster_template_id.as_deref()).await?;
            labels_of.insert(tid.clone(), labels);
        }
        let extras = Extras {
            nodegroups: &ngs,
            template_labels: labels_of.get(&tid).and_then(Option::as_ref),
            faults: false,
        };
        items.push(view(c, &extras, base, expand, ctx.version.minor));
    }
    let resource = if expand {
        "clusters/detail"
    } else {
        "clusters"
    };
    let mut body = Map::new();
    body.insert("clusters".into(), Value::Array(items));
    if let Some(next) = q.next_link(
        base,
        resource,
        clusters.len(),
        limit,
        clusters.last().map(|c| c.uuid.as_str()),
    ) {
        body.insert("next".into(), Value::String(next));
    }
    Ok(Json(Value::Object(body)))
}

async fn show(
    State(state): State<AppState>,
    mut ctx: Ctx,
    base: BaseUrl,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    if ctx.context.is_admin {
        ctx.enforce(&state, "cluster:get_one_all_projects", &ctx.own_target())?;
        ctx.context.all_tenants = true;
    }
    let c = find(&state.db, &ctx, &ident).await?;
    ctx.enforce(
        &state,
        "cluster:get",
        &json!({"project_id": c.project_id, "user_id": c.user_id}),
    )?;
    let ngs = state.db.nodegroups_of(&c.uuid).await?;
    let labels = template_labels(&state.db, &ctx, c.cluster_template_id.as_deref()).await?;
    let extras = Extras {
        nodegroups: &ngs,
        template_labels: labels.as_ref(),
        faults: true,
    };
    Ok(Json(view(&c, &extras, &base, true, ctx.version.minor)))
}

#[cfg(test)]
mod tests {
    use super::labels_diff;
    use serde_json::json;

    #[test]
    fn label_differences_like_upstream() {
        let parent = json!({"a": "1", "b": "2", "c": "3"})
            .as_object()
            .cloned()
            .unwrap();
        let labels = json!({"a": "1", "b": "9", "d": "4"})
            .as_object()
            .cloned()
            .unwrap();
        let (o, a, s) = labels_diff(&parent, &labels);
        assert_eq!(serde_json::Value::Object(o), json!({"b": "2"}));
        assert_eq!(serde_json::Value::Object(a), json!({"d": "4"}));
        assert_eq!(serde_json::Value::Object(s), json!({"c": "3"}));
    }
}
