//! `/v1/clustertemplates`: create, list, detail, show, update and delete
//! ClusterTemplates, with upstream's validation, visibility (public and
//! hidden templates) and policy rules.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use magnum_core::objects::{ClusterTemplate, COE_VALUES, SERVER_TYPES};
use magnum_core::MagnumError;
use magnum_db::{ClusterTemplateFilter, Database, TemplateInUse};
use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::error::ApiResult;
use crate::fields::{self, Field, Kind};
use crate::links::BaseUrl;
use crate::pagination::ListQuery;
use crate::request::JsonBody;
use crate::{patch, service, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/clustertemplates", get(list).post(create))
        .route("/clustertemplates/detail", get(detail))
        .route(
            "/clustertemplates/{ident}",
            get(show).patch(update).delete(remove),
        )
}

const STR: Kind = Kind::Str { min: 1, max: 255 };

/// The attributes of a ClusterTemplate in the API.
pub const FIELDS: &[Field] = &[
    Field::new("uuid", Kind::Uuid),
    Field::new("name", STR),
    Field::new("coe", Kind::Enum(&COE_VALUES)).mandatory(),
    Field::new("image_id", STR).mandatory(),
    Field::new("flavor_id", STR),
    Field::new("master_flavor_id", STR),
    Field::new("dns_nameserver", Kind::DnsList),
    Field::new("keypair_id", STR),
    Field::new("external_network_id", STR),
    Field::new("fixed_network", STR),
    Field::new("fixed_subnet", STR),
    Field::new("network_driver", STR),
    Field::new(
        "apiserver_port",
        Kind::Int {
            min: Some(1024),
            max: Some(65535),
        },
    ),
    Field::new(
        "docker_volume_size",
        Kind::Int {
            min: Some(1),
            max: None,
        },
    ),
    Field::new("cluster_distro", STR),
    Field::new("links", Kind::Text).readonly(),
    Field::new("http_proxy", STR),
    Field::new("https_proxy", STR),
    Field::new("no_proxy", STR),
    Field::new("volume_driver", STR),
    Field::new("registry_enabled", Kind::Bool),
    Field::new("labels", Kind::Labels),
    Field::new("tls_disabled", Kind::Bool),
    Field::new("public", Kind::Bool),
    Field::new("server_type", Kind::Enum(&SERVER_TYPES)),
    Field::new("insecure_registry", STR),
    Field::new("docker_storage_driver", STR),
    Field::new("master_lb_enabled", Kind::Bool),
    Field::new("floating_ip_enabled", Kind::Bool),
    Field::new("project_id", Kind::Text).readonly(),
    Field::new("user_id", Kind::Text).readonly(),
    Field::new("hidden", Kind::Bool),
    Field::new("tags", Kind::Str { min: 0, max: 255 }),
    Field::new("driver", STR),
    Field::new("created_at", Kind::Text).readonly(),
    Field::new("updated_at", Kind::Text).readonly(),
];

/// Attributes a patch may not remove: the mandatory ones and these.
const NON_REMOVABLE: [&str; 10] = [
    "/coe",
    "/image_id",
    "/network_driver",
    "/external_network_id",
    "/tls_disabled",
    "/public",
    "/server_type",
    "/registry_enabled",
    "/cluster_distro",
    "/hidden",
];

/// Upstream's timestamps: ISO 8601 with an explicit UTC offset.
pub fn timestamp(t: &Option<chrono::NaiveDateTime>) -> Value {
    match t {
        Some(t) => Value::String(format!("{}+00:00", magnum_core::objects::iso_seconds(t))),
        None => Value::Null,
    }
}

/// A template as the API shows it.
pub fn view(ct: &ClusterTemplate, base: &BaseUrl) -> Value {
    let mut stored = ct.to_map();
    stored.insert("created_at".into(), timestamp(&ct.created_at));
    stored.insert("updated_at".into(), timestamp(&ct.updated_at));
    stored.insert(
        "links".into(),
        base.resource_links("clustertemplates", &ct.uuid),
    );
    let mut names: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
    names.sort_unstable();
    let out: Map<String, Value> = names
        .into_iter()
        .map(|n| (n.to_string(), stored.get(n).cloned().unwrap_or(Value::Null)))
        .collect();
    Value::Object(out)
}

fn target(ct: &ClusterTemplate) -> Value {
    json!({"project_id": ct.project_id, "user_id": ct.user_id})
}

/// Find a template by UUID or name among those the caller may see.
pub async fn find(db: &Database, ctx: &Ctx, ident: &str) -> ApiResult<ClusterTemplate> {
    crate::find::by_ident(
        ident,
        &TEMPLATE,
        |uuid| async move { db.cluster_template_by_uuid(&ctx.context, &uuid).await },
        || db.cluster_templates_by_name(&ctx.context, ident),
    )
    .await
}

