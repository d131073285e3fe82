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
//! The handlers parse (the patch in [`patching`]) and check policy; the
//! service ([`crate::service::federations`]) applies upstream's rules and
//! writes.
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
use magnum_core::MagnumError;
use magnum_db::{Database, Federation};
use serde_json::{json, Map, Value};

use crate::cluster_templates::timestamp;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, Field, Kind, MAX_TEXT};
use crate::links::BaseUrl;
use crate::pagination::ListQuery;
use crate::request::JsonBody;
use crate::{service, AppState};

pub(crate) mod patching;

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

pub(crate) fn target(f: &Federation) -> Value {
    json!({ "project_id": f.project_id })
}

fn accepted(uuid: &str) -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "uuid": uuid }))).into_response()
}

pub(crate) fn not_found(ident: &str) -> ApiError {
    MagnumError::NotFound(format!("Federation {ident} could not be found.")).into()
}

pub(crate) fn shown_name(f: &Federation) -> &str {
    f.name.as_deref().unwrap_or("None")
}

/// Find a federation by UUID or name among the caller's.
pub async fn find(db: &Database, ctx: &Ctx, ident: &str) -> ApiResult<Federation> {
    crate::find::by_ident(
        ident,
        &FEDERATION,
        |uuid| async move { db.federation_get_by_uuid(&ctx.context, &uuid).await },
        || db.federation_get_by_name(&ctx.context, ident),
    )
    .await
}

const FEDERATION: crate::find::Kind = crate::find::Kind {
    not_found,
    plural: "federations",
    singular: "federation",
};

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
    let (page, limit) = q
        .resolve(
            state.max_limit,
            Database::federation_sort_key_valid,
            |m| async move {
                let found = state.db.federation_get_by_uuid(&ctx.context, &m).await?;
                Ok(found.ok_or_else(|| not_found(&m))?.id)
            },
        )
        .await?;
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
    let uuid = service::federations::create(&state, &ctx, &given).await?;
    Ok(accepted(&uuid))
}

async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    RawQuery(query): RawQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let ops = patching::parse_patch(&body)?;
    patching::check_rollback(query.as_deref())?;
    let uuid = service::federations::update(&state, &ctx, &ident, &ops).await?;
    Ok(accepted(&uuid))
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
