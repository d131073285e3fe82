//! `/v1/clustertemplates`: create, list, detail, show, update and delete
//! ClusterTemplates, with upstream's validation, visibility (public and
//! hidden templates) and policy rules.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use magnum_core::cloud::Lookup;
use magnum_core::objects::{ClusterTemplate, COE_VALUES, SERVER_TYPES};
use magnum_core::{names, MagnumError};
use magnum_db::{ClusterTemplateFilter, Database, TemplateInUse};
use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, canonical_uuid, Field, Kind};
use crate::links::BaseUrl;
use crate::pagination::ListQuery;
use crate::request::JsonBody;
use crate::{patch, AppState};

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

/// Defaults upstream applies to attributes a create request leaves out.
const CREATE_DEFAULTS: [(&str, Value); 6] = [
    ("registry_enabled", Value::Bool(false)),
    ("tls_disabled", Value::Bool(false)),
    ("public", Value::Bool(false)),
    ("master_lb_enabled", Value::Bool(false)),
    ("floating_ip_enabled", Value::Bool(true)),
    ("hidden", Value::Bool(false)),
];

const DEVICEMAPPER_NOTE: &str = "The devicemapper and overlay storage drivers are deprecated in \
    favor of overlay2 in docker, and will be removed in a future release from docker. Users of \
    the devicemapper and overlay storage drivers are recommended to migrate to a different \
    storage driver, such as overlay2.";

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
    let not_found = || MagnumError::ClusterTemplateNotFound(ident.to_string());
    if let Some(uuid) = canonical_uuid(ident) {
        return db
            .cluster_template_by_uuid(&ctx.context, &uuid)
            .await?
            .ok_or_else(|| not_found().into());
    }
    let mut found = db.cluster_templates_by_name(&ctx.context, ident).await?;
    match found.len() {
        0 => Err(not_found().into()),
        1 => Ok(found.remove(0)),
        _ => Err(MagnumError::Conflict(
            "Multiple ClusterTemplates exist with same name. Please use the ClusterTemplate uuid instead."
                .into(),
        )
        .into()),
    }
}

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
                .cluster_template_by_uuid(&ctx.context, m)
                .await?
                .ok_or_else(|| MagnumError::ClusterTemplateNotFound(m.clone()))?
                .id,
        ),
        None => None,
    };
    let page = q.page(
        state.max_limit,
        marker_id,
        Database::cluster_template_sort_key_valid,
    )?;
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
    if ctx.context.is_admin {
        ctx.enforce(
            &state,
            "clustertemplate:get_one_all_projects",
            &ctx.own_target(),
        )?;
        ctx.context.all_tenants = true;
    }
    let ct = find(&state.db, &ctx, &ident).await?;
    if ct.is_hidden() && !ctx.context.is_admin && ct.project_id != ctx.context.project_id {
        return Err(MagnumError::ClusterTemplateNotFound(ident).into());
    }
    if !ct.is_public() {
        ctx.enforce(&state, "clustertemplate:get", &target(&ct))?;
    }
    Ok(Json(view(&ct, &base)))
}

/// The validation rules of one COE (upstream's `Validator` classes).
struct CoeRules {
    coe: &'static str,
    network_drivers: &'static [&'static str],
    volume_drivers: &'static [&'static str],
}

const COE_RULES: [CoeRules; 4] = [
    CoeRules {
        coe: "kubernetes",
        network_drivers: &["flannel", "calico", "cilium"],
        volume_drivers: &["cinder"],
    },
    CoeRules {
        coe: "swarm",
        network_drivers: &["docker", "flannel"],
        volume_drivers: &["rexray"],
    },
    CoeRules {
        coe: "swarm-mode",
        network_drivers: &["docker", "flannel"],
        volume_drivers: &["rexray"],
    },
    CoeRules {
        coe: "mesos",
        network_drivers: &["docker"],
        volume_drivers: &["rexray"],
    },
];

fn invalid(msg: String) -> ApiError {
    MagnumError::Invalid(msg).into()
}

fn expecting(list: &[&str]) -> String {
    let mut all: Vec<&str> = list.to_vec();
    all.push("unspecified");
    all.join("/")
}

