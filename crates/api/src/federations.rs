//! `/v1/federations`: list (summary view), detail and show (full view),
//! create (202 with the new uuid), PATCH (202) and delete (204), with
//! upstream's types, validation, messages and policies.
//!
//! Upstream's API hands federations to its conductor, which refuses them
//! (`NotImplementedError`), so nothing is ever stored there. A federation
//! is only a record linking existing clusters, so here the API stores it
//! itself: a create is `CREATE_COMPLETE` at once, an update of its members
//! or properties `UPDATE_COMPLETE`, and a delete removes the row.
//!
//! The host cluster and every new member must be clusters the caller can
//! see (by UUID or name); they are stored by UUID. Members join and leave
//! the way upstream patches them: `add` or `remove` on `/member_ids` with
//! one cluster as the value; `replace` sets the whole list.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use magnum_core::objects::status::{
    CREATE_COMPLETE, CREATE_FAILED, CREATE_IN_PROGRESS, DELETE_COMPLETE, DELETE_FAILED,
    DELETE_IN_PROGRESS, UPDATE_COMPLETE, UPDATE_FAILED, UPDATE_IN_PROGRESS,
};
use magnum_core::{names, MagnumError};
use magnum_db::{Database, Federation};
use serde_json::{json, Map, Value};

use crate::cluster_templates::timestamp;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, canonical_uuid, Field, Kind, MAX_TEXT};
use crate::links::BaseUrl;
use crate::pagination::ListQuery;
use crate::patch::{self, Op};
use crate::request::JsonBody;
use crate::{clusters, pyliteral, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/federations", get(list).post(create))
        .route("/federations/detail", get(detail))
        .route(
            "/federations/{ident}",
            get(show).patch(update).delete(remove),
        )
}

/// Upstream's `FederationStatus.ALL`.
const STATUSES: [&str; 9] = [
    CREATE_IN_PROGRESS,
    CREATE_FAILED,
    CREATE_COMPLETE,
    UPDATE_IN_PROGRESS,
    UPDATE_FAILED,
    UPDATE_COMPLETE,
    DELETE_IN_PROGRESS,
    DELETE_FAILED,
    DELETE_COMPLETE,
];

/// wsme's `wtypes.text`.
const TEXT: Kind = Kind::Unicode { max: MAX_TEXT };

/// The attributes of upstream's API `Federation` type.
pub const FIELDS: &[Field] = &[
    Field::new("uuid", Kind::Uuid),
    Field::new("name", Kind::Name { min: 1, max: 242 }),
    Field::new("hostcluster_id", TEXT),
    Field::new("member_ids", Kind::StrList),
    Field::new("status", Kind::Enum(&STATUSES)),
    Field::new("status_reason", TEXT),
    Field::new("properties", Kind::StrMap),
    Field::new("links", Kind::Text).readonly(),
    Field::new("created_at", Kind::Text).readonly(),
    Field::new("updated_at", Kind::Text).readonly(),
];

/// The fields of the summary view (upstream's `expand=False`).
const SUMMARY: [&str; 6] = [
    "uuid",
    "name",
    "hostcluster_id",
    "member_ids",
    "status",
    "properties",
];

/// What a PATCH may change (upstream's `federation_update_allowed_properties`).
const UPDATABLE_PROPERTIES: [&str; 2] = ["member_ids", "properties"];

/// How often an update is recomputed when another one won the race.
const UPDATE_ATTEMPTS: usize = 5;

fn view(f: &Federation, base: &BaseUrl, expand: bool) -> Value {
    let mut out = Map::new();
    out.insert("uuid".into(), json!(f.uuid));
    out.insert("name".into(), json!(f.name));
    out.insert("hostcluster_id".into(), json!(f.hostcluster_id));
    out.insert("member_ids".into(), json!(f.member_ids));
    out.insert("status".into(), json!(f.status));
    out.insert("status_reason".into(), json!(f.status_reason));
    out.insert("properties".into(), json!(f.properties));
    out.insert("created_at".into(), timestamp(&f.created_at));
    out.insert("updated_at".into(), timestamp(&f.updated_at));
    if !expand {
        out.retain(|k, _| SUMMARY.contains(&k.as_str()));
    }
    out.insert("links".into(), base.resource_links("federations", &f.uuid));
    Value::Object(out)
}

