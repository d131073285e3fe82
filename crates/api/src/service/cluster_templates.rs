//! Cluster templates: create and update with upstream's rules (the COE's
//! drivers, the devicemapper volume size, the cloud resources a template
//! names, a driver that builds it, publishing only under
//! `clustertemplate:publish`).

use magnum_core::cloud::{Image, Lookup};
use magnum_core::objects::ClusterTemplate;
use magnum_core::template_rules::{self, CoeRules};
use magnum_core::{names, MagnumError};
use magnum_db::{DbError, TemplateInUse};
use serde_json::{Map, Value};

use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

const DEVICEMAPPER_NOTE: &str = "The devicemapper and overlay storage drivers are deprecated in \
    favor of overlay2 in docker, and will be removed in a future release from docker. Users of \
    the devicemapper and overlay storage drivers are recommended to migrate to a different \
    storage driver, such as overlay2.";

/// A template from its attributes as the API validated them (the caller's
/// own fields checked already): 400 when they do not make one.
pub fn from_attributes(checked: Map<String, Value>) -> ApiResult<ClusterTemplate> {
    ClusterTemplate::from_map(checked)
        .map_err(|e| ApiError::BadRequest(format!("Invalid cluster template: {e}")))
}

/// Create the template `given` (validated attributes) describes, owned by
/// the caller; the stored template comes back.
pub async fn create(
    state: &AppState,
    ctx: &Ctx,
    mut given: Map<String, Value>,
) -> ApiResult<ClusterTemplate> {
    template_rules::with_create_defaults(&mut given);
    let mut ct = from_attributes(given)?;
    let coe = ct.coe.clone().unwrap_or_default();
    let rules = CoeRules::of(&coe)?;
    rules.check_server_type(ct.server_type.as_deref().unwrap_or("vm"))?;
    let (allowed, default_network) = rules.network_options(&state.conf);
    if ct.network_driver.is_none() {
        ct.network_driver = default_network;
    }
    if let Some(driver) = &ct.network_driver {
        rules.check_network_driver(&allowed, driver)?;
    }
    if let Some(driver) = &ct.volume_driver {
        rules.check_volume_driver(driver)?;
    }
    template_rules::check_storage_size(&ct)?;

    if let Some(image) = check_cloud_resources(state, ctx, &ct).await? {
        ct.cluster_distro = image.os_distro;
        if ct.driver.is_none() {
            ct.driver = image.magnum_driver;
        }
    }
    let driver = state.drivers.select(
        ct.server_type.as_deref().unwrap_or("vm"),
        ct.cluster_distro.as_deref(),
        &coe,
        ct.driver.as_deref(),
    )?;
    ct.driver = Some(driver.name().to_string());
    if ct.is_public() || ct.is_hidden() {
        may_publish(state, ctx)?;
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
    match state.db.cluster_template_create(&ct).await {
        Err(DbError::Duplicate) => Err(MagnumError::ClusterTemplateAlreadyExists(ct.uuid).into()),
        other => Ok(other?),
    }
}

/// Replace `current` (found as `ident`) by `new` (the patched template,
/// validated as a whole), unless a cluster uses it; the stored template
/// comes back.
pub async fn update(
    state: &AppState,
    ctx: &Ctx,
    ident: &str,
    current: &ClusterTemplate,
    mut new: ClusterTemplate,
) -> ApiResult<ClusterTemplate> {
    new.id = current.id;
    new.uuid = current.uuid.clone();
    new.project_id = current.project_id.clone();
    new.user_id = current.user_id.clone();
    new.created_at = current.created_at;
    new.updated_at = current.updated_at;

    let rules = CoeRules::of(new.coe.as_deref().unwrap_or_default())?;
    let (allowed, default_network) = rules.network_options(&state.conf);
    if let Some(driver) = new.network_driver.as_ref().or(default_network.as_ref()) {
        rules.check_network_driver(&allowed, driver)?;
    }
    if let Some(driver) = &new.volume_driver {
        rules.check_volume_driver(driver)?;
    }
    let image = check_cloud_resources(state, ctx, &new).await?;
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
    if current.public != new.public || current.hidden != new.hidden {
        may_publish(state, ctx)?;
    }
    warn_deprecated(&new);
    match state.db.cluster_template_update(current, &new).await? {
        Ok(Some(stored)) => Ok(stored),
        Ok(None) => Err(MagnumError::ClusterTemplateNotFound(ident.to_string()).into()),
        Err(TemplateInUse) => Err(MagnumError::ClusterTemplateReferenced(ident.to_string()).into()),
    }
}

/// Making a template public or hidden needs `clustertemplate:publish`.
fn may_publish(state: &AppState, ctx: &Ctx) -> ApiResult<()> {
    if ctx.allows(state, "clustertemplate:publish", &ctx.own_target()) {
        Ok(())
    } else {
        Err(MagnumError::ClusterTemplatePublishDenied.into())
    }
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
) -> ApiResult<Option<Image>> {
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
    if template_rules::deprecated_storage_driver(ct) {
        tracing::warn!("{DEVICEMAPPER_NOTE}");
    }
}