impl CoeRules {
    fn of(coe: &str) -> ApiResult<&'static CoeRules> {
        COE_RULES
            .iter()
            .find(|r| r.coe == coe)
            .ok_or_else(|| invalid(format!("Requested COE type {coe} is not supported.")))
    }

    /// `[cluster_template] <coe>_allowed_network_drivers` and the default.
    fn network_options(&self, state: &AppState) -> (Vec<String>, Option<String>) {
        let prefix = match self.coe {
            "kubernetes" => "kubernetes",
            "mesos" => "mesos",
            _ => "swarm",
        };
        (
            state.conf.list(
                "cluster_template",
                &format!("{prefix}_allowed_network_drivers"),
            ),
            state.conf.str(
                "cluster_template",
                &format!("{prefix}_default_network_driver"),
            ),
        )
    }

    fn check_server_type(&self, server_type: &str) -> ApiResult<()> {
        if ["vm", "bm"].contains(&server_type) {
            return Ok(());
        }
        Err(invalid(format!(
            "Server type {server_type} is not supported, expecting a {} server type.",
            expecting(&["vm", "bm"])
        )))
    }

    fn check_network_driver(&self, state: &AppState, driver: &str) -> ApiResult<()> {
        if !self.network_drivers.contains(&driver) {
            return Err(invalid(format!(
                "Network driver type {driver} is not supported, expecting a {} network driver.",
                expecting(self.network_drivers)
            )));
        }
        let (allowed, _) = self.network_options(state);
        if !allowed.iter().any(|a| a == "all" || a == driver) {
            let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
            return Err(invalid(format!(
                "Network driver type {driver} is not allowed, expecting a {} network driver. ",
                expecting(&allowed)
            )));
        }
        Ok(())
    }

    fn check_volume_driver(&self, driver: &str) -> ApiResult<()> {
        if self.volume_drivers.contains(&driver) {
            return Ok(());
        }
        Err(invalid(format!(
            "Volume driver type {driver} is not supported, expecting a {} volume driver.",
            expecting(self.volume_drivers)
        )))
    }
}

fn check_storage_size(ct: &ClusterTemplate) -> ApiResult<()> {
    let driver = ct.docker_storage_driver.as_deref();
    if driver == Some("devicemapper") && ct.docker_volume_size.is_none_or(|s| s < 3) {
        let size = ct
            .docker_volume_size
            .map(|s| s.to_string())
            .unwrap_or_else(|| "None".into());
        return Err(invalid(format!(
            "docker volume size {size} GB is not valid, expecting minimum value 3GB for \
             devicemapper storage driver."
        )));
    }
    Ok(())
}

/// Check the OpenStack resources a template names, where a cloud is
/// configured; the image's `os_distro` and `magnum_driver` come back.
/// These are upstream's template validators (`attr_validator.validators`):
/// image, flavors, networks and subnet. The keypair is not among them:
/// upstream looks it up only when a cluster is created (a template may
/// name a keypair each user then makes), so neither do we.
async fn check_cloud_resources(
    state: &AppState,
    ctx: &Ctx,
    ct: &ClusterTemplate,
) -> ApiResult<Option<magnum_core::cloud::Image>> {
    let cloud = &state.cloud;
    let c = &ctx.context;
    for flavor in [&ct.flavor_id, &ct.master_flavor_id].into_iter().flatten() {
        cloud.flavor(c, flavor).await?;
    }
    if let Some(net) = &ct.external_network_id {
        cloud.network(c, net, true).await?;
    }
    if let Some(net) = &ct.fixed_network {
        cloud.network(c, net, false).await?;
    }
    if let Some(subnet) = &ct.fixed_subnet {
        cloud.subnet(c, subnet).await?;
    }
    match &ct.image_id {
        Some(image) => match cloud.image(c, image).await? {
            Lookup::Found(img) => {
                if img.os_distro.is_none() {
                    return Err(MagnumError::OsDistroFieldNotFound(image.clone()).into());
                }
                Ok(Some(img))
            }
            Lookup::Skipped => Ok(None),
        },
        None => Ok(None),
    }
}

fn warn_deprecated(ct: &ClusterTemplate) {
    if matches!(
        ct.docker_storage_driver.as_deref(),
        Some("devicemapper" | "overlay")
    ) {
        tracing::warn!("{DEVICEMAPPER_NOTE}");
    }
}