const TEMPLATE: crate::find::Kind = crate::find::Kind {
    not_found: |ident| MagnumError::ClusterTemplateNotFound(ident.to_string()).into(),
    plural: "ClusterTemplates",
    singular: "ClusterTemplate",
};

async fn list(
    State(state): State<AppState>,
    mut ctx: Ctx,
    base: BaseUrl,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    collection(&state, &mut ctx, &base, query.as_deref(), false).await
}

async fn detail(
    State(state): State<AppState>,
    mut ctx: Ctx,
    base: BaseUrl,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    collection(&state, &mut ctx, &base, query.as_deref(), true).await
}

async fn collection(
    state: &AppState,
    ctx: &mut Ctx,
    base: &BaseUrl,
    query: Option<&str>,
    detail: bool,
) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(query, &[])?;
    let (rule, all_rule) = if detail {
        (
            "clustertemplate:detail",
            "clustertemplate:detail_all_projects",
        )
    } else {
        (
            "clustertemplate:get_all",
            "clustertemplate:get_all_all_projects",
        )
    };
    ctx.enforce(state, rule, &ctx.own_target())?;
    ctx.all_projects_if_admin(state, all_rule)?;
    let ctx = &*ctx;
    let valid = Database::cluster_template_sort_key_valid;
    let (page, limit) = q
        .resolve(state.max_limit, valid, |m| async move {
            let found = state.db.cluster_template_by_uuid(&ctx.context, &m).await?;
            Ok(found.ok_or(MagnumError::ClusterTemplateNotFound(m))?.id)
        })
        .await?;
    let items = state
        .db
        .cluster_template_list(&ctx.context, &ClusterTemplateFilter::default(), &page)
        .await?;
    let resource = if detail {
        "clustertemplates/detail"
    } else {
        "clustertemplates"
    };
    let next = q.next_link(
        base,
        resource,
        items.len(),
        limit,
        items.last().map(|t| t.uuid.as_str()),
    );
    let mut body = Map::new();
    body.insert(
        "clustertemplates".into(),
        Value::Array(items.iter().map(|t| view(t, base)).collect()),
    );
    if let Some(next) = next {
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
    ctx.all_projects_if_admin(&state, "clustertemplate:get_one_all_projects")?;
    let ct = find(&state.db, &ctx, &ident).await?;
    if ct.is_hidden() && !ctx.context.is_admin && ct.project_id != ctx.context.project_id {
        return Err(MagnumError::ClusterTemplateNotFound(ident).into());
    }
    if !ct.is_public() {
        ctx.enforce(&state, "clustertemplate:get", &target(&ct))?;
    }
    Ok(Json(view(&ct, &base)))
}

async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    base: BaseUrl,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.enforce(&state, "clustertemplate:create", &ctx.own_target())?;
    let given = fields::validate_object("cluster_template", FIELDS, &body)?;
    let stored = service::cluster_templates::create(&state, &ctx, given).await?;
    let location = base.url("clustertemplates", &stored.uuid, false);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view(&stored, &base)),
    )
        .into_response())
}

async fn update(
    State(state): State<AppState>,
    mut ctx: Ctx,
    base: BaseUrl,
    Path(ident): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let ops = patch::parse(&body, &NON_REMOVABLE)?;
    ctx.all_projects_if_admin(&state, "clustertemplate:update_all_projects")?;
    let current = find(&state.db, &ctx, &ident).await?;
    ctx.enforce(&state, "clustertemplate:update", &target(&current))?;
    // Patch the attributes the API shows, then validate the result as a
    // whole, as if it had been sent in full.
    let mut doc = current.to_map();
    doc.retain(|k, _| FIELDS.iter().any(|f| f.name == k && !f.readonly));
    let patched = patch::apply(doc, ops)?;
    let checked = fields::validate_object("cluster_template", FIELDS, &Value::Object(patched))?;
    let new = service::cluster_templates::from_attributes(checked)?;
    let stored = service::cluster_templates::update(&state, &ctx, &ident, &current, new).await?;
    Ok(Json(view(&stored, &base)))
}

async fn remove(
    State(state): State<AppState>,
    mut ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.all_projects_if_admin(&state, "clustertemplate:delete_all_projects")?;
    let ct = find(&state.db, &ctx, &ident).await?;
    ctx.enforce(&state, "clustertemplate:delete", &target(&ct))?;
    match state.db.cluster_template_destroy(&ct).await? {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(MagnumError::ClusterTemplateNotFound(ident).into()),
        Err(TemplateInUse) => Err(MagnumError::ClusterTemplateReferenced(ident).into()),
    }
}