fn target(f: &Federation) -> Value {
    json!({ "project_id": f.project_id })
}

fn accepted(uuid: &str) -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "uuid": uuid }))).into_response()
}

fn not_found(ident: &str) -> ApiError {
    MagnumError::NotFound(format!("Federation {ident} could not be found.")).into()
}

fn shown_name(f: &Federation) -> &str {
    f.name.as_deref().unwrap_or("None")
}

/// Find a federation by UUID or name among the caller's.
pub async fn find(db: &Database, ctx: &Ctx, ident: &str) -> ApiResult<Federation> {
    if let Some(uuid) = canonical_uuid(ident) {
        return db
            .federation_get_by_uuid(&ctx.context, &uuid)
            .await?
            .ok_or_else(|| not_found(ident));
    }
    let mut found = db.federation_get_by_name(&ctx.context, ident).await?;
    match found.len() {
        0 => Err(not_found(ident)),
        1 => Ok(found.remove(0)),
        _ => Err(MagnumError::Conflict(
            "Multiple federations exist with same name. Please use the federation uuid instead."
                .into(),
        )
        .into()),
    }
}

/// Upstream's `validate_federation_properties`: a map with a `dns-zone`.
fn check_properties(properties: Option<&Map<String, Value>>) -> ApiResult<Map<String, Value>> {
    let Some(properties) = properties else {
        return Err(MagnumError::Invalid(
            "Please specify a `properties` dict for the federation.".into(),
        )
        .into());
    };
    if properties.get("dns-zone").is_none_or(Value::is_null) {
        return Err(MagnumError::Invalid(
            "No DNS zone specified. Please specify a `dns-zone`.".into(),
        )
        .into());
    }
    Ok(properties.clone())
}

/// The member list as stored: every member not already in `known` must be
/// a cluster the caller can see (by UUID or name) and is kept by UUID;
/// repeats are dropped.
async fn resolve_members(
    state: &AppState,
    ctx: &Ctx,
    given: &[String],
    known: &[String],
) -> ApiResult<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(given.len());
    for m in given {
        let uuid = if known.contains(m) {
            m.clone()
        } else {
            clusters::find(&state.db, ctx, m).await?.uuid
        };
        if !out.contains(&uuid) {
            out.push(uuid);
        }
    }
    Ok(out)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    base: BaseUrl,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    collection(&state, &ctx, &base, q.as_deref(), false).await
}

async fn detail(
    State(state): State<AppState>,
    ctx: Ctx,
    base: BaseUrl,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    collection(&state, &ctx, &base, q.as_deref(), true).await
}

async fn collection(
    state: &AppState,
    ctx: &Ctx,
    base: &BaseUrl,
    query: Option<&str>,
    expand: bool,
) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(query, &[])?;
    let rule = if expand {
        "federation:detail"
    } else {
        "federation:get_all"
    };
    ctx.enforce(state, rule, &ctx.own_target())?;
    let limit = q.effective_limit(state.max_limit)?;
    q.dir()?;
    let marker_id = match &q.marker {
        Some(m) => Some(
            state
                .db
                .federation_get_by_uuid(&ctx.context, m)
                .await?
                .ok_or_else(|| not_found(m))?
                .id,
        ),
        None => None,
    };
    let page = q.page(
        state.max_limit,
        marker_id,
        Database::federation_sort_key_valid,
    )?;
    let found = state.db.federation_list(&ctx.context, &page).await?;
    let resource = if expand {
        "federations/detail"
    } else {
        "federations"
    };
    let mut body = Map::new();
    body.insert(
        "federations".into(),
        Value::Array(found.iter().map(|f| view(f, base, expand)).collect()),
    );
    if let Some(next) = q.next_link(
        base,
        resource,
        found.len(),
        limit,
        found.last().map(|f| f.uuid.as_str()),
    ) {
        body.insert("next".into(), Value::String(next));
    }
    Ok(Json(Value::Object(body)))
}

