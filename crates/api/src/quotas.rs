//! `/v1/quotas`: per-project limits (admin), and each project's view of
//! its own. A project without a quota row has `[quotas]
//! max_clusters_per_project`.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use magnum_core::config::opts;
use magnum_core::MagnumError;
use magnum_db::{Database, Quota};
use serde_json::{json, Map, Value};

use crate::cluster_templates::timestamp;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, parse_bool, Field, Kind};
use crate::links::BaseUrl;
use crate::pagination::{ListQuery, Marker};
use crate::request::JsonBody;
use crate::{service, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/quotas", get(list).post(create))
        .route(
            "/quotas/{project_id}/{resource}",
            get(show).patch(update).delete(remove),
        )
}

/// The resources quotas limit (upstream's `QuotaResourceName`).
const RESOURCES: &[&str] = &["Cluster"];

const FIELDS: &[Field] = &[
    Field::new(
        "id",
        Kind::Int {
            min: Some(1),
            max: None,
        },
    )
    .readonly(),
    Field::new(
        "hard_limit",
        Kind::Int {
            min: Some(0),
            max: None,
        },
    ),
    Field::new("project_id", Kind::Str { min: 1, max: 255 }),
    Field::new("resource", Kind::Enum(RESOURCES)),
    Field::new("created_at", Kind::Text).readonly(),
    Field::new("updated_at", Kind::Text).readonly(),
];

fn view(q: &Quota) -> Value {
    json!({
        "created_at": timestamp(&q.created_at),
        "hard_limit": q.hard_limit,
        "id": q.id,
        "project_id": q.project_id,
        "resource": q.resource,
        "updated_at": timestamp(&q.updated_at),
    })
}

fn not_found(project_id: &str, resource: &str) -> ApiError {
    MagnumError::NotFound(format!(
        "Quota could not be found: project_id {project_id} resource {resource}."
    ))
    .into()
}

async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    base: BaseUrl,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    ctx.enforce(&state, "quota:get_all", &ctx.own_target())?;
    let q = ListQuery::parse_with(raw.as_deref(), &["all_tenants"], Marker::Id)?;
    let all_tenants = q
        .extra
        .iter()
        .find(|(k, _)| k == "all_tenants")
        .map(|(_, v)| {
            parse_bool(&Value::String(v.clone())).ok_or_else(|| {
                ApiError::invalid_input(
                    "all_tenants",
                    &Value::String(v.clone()),
                    "Invalid boolean value",
                )
            })
        })
        .transpose()?
        .unwrap_or(false);
    let project = if ctx.context.is_admin && all_tenants {
        None
    } else {
        ctx.context.project_id.clone()
    };
    let db = &state.db;
    let (page, limit) = q
        .resolve(
            state.max_limit,
            Database::quota_sort_key_valid,
            |m| async move {
                let id: i64 = m.parse().unwrap_or_default();
                let missing =
                    || MagnumError::NotFound(format!("Quota could not be found: quota id {id} ."));
                Ok(db.quota_by_id(id).await?.ok_or_else(missing)?.id)
            },
        )
        .await?;
    let items = state.db.quota_list(project.as_deref(), &page).await?;
    let last = items.last().map(|i| i.id.to_string());
    let mut body = Map::new();
    body.insert(
        "quotas".into(),
        Value::Array(items.iter().map(view).collect()),
    );
    if let Some(next) = q.next_link(&base, "quotas", items.len(), limit, last.as_deref()) {
        body.insert("next".into(), Value::String(next));
    }
    Ok(Json(Value::Object(body)))
}

async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((project_id, resource)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.enforce(&state, "quota:get", &ctx.own_target())?;
    if !ctx.context.is_admin && Some(&project_id) != ctx.context.project_id.as_ref() {
        return Err(MagnumError::NotAuthorized("Not authorized.".into()).into());
    }
    match state.db.quota_get(&project_id, &resource).await? {
        Some(q) => Ok(Json(view(&q))),
        None => {
            let default = state
                .conf
                .get(opts::quotas::MAX_CLUSTERS_PER_PROJECT)
                .unwrap_or(20);
            // Upstream answers `Quota(project_id=…, hard_limit=…)`: the
            // resource is the attribute's default, whatever the path says.
            Ok(Json(
                json!({"project_id": project_id, "resource": "Cluster", "hard_limit": default}),
            ))
        }
    }
}

async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.enforce(&state, "quota:create", &ctx.own_target())?;
    let given = fields::validate_object("quota", FIELDS, &body)?;
    let stored = service::quotas::create(&state, &ctx, &given).await?;
    Ok((StatusCode::CREATED, Json(view(&stored))).into_response())
}

async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((project_id, resource)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.enforce(&state, "quota:update", &ctx.own_target())?;
    let given = fields::validate_object("quotapatch", FIELDS, &body)?;
    // Upstream's body is a whole quota whose hard_limit defaults to 1.
    let hard_limit = given.get("hard_limit").and_then(Value::as_i64).unwrap_or(1);
    match state
        .db
        .quota_update(&project_id, &resource, hard_limit)
        .await?
    {
        Some(q) => Ok((StatusCode::ACCEPTED, Json(view(&q))).into_response()),
        None => Err(not_found(&project_id, &resource)),
    }
}

async fn remove(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((project_id, resource)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    ctx.enforce(&state, "quota:delete", &ctx.own_target())?;
    if state.db.quota_delete(&project_id, &resource).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&project_id, &resource))
    }
}
