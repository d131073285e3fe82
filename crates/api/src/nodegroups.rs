//! `/v1/clusters/{cluster}/nodegroups` (microversion 1.9 and later): list
//! (summary view, optionally of one role), show (full view with label
//! differences from the cluster's labels), and the write side with
//! upstream's rules: create (202 with the new group), PATCH update of its
//! minimum and maximum sizes and (from 1.14) its Kubernetes node labels and
//! taints (202), and delete of a non-default group (204).
//!
//! Like the cluster write side ([`crate::cluster_ops`]), each write queues
//! its operation together with the cluster's and the group's new statuses
//! in one transaction, so a refused request changes nothing, then nudges
//! the conductors.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use magnum_core::cloud::Lookup;
use magnum_core::objects::status::*;
use magnum_core::objects::{Cluster, NodeGroup};
use magnum_core::state::Method;
use magnum_core::{ovo, MagnumError};
use magnum_db::{Database, DbError, Operation};
use serde_json::{json, Map, Value};

use crate::cluster_templates::timestamp;
use crate::clusters::{find as find_cluster, labels_diff};
use crate::conduct::{nudge, wire_context};
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, Field, Kind};
use crate::links::BaseUrl;
use crate::pagination::ListQuery;
use crate::request::{json_response, JsonBody};
use crate::version::Version;
use crate::{patch, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/clusters/{cluster}/nodegroups", get(list).post(create))
        .route(
            "/clusters/{cluster}/nodegroups/{ident}",
            get(show).patch(update).delete(delete),
        )
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
    for field in DOC_FIELDS {
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
    // Upstream's API-only attribute, never stored: its WSME default.
    out.insert("merge_labels".into(), Value::Bool(false));
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

/// A node group in a list (the [`SUMMARY`] fields, keys sorted),
/// serialized straight into the answer. Upstream unsets every other
/// attribute, and WSME then shows those with a default as that default:
/// `max_node_count` null, `merge_labels` false and `min_node_count` 0,
/// whatever the group holds (its show gives the stored values).
struct Summary<'a>(&'a NodeGroup);

impl serde::Serialize for Summary<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let ng = self.0;
        let mut m = s.serialize_map(Some(SUMMARY.len() + 3))?;
        m.serialize_entry("flavor_id", &ng.flavor_id)?;
        m.serialize_entry("image_id", &ng.image_id)?;
        m.serialize_entry("is_default", &ng.is_default)?;
        m.serialize_entry("max_node_count", &None::<i64>)?;
        m.serialize_entry("merge_labels", &false)?;
        m.serialize_entry("min_node_count", &0)?;
        m.serialize_entry("name", &ng.name)?;
        m.serialize_entry("node_count", &ng.node_count)?;
        m.serialize_entry("role", &ng.role)?;
        m.serialize_entry("stack_id", &ng.stack_id)?;
        m.serialize_entry("status", &ng.status)?;
        m.serialize_entry("uuid", &ng.uuid)?;
        m.end()
    }
}

async fn list(
    State(state): State<AppState>,
    mut ctx: Ctx,
    base: BaseUrl,
    Path(cluster): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
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
    since_1_9(&ctx, "get_one")?;
    ctx.enforce(&state, "nodegroup:get", &ctx.own_target())?;
    if ctx.context.is_admin {
        ctx.enforce(&state, "nodegroup:get_one_all_projects", &ctx.own_target())?;
        ctx.context.all_tenants = true;
    }
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
    let mut found = db
        .nodegroup_find(&ctx.context, &cluster.uuid, ident)
        .await?;
    match found.len() {
        0 => Err(MagnumError::NodeGroupNotFound(ident.to_string()).into()),
        1 => Ok(found.remove(0)),
        _ => Err(MagnumError::Conflict(
            "Multiple nodegroups exist with same name. Please use the nodegroup uuid instead."
                .into(),
        )
        .into()),
    }
}

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

/// Node labels and taints exist from microversion 1.14.
fn has_node_attrs(ctx: &Ctx) -> bool {
    ctx.version >= Version::new(1, 14)
}

