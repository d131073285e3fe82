//! `/v1/quotas`: per-project limits (admin), and each project's view of
//! its own. A project without a quota row has `[quotas]
//! max_clusters_per_project`.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use magnum_core::MagnumError;
use magnum_db::{Database, DbError, Quota};
use serde_json::{json, Map, Value};

use crate::cluster_templates::timestamp;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, parse_bool, Field, Kind};
use crate::links::BaseUrl;
use crate::pagination::{ListQuery, Marker};
use crate::request::JsonBody;
use crate::AppState;

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
    let limit = q.effective_limit(state.max_limit)?;
    q.dir()?;
    let marker_id = match &q.marker {
        Some(m) => {
            let id: i64 = m.parse().unwrap_or_default();
            let found = state.db.quota_by_id(id).await?;
            Some(
                found
                    .ok_or_else(|| {
                        MagnumError::NotFound(format!("Quota could not be found: quota id {id} ."))
                    })?
                    .id,
            )
        }
        None => None,
    };
    let page = q.page(state.max_limit, marker_id, Database::quota_sort_key_valid)?;
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
                .int("quotas", "max_clusters_per_project")
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
    let project_id = given
        .get("project_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let Some(project_id) = project_id.filter(|p| !p.is_empty()) else {
        return Err(MagnumError::Invalid("Must provide a valid project ID.".into()).into());
    };
    // Upstream's enforce_valid_project_id_on_create: Keystone must know
    // the project (ProjectNotFound, 404). Without Keystone (noauth) there
    // is no one to ask, and any project is taken.
    if let crate::AuthMode::Keystone(ks) = &state.auth {
        let token =
            ctx.context.auth_token.as_ref().ok_or_else(|| {
                MagnumError::Internal("a Keystone request without its token".into())
            })?;
        if !ks.project_exists(token, &project_id).await? {
            return Err(MagnumError::NotFound(format!(
                "The project_id {project_id} could not be found."
            ))
            .into());
        }
    }
    let resource = given
        .get("resource")
        .and_then(Value::as_str)
        .unwrap_or("Cluster")
        .to_string();
    let quota = Quota {
        project_id: Some(project_id.clone()),
        resource: Some(resource.clone()),
        hard_limit: given.get("hard_limit").and_then(Value::as_i64).unwrap_or(1),
        ..Default::default()
    };
    match state.db.quota_create(&quota).await {
        Ok(stored) => Ok((StatusCode::CREATED, Json(view(&stored))).into_response()),
        Err(DbError::Duplicate) => Err(MagnumError::Conflict(format!(
            "Quota for project {project_id} already exists for resource {resource}."
        ))
        .into()),
        Err(e) => Err(e.into()),
    }
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