async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    base: BaseUrl,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    let f = find(&state.db, &ctx, &ident).await?;
    ctx.enforce(&state, "federation:get", &target(&f))?;
    Ok(Json(view(&f, &base, true)))
}

async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.enforce(&state, "federation:create", &ctx.own_target())?;
    let given = fields::validate_object("federation", FIELDS, &body)?;
    // Upstream's validate_federation_hostcluster: present, and a cluster.
    let Some(host) = given.get("hostcluster_id").and_then(Value::as_str) else {
        return Err(MagnumError::Invalid(
            "No hostcluster specified. Please specify a hostcluster_id.".into(),
        )
        .into());
    };
    let host = clusters::find(&state.db, &ctx, host).await?;
    let properties = check_properties(given.get("properties").and_then(Value::as_object))?;
    let members = resolve_members(&state, &ctx, &strings(given.get("member_ids")), &[]).await?;
    let name = given
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}-federation", names::generate()));
    let federation = Federation {
        uuid: uuid::Uuid::new_v4().to_string(),
        name: Some(name),
        project_id: ctx.context.project_id.clone(),
        hostcluster_id: Some(host.uuid),
        member_ids: Some(members),
        status: Some(CREATE_COMPLETE.into()),
        status_reason: Some("CREATE completed successfully".into()),
        properties: Some(properties),
        ..Default::default()
    };
    state.db.federation_create(&federation).await?;
    Ok(accepted(&federation.uuid))
}

/// The `rollback` query parameter upstream's PATCH takes (nothing to roll
/// back here, but a bad value is refused as upstream does).
fn check_rollback(query: Option<&str>) -> ApiResult<()> {
    let Some(q) = query else { return Ok(()) };
    for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
        if k == "rollback" {
            let v = Value::String(v.to_string());
            if fields::parse_bool(&v).is_none() {
                return Err(ApiError::invalid_input("rollback", &v, "Invalid boolean"));
            }
        }
    }
    Ok(())
}

/// Whole-attribute paths whose value may be a list or a map (upstream's
/// patch values are strings; python-magnumclient sends maps and lists as
/// Python literals, which are accepted too).
const STRUCTURED: [&str; 2] = ["/member_ids", "/properties"];

/// Parse the patch document; list and map values of [`STRUCTURED`] paths
/// are kept as they are.
fn parse_patch(body: &Value) -> ApiResult<Vec<Op>> {
    let mut kept: Vec<(usize, Value)> = Vec::new();
    let mut body = body.clone();
    if let Some(items) = body.as_array_mut() {
        for (i, item) in items.iter_mut().enumerate() {
            let Some(obj) = item.as_object_mut() else {
                continue;
            };
            let structured = obj
                .get("path")
                .and_then(Value::as_str)
                .is_some_and(|p| STRUCTURED.contains(&p));
            if !structured {
                continue;
            }
            if let Some(v) = obj.get_mut("value") {
                if v.is_array() || v.is_object() {
                    kept.push((i, std::mem::replace(v, Value::String(String::new()))));
                }
            }
        }
    }
    let mut ops = patch::parse(&body, &[])?;
    if ops.is_empty() {
        // Upstream reads the first operation unchecked and fails with a
        // 500; an empty patch is the client's mistake.
        return Err(ApiError::BadRequest(
            "The patch must contain at least one operation.".into(),
        ));
    }
    for (i, v) in kept {
        if let Some(op) = ops.get_mut(i) {
            op.value = Some(v);
        }
    }
    Ok(ops)
}

