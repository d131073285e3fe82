//! A federation's PATCH, as upstream takes it: `add`/`remove` of one
//! cluster on `/member_ids` (rewritten against the current members into a
//! `replace` of the whole list), list and map values as JSON or as Python
//! literals, and the `rollback` query parameter.

use magnum_core::MagnumError;
use magnum_db::Federation;
use serde_json::{json, Map, Value};

use super::shown_name;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, canonical_uuid};
use crate::patch::{self, Op};
use crate::{clusters, pyliteral, AppState};

/// The `rollback` query parameter upstream's PATCH takes (nothing to roll
/// back here, but a bad value is refused as upstream does).
pub(crate) fn check_rollback(query: Option<&str>) -> ApiResult<()> {
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
pub(crate) fn parse_patch(body: &Value) -> ApiResult<Vec<Op>> {
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
            pyliteral::parse(s).map_err(|e| patch_error(op, &e.to_string()))?
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
pub(crate) async fn rewrite(
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
                    Err(e) => return Err(patch_error(&op, &e.to_string())),
                }
            }
        }
        _ => {}
    }
    Ok(op)
}

pub(crate) fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
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
}
