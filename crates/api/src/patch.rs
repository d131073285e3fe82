//! RFC 6902 JSON-patch updates with upstream's rules: only `add`,
//! `replace` and `remove`; paths of the form `/attr[/key…]`; internal
//! attributes (`/uuid`, `/id`, `/created_at`, …) never change; mandatory
//! attributes cannot be removed; `add` may not invent a top-level attribute
//! nor overwrite one that is set; map-valued attributes may be replaced by a
//! Python literal string, as python-magnumclient sends them.

use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::pyliteral;
use magnum_core::MagnumError;

/// Attributes no patch may touch.
pub const INTERNAL: [&str; 7] = [
    "/created_at",
    "/id",
    "/links",
    "/updated_at",
    "/uuid",
    "/project_id",
    "/user_id",
];

/// Attributes whose `replace` value may be a Python literal string.
const LITERAL_PATHS: [&str; 4] = [
    "/labels",
    "/health_status_reason",
    "/node_labels",
    "/node_taints",
];

/// One validated operation.
#[derive(Debug, Clone)]
pub struct Op {
    pub op: String,
    pub path: String,
    pub value: Option<Value>,
}

impl Op {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("op".into(), json!(self.op));
        m.insert("path".into(), json!(self.path));
        if let Some(v) = &self.value {
            m.insert("value".into(), v.clone());
        }
        Value::Object(m)
    }
}

fn valid_path(path: &str) -> bool {
    path.starts_with('/')
        && path[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        })
}

/// Validate a patch document against a resource's non-removable attributes.
pub fn parse(body: &Value, non_removable: &[&str]) -> Result<Vec<Op>, ApiError> {
    parse_with(body, non_removable, &[])
}

/// [`parse`] for a resource with more internal attributes than the common
/// ones.
pub fn parse_with(
    body: &Value,
    non_removable: &[&str],
    internal: &[&str],
) -> Result<Vec<Op>, ApiError> {
    let items = body.as_array().ok_or_else(|| {
        ApiError::invalid_input("patch", body, "A JSON patch must be a list of operations")
    })?;
    // An empty patch changes nothing; upstream applies it as such.
    let mut ops = Vec::with_capacity(items.len());
    for item in items {
        let obj = item.as_object().ok_or_else(|| {
            ApiError::invalid_input("patch", item, "Each operation must be an object")
        })?;
        let mut unknown: Vec<&str> = obj
            .keys()
            .map(String::as_str)
            .filter(|k| !["op", "path", "value"].contains(k))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(ApiError::BadRequest(format!(
                "Unknown attribute for argument patch: {}",
                unknown.join(", ")
            )));
        }
        let path = match obj.get("path") {
            Some(Value::String(p)) if valid_path(p) => p.clone(),
            Some(v) => {
                return Err(ApiError::invalid_input(
                    "path",
                    v,
                    "Value should match the pattern ^(/[\\w-]+)+$",
                ))
            }
            None => {
                return Err(ApiError::invalid_input(
                    "path",
                    &Value::Null,
                    "Mandatory field missing.",
                ))
            }
        };
        let op = match obj.get("op") {
            Some(Value::String(o)) if ["add", "replace", "remove"].contains(&o.as_str()) => {
                o.clone()
            }
            Some(v) => {
                return Err(ApiError::invalid_input(
                    "op",
                    v,
                    "Value should be one of: add, replace, remove",
                ))
            }
            None => {
                return Err(ApiError::invalid_input(
                    "op",
                    &Value::Null,
                    "Mandatory field missing.",
                ))
            }
        };
        let value = match obj.get("value") {
            None | Some(Value::Null) => None,
            Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => Some(v.clone()),
            Some(v @ (Value::Object(_) | Value::Array(_)))
                if LITERAL_PATHS.contains(&path.as_str()) =>
            {
                Some(v.clone())
            }
            Some(v) => {
                return Err(ApiError::invalid_input(
                    "value",
                    v,
                    "Wrong type. Expected a string or an integer",
                ))
            }
        };
        if INTERNAL.contains(&path.as_str()) || internal.contains(&path.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "'{path}' is an internal attribute and can not be updated"
            )));
        }
        if op == "remove" && non_removable.contains(&path.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "'{path}' is a mandatory attribute and can not be removed"
            )));
        }
        if op != "remove" && value.is_none() {
            return Err(ApiError::BadRequest(
                "'add' and 'replace' operations needs value".into(),
            ));
        }
        ops.push(Op { op, path, value });
    }
    Ok(ops)
}