fn op_json(op: &Op) -> Value {
    let mut m = Map::new();
    m.insert("op".into(), json!(op.op));
    m.insert("path".into(), json!(op.path));
    if let Some(v) = &op.value {
        m.insert("value".into(), v.clone());
    }
    Value::Object(m)
}

fn patch_error(op: &Op, reason: &str) -> ApiError {
    MagnumError::PatchError {
        patch: Value::Array(vec![op_json(op)]).to_string(),
        reason: reason.into(),
    }
    .into()
}

/// The clusters a `/member_ids` value names: one cluster, or a list (as
/// JSON or as a Python literal).
fn named_members(op: &Op) -> ApiResult<Vec<String>> {
    let bad = || patch_error(op, "member_ids must be a list of cluster UUIDs or names");
    let value = match &op.value {
        Some(Value::String(s)) if s.trim_start().starts_with(['[', '(']) => {
            pyliteral::parse(s).map_err(|e| patch_error(op, &e))?
        }
        Some(v) => v.clone(),
        None => return Ok(Vec::new()),
    };
    match value {
        Value::String(s) => Ok(vec![s]),
        Value::Number(n) => Ok(vec![n.to_string()]),
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok(s),
                _ => Err(bad()),
            })
            .collect(),
        _ => Err(bad()),
    }
}

/// Rewrite one operation against the current attributes, as upstream's
/// `_join_wrapper`/`_unjoin_wrapper` do: `add` of a cluster to
/// `/member_ids` appends it, `remove` with a value takes it out; both
/// become a `replace` of the whole list.
async fn rewrite(
    state: &AppState,
    ctx: &Ctx,
    f: &Federation,
    doc: &Map<String, Value>,
    mut op: Op,
) -> ApiResult<Op> {
    match op.path.as_str() {
        "/member_ids" => {
            let mut members = strings(doc.get("member_ids"));
            let named = named_members(&op)?;
            match op.op.as_str() {
                "add" => {
                    for m in &named {
                        let c = clusters::find(&state.db, ctx, m).await?;
                        if members.contains(m) || members.contains(&c.uuid) {
                            return Err(MagnumError::Conflict(format!(
                                "A cluster with UUID {m} is already a member of the federation \
                                 {}.",
                                shown_name(f)
                            ))
                            .into());
                        }
                        members.push(c.uuid);
                    }
                }
                "remove" if op.value.is_none() => members.clear(),
                "remove" => {
                    for m in &named {
                        let uuid = canonical_uuid(m);
                        let at = members
                            .iter()
                            .position(|x| x == m || Some(x) == uuid.as_ref())
                            .ok_or_else(|| {
                                MagnumError::NotFound(format!(
                                    "Cluster {m} is not a member of the federation {}.",
                                    shown_name(f)
                                ))
                            })?;
                        members.remove(at);
                    }
                }
                _ => members = named,
            }
            op.op = "replace".into();
            op.value = Some(json!(members));
        }
        "/properties" if op.op != "remove" => {
            if let Some(Value::String(s)) = &op.value {
                match pyliteral::parse(s) {
                    Ok(v @ Value::Object(_)) => op.value = Some(v),
                    Ok(_) => return Err(patch_error(&op, "properties must be a dict")),
                    Err(e) => return Err(patch_error(&op, &e)),
                }
            }
        }
        _ => {}
    }
    Ok(op)
}

/// The attributes a patch applies to.
fn patchable(f: &Federation) -> Map<String, Value> {
    let mut doc = match serde_json::to_value(f) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    doc.retain(|k, _| FIELDS.iter().any(|x| x.name == k && !x.readonly));
    doc
}

