//! Quotas: create, for a project Keystone knows (any project without
//! Keystone).

use magnum_core::MagnumError;
use magnum_db::{DbError, Quota};
use serde_json::{Map, Value};

use crate::context::Ctx;
use crate::error::ApiResult;
use crate::AppState;

/// Create the quota `given` (validated attributes) sets; the stored quota
/// comes back.
pub async fn create(state: &AppState, ctx: &Ctx, given: &Map<String, Value>) -> ApiResult<Quota> {
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
        if !crate::auth::project_exists(ks, token, &project_id).await? {
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
        Ok(stored) => Ok(stored),
        Err(DbError::Duplicate) => Err(MagnumError::Conflict(format!(
            "Quota for project {project_id} already exists for resource {resource}."
        ))
        .into()),
        Err(e) => Err(e.into()),
    }
}