async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    base: BaseUrl,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.enforce(&state, "clustertemplate:create", &ctx.own_target())?;
    let mut given = fields::validate_object("cluster_template", FIELDS, &body)?;
    for (name, default) in CREATE_DEFAULTS {
        if !given.contains_key(name) {
            given.insert(name.into(), default);
        }
    }
    given
        .entry("server_type")
        .or_insert_with(|| Value::String("vm".into()));
    given.entry("labels").or_insert_with(|| json!({}));
    let mut ct = ClusterTemplate::from_map(given)
        .map_err(|e| ApiError::BadRequest(format!("Invalid cluster template: {e}")))?;
    let coe = ct.coe.clone().unwrap_or_default();
    let rules = CoeRules::of(&coe)?;
    rules.check_server_type(ct.server_type.as_deref().unwrap_or("vm"))?;
    if ct.network_driver.is_none() {
        ct.network_driver = rules.network_options(&state).1;
    }
    if let Some(driver) = &ct.network_driver {
        rules.check_network_driver(&state, driver)?;
    }
    if let Some(driver) = &ct.volume_driver {
        rules.check_volume_driver(driver)?;
    }
    check_storage_size(&ct)?;

    let image = check_cloud_resources(&state, &ctx, &ct).await?;
    if let Some(image) = &image {
        ct.cluster_distro = image.os_distro.clone();
        if ct.driver.is_none() {
            ct.driver = image.magnum_driver.clone();
        }
    }
    let driver = state.drivers.select(
        ct.server_type.as_deref().unwrap_or("vm"),
        ct.cluster_distro.as_deref(),
        &coe,
        ct.driver.as_deref(),
    )?;
    ct.driver = Some(driver.name().to_string());

    if (ct.is_public() || ct.is_hidden())
        && !ctx.allows(&state, "clustertemplate:publish", &ctx.own_target())
    {
        return Err(MagnumError::ClusterTemplatePublishDenied.into());
    }
    warn_deprecated(&ct);
    if ct.name.is_none() {
        ct.name = Some(format!("{}-template", names::generate()));
    }
    if ct.uuid.is_empty() {
        ct.uuid = uuid::Uuid::new_v4().to_string();
    }
    ct.project_id = ctx.context.project_id.clone();
    ct.user_id = ctx.context.user_id.clone();
    let stored = match state.db.cluster_template_create(&ct).await {
        Err(magnum_db::DbError::Duplicate) => {
            return Err(MagnumError::ClusterTemplateAlreadyExists(ct.uuid).into())
        }
        other => other?,
    };
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
    if ctx.context.is_admin {
        ctx.enforce(
            &state,
            "clustertemplate:update_all_projects",
            &ctx.own_target(),
        )?;
        ctx.context.all_tenants = true;
    }
    let current = find(&state.db, &ctx, &ident).await?;
    ctx.enforce(&state, "clustertemplate:update", &target(&current))?;

    // Patch the attributes the API shows, then validate the result as a
    // whole, as if it had been sent in full.
    let mut doc = current.to_map();
    doc.retain(|k, _| FIELDS.iter().any(|f| f.name == k && !f.readonly));
    let patched = patch::apply(doc, ops)?;
    let checked = fields::validate_object("cluster_template", FIELDS, &Value::Object(patched))?;
    let mut new = ClusterTemplate::from_map(checked)
        .map_err(|e| ApiError::BadRequest(format!("Invalid cluster template: {e}")))?;
    new.id = current.id;
    new.uuid = current.uuid.clone();
    new.project_id = current.project_id.clone();
    new.user_id = current.user_id.clone();
    new.created_at = current.created_at;
    new.updated_at = current.updated_at;

    let rules = CoeRules::of(new.coe.as_deref().unwrap_or_default())?;
    let network = new
        .network_driver
        .clone()
        .or_else(|| rules.network_options(&state).1);
    if let Some(driver) = &network {
        rules.check_network_driver(&state, driver)?;
    }
    if let Some(driver) = &new.volume_driver {
        rules.check_volume_driver(driver)?;
    }
    let image = check_cloud_resources(&state, &ctx, &new).await?;
    // The driver must build what the template now describes: the one it
    // names (kept, or patched in), else (`remove /driver`) the one create
    // would pick. A patched COE or server type no driver builds is
    // upstream's ClusterTypeNotSupported, as at create.
    let os = new
        .cluster_distro
        .clone()
        .or_else(|| image.as_ref().and_then(|i| i.os_distro.clone()));
    let named = new
        .driver
        .clone()
        .filter(|d| !d.is_empty())
        .or_else(|| image.as_ref().and_then(|i| i.magnum_driver.clone()));
    let driver = state.drivers.select(
        new.server_type.as_deref().unwrap_or("vm"),
        os.as_deref(),
        new.coe.as_deref().unwrap_or_default(),
        named.as_deref(),
    )?;
    // A template stored without a driver (older upstream rows) stays so
    // unless the patch names one; one whose driver the patch removed gets
    // the one chosen, as at create.
    if current.driver.is_some() && new.driver.is_none() {
        new.driver = Some(driver.name().to_string());
    }
    if (current.public != new.public || current.hidden != new.hidden)
        && !ctx.allows(&state, "clustertemplate:publish", &ctx.own_target())
    {
        return Err(MagnumError::ClusterTemplatePublishDenied.into());
    }
    warn_deprecated(&new);
    match state.db.cluster_template_update(&current, &new).await? {
        Ok(Some(stored)) => Ok(Json(view(&stored, &base))),
        Ok(None) => Err(MagnumError::ClusterTemplateNotFound(ident).into()),
        Err(TemplateInUse) => Err(MagnumError::ClusterTemplateReferenced(ident).into()),
    }
}

async fn remove(
    State(state): State<AppState>,
    mut ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<StatusCode> {
    if ctx.context.is_admin {
        ctx.enforce(
            &state,
            "clustertemplate:delete_all_projects",
            &ctx.own_target(),
        )?;
        ctx.context.all_tenants = true;
    }
    let ct = find(&state.db, &ctx, &ident).await?;
    ctx.enforce(&state, "clustertemplate:delete", &target(&ct))?;
    match state.db.cluster_template_destroy(&ct).await? {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(MagnumError::ClusterTemplateNotFound(ident).into()),
        Err(TemplateInUse) => Err(MagnumError::ClusterTemplateReferenced(ident).into()),
    }
}
