//! Federations, stored by the API itself (upstream's conductor never
//! implemented them): create (`CREATE_COMPLETE` at once) and update of the
//! members and properties (`UPDATE_COMPLETE`), with upstream's rules.

use magnum_core::objects::status::{CREATE_COMPLETE, UPDATE_COMPLETE};
use magnum_core::{names, MagnumError};
use magnum_db::Federation;
use serde_json::{Map, Value};

use crate::context::Ctx;
use crate::error::ApiResult;
use crate::federations::patching::{rewrite, strings};
use crate::federations::{find, target, FIELDS};
use crate::patch::{self, Op};
use crate::{clusters, fields, AppState};

/// What a PATCH may change (upstream's `federation_update_allowed_properties`).
const UPDATABLE_PROPERTIES: [&str; 2] = ["member_ids", "properties"];

/// How often an update is recomputed when another one won the race.
const UPDATE_ATTEMPTS: usize = 5;

/// Create the federation `given` (validated attributes) asks for, owned
/// by the caller's project; its uuid comes back.
pub async fn create(state: &AppState, ctx: &Ctx, given: &Map<String, Value>) -> ApiResult<String> {
    // Upstream's validate_federation_hostcluster: present, and a cluster.
    let Some(host) = given.get("hostcluster_id").and_then(Value::as_str) else {
        return Err(MagnumError::Invalid(
            "No hostcluster specified. Please specify a hostcluster_id.".into(),
        )
        .into());
    };
    let host = clusters::find(&state.db, ctx, host).await?;
    let properties = check_properties(given.get("properties").and_then(Value::as_object))?;
    let members = resolve_members(state, ctx, &strings(given.get("member_ids")), &[]).await?;
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
    Ok(federation.uuid)
}

/// Apply `ops` to the federation `ident` names; its uuid comes back. The
/// federation is read again (and `federation:update` checked against it)
/// whenever another update won the race, up to [`UPDATE_ATTEMPTS`] times.
pub async fn update(state: &AppState, ctx: &Ctx, ident: &str, ops: &[Op]) -> ApiResult<String> {
    for _ in 0..UPDATE_ATTEMPTS {
        let f = find(&state.db, ctx, ident).await?;
        ctx.enforce(state, "federation:update", &target(&f))?;
        let Some(updated) = patched(state, ctx, &f, ops).await? else {
            return Ok(f.uuid);
        };
        if state.db.federation_update(&updated, &f).await? {
            return Ok(f.uuid);
        }
        // Another update won the race: recompute from what it stored.
    }
    Err(MagnumError::Conflict(format!(
        "Federation {ident} is being updated by another request; please retry."
    ))
    .into())
}

/// `f` with `ops` applied and checked, or nothing when they change nothing.
async fn patched(
    state: &AppState,
    ctx: &Ctx,
    f: &Federation,
    ops: &[Op],
) -> ApiResult<Option<Federation>> {
    let before = patchable(f);
    let mut doc = before.clone();
    for op in ops {
        let op = rewrite(state, ctx, f, &doc, op.clone()).await?;
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
    let members = resolve_members(state, ctx, &strings(checked.get("member_ids")), &known).await?;
    let properties = check_properties(checked.get("properties").and_then(Value::as_object))?;
    if Some(&members) == f.member_ids.as_ref() && Some(&properties) == f.properties.as_ref() {
        return Ok(None);
    }
    Ok(Some(Federation {
        member_ids: Some(members),
        properties: Some(properties),
        status: Some(UPDATE_COMPLETE.into()),
        status_reason: Some("UPDATE completed successfully".into()),
        ..f.clone()
    }))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