/// The attributes a request of this microversion knows.
fn fields_for(ctx: &Ctx) -> Vec<Field> {
    FIELDS
        .iter()
        .filter(|f| has_node_attrs(ctx) || !matches!(f.name, "node_labels" | "node_taints"))
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

/// The attributes of a stored group a PATCH document shows.
const DOC_FIELDS: [&str; 21] = [
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
];

const VALID_TAINT_EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
const VALID_TAINT_FIELDS: [&str; 3] = ["key", "value", "effect"];

/// Node label namespaces (and labels) the kubelet may set on itself.
const KUBELET_ALLOWED_LABEL_NAMESPACES: [&str; 2] = ["kubelet.kubernetes.io", "node.kubernetes.io"];
const KUBELET_ALLOWED_LABELS: [&str; 12] = [
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "beta.kubernetes.io/os",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "kubernetes.io/arch",
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "node.kubernetes.io/instance-type",
    "node.kubernetes.io/windows-build",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
];

/// Upstream's `NodeGroupInvalidInput` (a conflict, 409).
fn invalid(attr: &str, ng: &NodeGroup, expl: String) -> ApiError {
    MagnumError::Conflict(format!("{attr} for {} is invalid ({expl}).", ng.name)).into()
}

/// Upstream's `_validate_node_count`.
fn validate_node_count(ng: &NodeGroup) -> ApiResult<()> {
    let min = ng.min_node_count.unwrap_or(0);
    let count = ng.node_count.unwrap_or(0);
    if let Some(max) = ng.max_node_count.filter(|m| *m != 0) {
        if max < min {
            return Err(invalid(
                "max_node_count",
                ng,
                format!("min_node_count ({min}) should be less or equal to max_node_count ({max})"),
            ));
        }
        if count > max {
            return Err(invalid(
                "max_node_count",
                ng,
                format!("node_count ({count}) should be less or equal to max_node_count ({max})"),
            ));
        }
    }
    if min > count {
        return Err(invalid(
            "min_node_count",
            ng,
            format!("min_node_count ({min}) should be less or equal to node_count ({count})"),
        ));
    }
    Ok(())
}

/// Upstream's `_validate_node_attrs_role`: no node labels or taints on
/// master groups.
fn validate_node_attrs_role(ng: &NodeGroup) -> ApiResult<()> {
    if ng.role.as_deref() != Some("master") {
        return Ok(());
    }
    if ng.node_labels.as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(invalid(
            "node_labels",
            ng,
            "node_labels may not be set on master nodegroups".into(),
        ));
    }
    if ng.node_taints.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(invalid(
            "node_taints",
            ng,
            "node_taints may not be set on master nodegroups".into(),
        ));
    }
    Ok(())
}

/// Whether a label key lives in the kubernetes.io or k8s.io namespaces.
fn is_restricted_kubernetes_label(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return false;
    };
    matches!(prefix, "kubernetes.io" | "k8s.io")
        || prefix.ends_with(".kubernetes.io")
        || prefix.ends_with(".k8s.io")
}