async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    RawQuery(query): RawQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let ops = parse_patch(&body)?;
    check_rollback(query.as_deref())?;
    for _ in 0..UPDATE_ATTEMPTS {
        let f = find(&state.db, &ctx, &ident).await?;
        ctx.enforce(&state, "federation:update", &target(&f))?;
        let before = patchable(&f);
        let mut doc = before.clone();
        for op in &ops {
            let op = rewrite(&state, &ctx, &f, &doc, op.clone()).await?;
            doc = patch::apply(doc, vec![op])?;
        }
        let checked = fields::validate_object("federation", FIELDS, &Value::Object(doc))?;
        let before = fields::validate_object("federation", FIELDS, &Value::Object(before))?;
        let mut delta: Vec<&str> = FIELDS
            .iter()
            .map(|x| x.name)
            .filter(|k| checked.get(*k) != before.get(*k))
            .filter(|k| !UPDATABLE_PROPERTIES.contains(k))
            .collect();
        if !delta.is_empty() {
            delta.sort_unstable();
            return Err(MagnumError::Invalid(format!(
                "cannot change federation property(ies) {}.",
                delta.join(", ")
            ))
            .into());
        }
        let known = f.member_ids.clone().unwrap_or_default();
        let members =
            resolve_members(&state, &ctx, &strings(checked.get("member_ids")), &known).await?;
        let properties = check_properties(checked.get("properties").and_then(Value::as_object))?;
        if Some(&members) == f.member_ids.as_ref() && Some(&properties) == f.properties.as_ref() {
            return Ok(accepted(&f.uuid));
        }
        let updated = Federation {
            member_ids: Some(members),
            properties: Some(properties),
            status: Some(UPDATE_COMPLETE.into()),
            status_reason: Some("UPDATE completed successfully".into()),
            ..f.clone()
        };
        if state.db.federation_update(&updated, &f).await? {
            return Ok(accepted(&f.uuid));
        }
        // Another update won the race: recompute from what it stored.
    }
    Err(MagnumError::Conflict(format!(
        "Federation {ident} is being updated by another request; please retry."
    ))
    .into())
}

async fn remove(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<StatusCode> {
    let f = find(&state.db, &ctx, &ident).await?;
    ctx.enforce(&state, "federation:delete", &target(&f))?;
    if state.db.federation_destroy(&f.uuid).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&ident))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(op: &str, path: &str, value: Option<Value>) -> Op {
        Op {
            op: op.into(),
            path: path.into(),
            value,
        }
    }

    #[test]
    fn member_values() {
        let named = |v: Value| named_members(&op("replace", "/member_ids", Some(v)));
        assert_eq!(named(json!("a")).unwrap(), ["a"]);
        assert_eq!(named(json!("['a', 'b']")).unwrap(), ["a", "b"]);
        assert_eq!(named(json!(["a", "b"])).unwrap(), ["a", "b"]);
        assert!(named(json!([1])).is_err());
        assert!(named(json!("[unclosed")).is_err());
        assert!(named_members(&op("remove", "/member_ids", None))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn structured_values_survive_parsing() {
        let ops = parse_patch(&json!([
            {"op": "replace", "path": "/member_ids", "value": ["a"]},
            {"op": "replace", "path": "/properties", "value": {"dns-zone": "x."}},
            {"op": "add", "path": "/properties/k", "value": "v"},
        ]))
        .unwrap();
        assert_eq!(ops[0].value, Some(json!(["a"])));
        assert_eq!(ops[1].value, Some(json!({"dns-zone": "x."})));
        assert_eq!(ops[2].value, Some(json!("v")));
        assert!(parse_patch(&json!([{"op": "replace", "path": "/name", "value": ["a"]}])).is_err());
        assert!(parse_patch(&json!([{"op": "replace", "path": "/uuid", "value": "x"}])).is_err());
    }

    #[test]
    fn properties_need_a_dns_zone() {
        let e = check_properties(None).unwrap_err().to_string();
        assert_eq!(e, "Please specify a `properties` dict for the federation.");
        let e = check_properties(json!({"a": "b"}).as_object())
            .unwrap_err()
            .to_string();
        assert_eq!(e, "No DNS zone specified. Please specify a `dns-zone`.");
        assert!(check_properties(json!({"dns-zone": "example.com."}).as_object()).is_ok());
    }
}