fn patch_error(ops: &[Op], reason: impl std::fmt::Display) -> ApiError {
    let shown = Value::Array(ops.iter().map(Op::to_json).collect());
    MagnumError::PatchError {
        patch: shown.to_string(),
        reason: reason.to_string(),
    }
    .into()
}

/// Apply validated operations to a resource's attributes.
pub fn apply(doc: Map<String, Value>, mut ops: Vec<Op>) -> Result<Map<String, Value>, ApiError> {
    for op in &mut ops {
        let top_level = op.path.matches('/').count() == 1;
        if op.op == "add" && top_level {
            let attr = &op.path[1..];
            match doc.get(attr) {
                None => {
                    return Err(ApiError::BadRequest(format!(
                        "Adding a new attribute {} to the root of the resource is not allowed.",
                        op.path
                    )))
                }
                Some(Value::Null) => {}
                Some(_) => {
                    return Err(ApiError::BadRequest(format!(
                        "The attribute {} has existed, please use 'replace' operation instead.",
                        op.path
                    )))
                }
            }
        }
        if op.op == "replace" && LITERAL_PATHS.contains(&op.path.as_str()) {
            if let Some(Value::String(text)) = &op.value {
                match pyliteral::parse(text) {
                    Ok(v) => op.value = Some(v),
                    Err(reason) => return Err(patch_error(std::slice::from_ref(op), reason)),
                }
            }
        }
    }
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(ops.iter().map(Op::to_json).collect()))
            .map_err(|e| patch_error(&ops, e))?;
    let mut value = Value::Object(doc);
    json_patch::patch(&mut value, &patch).map_err(|e| patch_error(&ops, e))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(patch_error(&ops, "the patch replaced the whole resource")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Map<String, Value> {
        json!({"name": "a", "labels": {"k": "v"}, "flavor_id": null, "coe": "kubernetes"})
            .as_object()
            .unwrap()
            .clone()
    }

    fn run(p: Value) -> Result<Map<String, Value>, ApiError> {
        apply(doc(), parse(&p, &["/coe"])?)
    }

    #[test]
    fn applies_upstream_rules() {
        let out = run(json!([{"op": "replace", "path": "/name", "value": "b"}])).unwrap();
        assert_eq!(out["name"], "b");
        let out = run(json!([{"op": "add", "path": "/flavor_id", "value": "m1"}])).unwrap();
        assert_eq!(out["flavor_id"], "m1");
        let out =
            run(json!([{"op": "replace", "path": "/labels", "value": "{'x': 'y'}"}])).unwrap();
        assert_eq!(out["labels"], json!({"x": "y"}));
        let out = run(json!([{"op": "add", "path": "/labels/n", "value": "1"}])).unwrap();
        assert_eq!(out["labels"], json!({"k": "v", "n": "1"}));
        let out = run(json!([{"op": "remove", "path": "/name"}])).unwrap();
        assert!(!out.contains_key("name"));
        assert_eq!(run(json!([])).unwrap(), doc());
    }

    #[test]
    fn refuses_what_upstream_refuses() {
        let e = |p: Value| run(p).unwrap_err().to_string();
        assert!(e(json!([{"op": "replace", "path": "/uuid", "value": "x"}]))
            .contains("internal attribute"));
        assert!(e(json!([{"op": "remove", "path": "/coe"}])).contains("mandatory attribute"));
        assert!(e(json!([{"op": "replace", "path": "/name"}])).contains("needs value"));
        assert!(e(json!([{"op": "move", "path": "/name", "value": "x"}])).contains("one of"));
        assert!(e(json!([{"op": "add", "path": "name", "value": "x"}])).contains("pattern"));
        assert!(e(json!([{"op": "add", "path": "/bogus", "value": "x"}])).contains("not allowed"));
        assert!(e(json!([{"op": "add", "path": "/name", "value": "x"}])).contains("has existed"));
        assert!(
            e(json!([{"op": "replace", "path": "/labels", "value": "{bad"}]))
                .contains("Couldn't apply patch")
        );
        assert!(e(json!([{"op": "replace", "path": "/nope", "value": "x"}]))
            .contains("Couldn't apply patch"));
        assert!(e(json!([{"op": "remove", "path": "/labels/zz"}])).contains("Couldn't apply patch"));
        assert!(e(json!({"op": "add"})).contains("list of operations"));
        assert!(
            e(json!([{"op": "add", "path": "/name", "value": "x", "from": "/a"}]))
                .contains("Unknown attribute")
        );
    }
}