/// Upstream's `_validate_node_labels`: labels the kubelet would refuse to
/// set on itself are refused.
fn validate_node_labels(ng: &NodeGroup) -> ApiResult<()> {
    for key in ng.node_labels.iter().flat_map(|l| l.keys()) {
        if !is_restricted_kubernetes_label(key) {
            continue;
        }
        let prefix = key.split('/').next().unwrap_or_default();
        if KUBELET_ALLOWED_LABEL_NAMESPACES.contains(&prefix)
            || KUBELET_ALLOWED_LABELS.contains(&key.as_str())
        {
            continue;
        }
        return Err(invalid(
            "node_labels",
            ng,
            format!(
                "node label '{key}' is in a restricted Kubernetes namespace; the kubelet will \
                 refuse to start. Labels in the kubernetes.io/ and k8s.io/ namespaces must use \
                 one of the allowed prefixes ({}) or be one of the allowed labels ({}).",
                KUBELET_ALLOWED_LABEL_NAMESPACES.join(", "),
                KUBELET_ALLOWED_LABELS.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Upstream's `_validate_node_taints`.
fn validate_node_taints(ng: &NodeGroup) -> ApiResult<()> {
    for (index, taint) in ng.node_taints.iter().flatten().enumerate() {
        let Some(taint) = taint.as_object() else {
            return Err(invalid(
                "node_taints",
                ng,
                format!(
                    "node_taints[{index}] must be an object with key, effect and optional value"
                ),
            ));
        };
        let mut unknown: Vec<&str> = taint
            .keys()
            .map(String::as_str)
            .filter(|k| !VALID_TAINT_FIELDS.contains(k))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(invalid(
                "node_taints",
                ng,
                format!(
                    "node_taints[{index}] contains unrecognised field(s) {}; allowed fields are {}",
                    unknown.join(", "),
                    VALID_TAINT_FIELDS.join(", ")
                ),
            ));
        }
        let key = taint.get("key").and_then(Value::as_str).unwrap_or_default();
        if key.is_empty() {
            return Err(invalid(
                "node_taints",
                ng,
                format!("node_taints[{index}].key is required"),
            ));
        }
        let effect = taint.get("effect").and_then(Value::as_str);
        if !effect.is_some_and(|e| VALID_TAINT_EFFECTS.contains(&e)) {
            return Err(invalid(
                "node_taints",
                ng,
                format!(
                    "node_taints[{index}].effect must be one of {}",
                    VALID_TAINT_EFFECTS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Upstream's checks of a group's settings, in its order.
fn validate(ng: &NodeGroup) -> ApiResult<()> {
    validate_node_count(ng)?;
    validate_node_attrs_role(ng)?;
    validate_node_labels(ng)?;
    validate_node_taints(ng)
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
        .or_else(|| state.conf.int("cinder", "default_boot_volume_size"))
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
    let op = Operation::new(
        &cluster.uuid,
        method.name(),
        args.as_object().cloned().unwrap_or_default(),
        wire_context(ctx),
    );
    let gate = method.gate(false);
    let queued = match state
        .db
        .nodegroup_enqueue(&op, gate, Some((ng, is_new)))
        .await
    {
        Ok(q) => q,
        // Another request created a group of this name meanwhile.
        Err(DbError::Duplicate) if is_new => {
            return Err(MagnumError::NodeGroupAlreadyExists {
                name: ng.name.clone(),
                cluster: cluster.name.clone().unwrap_or_else(|| "None".into()),
            }
            .into())
        }
        Err(e) => return Err(e.into()),
    };
    if !queued {
        let now = state
            .db
            .cluster_get(&cluster.uuid)
            .await?
            .ok_or_else(|| MagnumError::ClusterNotFound(cluster.uuid.clone()))?;
        return Err(method
            .refusal(now.status.as_deref().unwrap_or("None"))
            .into());
    }
    Ok(op)
}

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
    since_1_9(&ctx, "post")?;
    let given = fields::validate_object("nodegroup", &fields_for(&ctx), &body)?;
    ctx.enforce(&state, "nodegroup:create", &ctx.own_target())?;
    let cluster = find_cluster(&state.db, &ctx, &cluster).await?;
    if cluster
        .api_address
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        return Err(MagnumError::ClusterApiAddressUnavailable.into());
    }
    let s = |k: &str| given.get(k).and_then(Value::as_str).map(str::to_string);
    let int = |k: &str| given.get(k).and_then(Value::as_i64);
    let name = s("name").unwrap_or_default();
    let existing = state.db.nodegroups_of(&cluster.uuid).await?;
    if existing.iter().any(|n| n.name == name) {
        return Err(MagnumError::NodeGroupAlreadyExists {
            name,
            cluster: cluster.name.clone().unwrap_or_else(|| "None".into()),
        }
        .into());
    }
    let mut ng = NodeGroup {
        uuid: uuid::Uuid::new_v4().to_string(),
        name,
        cluster_id: cluster.uuid.clone(),
        project_id: ctx.context.project_id.clone().unwrap_or_default(),
        docker_volume_size: int("docker_volume_size"),
        labels: given.get("labels").and_then(Value::as_object).cloned(),
        flavor_id: s("flavor_id"),
        image_id: s("image_id"),
        node_count: Some(int("node_count").unwrap_or(1)),
        min_node_count: Some(int("min_node_count").unwrap_or(0)),
        max_node_count: int("max_node_count"),
        role: Some(s("role").unwrap_or_else(|| "worker".into())),
        is_default: Some(
            given
                .get("is_default")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        ),
        version: s("version"),
        node_labels: given.get("node_labels").and_then(Value::as_object).cloned(),
        node_taints: given.get("node_taints").and_then(Value::as_array).cloned(),
        ..Default::default()
    };
    validate(&ng)?;
    if ng.role.as_deref() == Some("master") {
        return Err(MagnumError::NotSupportedMsg(
            "Creating master nodegroups is currently not supported.".into(),
        )
        .into());
    }
    if ng.image_id.is_none() {
        ng.image_id = crate::clusters::template_of(&state.db, &cluster)
            .await?
            .image_id;
    }
    if ng.flavor_id.is_none() {
        ng.flavor_id = cluster.flavor_id.clone();
    }
    let cluster_labels = cluster.labels.clone().unwrap_or_default();
    ng.labels = Some(match ng.labels.take() {
        None => cluster_labels.clone(),
        Some(labels) if given.get("merge_labels").and_then(Value::as_bool) == Some(true) => {
            let mut merged = cluster_labels.clone();
            merged.extend(labels);
            merged
        }
        Some(labels) => labels,
    });
    check_root_volume(&state, &ctx, &cluster, ng.flavor_id.as_deref()).await?;

    // The group as upstream's API sends it (the conductor sets its status).
    let args = json!({
        "cluster": ovo::encode_stored(&cluster),
        "nodegroup": ovo::encode(&ng),
    });
    ng.status = Some(CREATE_IN_PROGRESS.into());
    let op = queue(
        &state,
        &ctx,
        &cluster,
        Method::NodegroupCreate,
        args,
        &ng,
        true,
    )
    .await?;
    // As stored (with its id and timestamps), before a conductor moves it.
    let stored = state.db.nodegroup_get(&ng.uuid).await?.unwrap_or(ng);
    nudge(&state, &op).await;
    Ok(accepted(full(&stored, &cluster_labels, &base)))
}

async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    base: BaseUrl,
    Path((cluster, ident)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    since_1_9(&ctx, "patch")?;
    let ops = patch::parse_with(&body, &["/min_node_count"], &PATCH_INTERNAL)?;
    // Upstream judges a path by its first segment: `/labels/x` is as
    // internal as `/labels`.
    for op in &ops {
        let top = format!("/{}", op.path[1..].split('/').next().unwrap_or_default());
        if patch::INTERNAL.contains(&top.as_str()) || PATCH_INTERNAL.contains(&top.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "'{}' is an internal attribute and can not be updated",
                op.path
            )));
        }
    }
    let cluster = find_cluster(&state.db, &ctx, &cluster).await?;
    ctx.enforce(&state, "nodegroup:update", &ctx.own_target())?;
    let ng = find(&state.db, &ctx, &cluster, &ident).await?;

    let stored = match serde_json::to_value(&ng) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let doc: Map<String, Value> = DOC_FIELDS
        .iter()
        .filter(|k| has_node_attrs(&ctx) || !matches!(**k, "node_labels" | "node_taints"))
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
        if name.starts_with("node_") && !has_node_attrs(&ctx) {
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
    if has_node_attrs(&ctx) {
        new.node_labels = changed
            .get("node_labels")
            .and_then(Value::as_object)
            .cloned();
        new.node_taints = changed
            .get("node_taints")
            .and_then(Value::as_array)
            .cloned();
    }
    check_root_volume(&state, &ctx, &cluster, new.flavor_id.as_deref()).await?;
    validate(&new)?;

    let args = json!({
        "cluster": ovo::encode_stored(&cluster),
        "nodegroup": ovo::encode_changed(&new, &["node_count", "min_node_count", "max_node_count", "node_labels", "node_taints"]),
    });
    new.status = Some(UPDATE_IN_PROGRESS.into());
    new.status_reason = None;
    let op = queue(
        &state,
        &ctx,
        &cluster,
        Method::NodegroupUpdate,
        args,
        &new,
        false,
    )
    .await?;
    // The conductor stores the new sizes from the message; node labels and
    // taints are stored here, before any conductor hears of the operation.
    if new.node_labels != ng.node_labels || new.node_taints != ng.node_taints {
        let f: Map<String, Value> = [
            ("node_labels".to_string(), json!(new.node_labels)),
            ("node_taints".to_string(), json!(new.node_taints)),
        ]
        .into_iter()
        .collect();
        state.db.nodegroup_update_fields(&new.uuid, &f).await?;
    }
    nudge(&state, &op).await;
    Ok(accepted(full(
        &new,
        &cluster.labels.clone().unwrap_or_default(),
        &base,
    )))
}

async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((cluster, ident)): Path<(String, String)>,
) -> ApiResult<Response> {
    since_1_9(&ctx, "delete")?;
    ctx.enforce(&state, "nodegroup:delete", &ctx.own_target())?;
    let cluster = find_cluster(&state.db, &ctx, &cluster).await?;
    let mut ng = find(&state.db, &ctx, &cluster, &ident).await?;
    if ng.is_default == Some(true) {
        return Err(MagnumError::NotSupportedMsg(
            "Deleting a default nodegroup is not supported.".into(),
        )
        .into());
    }
    let args = json!({
        "cluster": ovo::encode_stored(&cluster),
        "nodegroup": ovo::encode_stored(&ng),
    });
    ng.status = Some(DELETE_IN_PROGRESS.into());
    let op = queue(
        &state,
        &ctx,
        &cluster,
        Method::NodegroupDelete,
        args,
        &ng,
        false,
    )
    .await?;
    nudge(&state, &op).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
