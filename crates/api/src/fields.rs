//! Typed request attributes, validated the way upstream's WSME types do:
//! unknown attributes and read-only attributes are refused, each value must
//! fit its type (string lengths, enums, integer bounds, booleans in oslo's
//! spellings, UUIDs, DNS lists, label maps), and mandatory attributes must
//! be present. Errors name the attribute and the offending value.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// The type of one attribute.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Uuid,
    Str {
        min: usize,
        max: usize,
    },
    Enum(&'static [&'static str]),
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    Bool,
    /// A map of string keys to string, integer, boolean or float values.
    Labels,
    /// A comma-separated list of IPv4 addresses.
    DnsList,
    /// Free text, only ever set by the server.
    Text,
    /// wsme's `wtypes.text`: any string of at most `max` characters (the
    /// column's size); other JSON types are the wrong type.
    Unicode {
        max: usize,
    },
    /// A name matching `^[a-zA-Z][a-zA-Z0-9_.-]*$`, of `min`..=`max` characters.
    Name {
        min: usize,
        max: usize,
    },
    /// A list of strings.
    StrList,
    /// A map of string keys to string values.
    StrMap,
    /// A list of objects of string values (node taints).
    ObjList,
}

/// One attribute of a resource.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub mandatory: bool,
    pub readonly: bool,
}

impl Field {
    pub const fn new(name: &'static str, kind: Kind) -> Field {
        Field {
            name,
            kind,
            mandatory: false,
            readonly: false,
        }
    }
    pub const fn mandatory(self) -> Field {
        Field {
            mandatory: true,
            ..self
        }
    }
    pub const fn readonly(self) -> Field {
        Field {
            readonly: true,
            ..self
        }
    }
}

/// The most a TEXT column holds on every backend (MariaDB's limit).
pub const MAX_TEXT: usize = 65535;

/// The largest integer an INTEGER column holds on every backend.
pub const MAX_INT: i64 = i32::MAX as i64;

/// `s` as a canonical (lowercase, hyphenated) UUID, if it is one in any
/// of the spellings upstream's `is_uuid_like` accepts.
pub fn canonical_uuid(s: &str) -> Option<String> {
    uuid::Uuid::parse_str(s.trim())
        .ok()
        .map(|u| u.hyphenated().to_string())
}

/// oslo's strict `bool_from_string`.
pub fn parse_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
            "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

fn wrong_type(expected: &str, value: &Value) -> String {
    format!(
        "Wrong type. Expected '<class '{expected}'>', got '<class '{}'>'",
        type_name(value)
    )
}

/// Validate one value against its kind; the normalised value comes back.
pub fn check(field: &Field, value: &Value) -> Result<Value, ApiError> {
    let bad = |reason: String| ApiError::invalid_input(field.name, value, reason);
    match field.kind {
        Kind::Uuid => match value.as_str().and_then(canonical_uuid) {
            Some(u) => Ok(Value::String(u)),
            None => Err(bad(format!(
                "Expected a uuid but received {}.",
                value
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| value.to_string())
            ))),
        },
        Kind::Str { min, max } => {
            // wsme's StringType takes strings alone: a number is not
            // turned into one.
            let Value::String(s) = value else {
                return Err(bad("Value should be string".to_string()));
            };
            let len = s.chars().count();
            if len < min {
                return Err(bad(format!(
                    "Value should have a minimum character requirement of {min}"
                )));
            }
            if len > max {
                return Err(bad(format!(
                    "Value should have a maximum character requirement of {max}"
                )));
            }
            Ok(value.clone())
        }
        Kind::Unicode { max } => {
            let Value::String(s) = value else {
                return Err(bad(wrong_type("str", value)));
            };
            if s.chars().count() > max {
                return Err(bad(format!(
                    "Value should have a maximum character requirement of {max}"
                )));
            }
            Ok(value.clone())
        }
        Kind::Enum(values) => match value.as_str() {
            Some(s) if values.contains(&s) => Ok(value.clone()),
            _ => Err(bad(format!(
                "Value should be one of: {}",
                values.join(", ")
            ))),
        },
        Kind::Int { min, max } => {
            // wsme converts with Python's int(): numeric strings, floats
            // (truncated) and booleans (0, 1) are integers too.
            let n = match value {
                Value::Number(n) => n.as_i64().or_else(|| {
                    n.as_f64()
                        .filter(|f| f.is_finite())
                        .map(|f| f.trunc() as i64)
                }),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                Value::Bool(b) => Some(i64::from(*b)),
                _ => None,
            }
            .ok_or_else(|| bad(wrong_type("int", value)))?;
            let max = Some(max.unwrap_or(MAX_INT).min(MAX_INT));
            if let Some(min) = min {
                if n < min {
                    return Err(bad(format!("Value should be greater or equal to {min}")));
                }
            }
            if let Some(max) = max {
                if n > max {
                    return Err(bad(format!("Value should be lower or equal to {max}")));
                }
            }
            Ok(Value::from(n))
        }
        Kind::Bool => parse_bool(value).map(Value::Bool).ok_or_else(|| {
            bad(format!(
                "Unrecognized value '{}', acceptable values are: '0', '1', 'f', 'false', 'n', \
                 'no', 'off', 'on', 't', 'true', 'y', 'yes'",
                value
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| value.to_string())
            ))
        }),
        Kind::Labels => {
            let map = value
                .as_object()
                .ok_or_else(|| bad(wrong_type("dict", value)))?;
            for v in map.values() {
                if !matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                    return Err(bad(format!(
                        "Wrong type. Expected '(<class 'str'>, <class 'int'>, <class 'bool'>, \
                         <class 'float'>)', got '<class '{}'>'",
                        type_name(v)
                    )));
                }
            }
            let labels = Value::Object(magnum_core::objects::normalize_labels(map));
            // Stored as JSON in a TEXT column, which holds 65535 bytes on MariaDB.
            if labels.to_string().len() > MAX_TEXT {
                return Err(bad(format!(
                    "Labels may take at most {MAX_TEXT} bytes as JSON"
                )));
            }
            Ok(labels)
        }
        Kind::DnsList => {
            let s = value
                .as_str()
                .ok_or_else(|| bad(wrong_type("str", value)))?;
            let ok = s
                .split(',')
                .all(|a| a.trim().parse::<std::net::Ipv4Addr>().is_ok());
            if ok {
                Ok(value.clone())
            } else {
                Err(magnum_core::MagnumError::InvalidDns(s.to_string()).into())
            }
        }
        Kind::Text => Ok(value.clone()),
        Kind::Name { min, max } => {
            let v = check(&Field::new(field.name, Kind::Str { min, max }), value)?;
            let s = v.as_str().unwrap_or_default();
            let mut chars = s.chars();
            let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                return Err(bad(
                    "Value should match the pattern ^[a-zA-Z][a-zA-Z0-9_.-]*$".to_string(),
                ));
            }
            Ok(v)
        }
        Kind::StrList => {
            let items = value
                .as_array()
                .ok_or_else(|| bad(wrong_type("list", value)))?;
            for v in items {
                if !v.is_string() {
                    return Err(bad(wrong_type("str", v)));
                }
            }
            Ok(value.clone())
        }
        Kind::StrMap => {
            let map = value
                .as_object()
                .ok_or_else(|| bad(wrong_type("dict", value)))?;
            for v in map.values() {
                if !v.is_string() {
                    return Err(bad(wrong_type("str", v)));
                }
            }
            Ok(value.clone())
        }
        Kind::ObjList => {
            let items = value
                .as_array()
                .ok_or_else(|| bad(wrong_type("list", value)))?;
            for v in items {
                let m = v.as_object().ok_or_else(|| bad(wrong_type("dict", v)))?;
                if let Some(x) = m.values().find(|x| !x.is_string()) {
                    return Err(bad(wrong_type("str", x)));
                }
            }
            Ok(value.clone())
        }
    }
}

/// Validate a request object: every attribute known and writable, every
/// value of its type, every mandatory attribute present. `null` counts as
/// absent. Returns the normalised attributes that were given.
pub fn validate_object(
    argument: &str,
    fields: &[Field],
    body: &Value,
) -> Result<Map<String, Value>, ApiError> {
    let obj = body.as_object().ok_or_else(|| {
        ApiError::BadRequest(format!(
            "Invalid input for field/attribute {argument}. Value: '{body}'. \
             Expected an object"
        ))
    })?;
    let mut unknown: Vec<&str> = obj
        .keys()
        .filter(|k| !fields.iter().any(|f| f.name == k.as_str()))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(ApiError::BadRequest(format!(
            "Unknown attribute for argument {argument}: {}",
            unknown.join(", ")
        )));
    }
    let mut out = Map::new();
    for field in fields {
        match obj.get(field.name) {
            None | Some(Value::Null) => {
                if field.mandatory {
                    return Err(ApiError::invalid_input(
                        field.name,
                        &Value::Null,
                        "Mandatory field missing.",
                    ));
                }
            }
            Some(value) => {
                if field.readonly {
                    return Err(ApiError::invalid_input(
                        field.name,
                        value,
                        "Cannot set read only field.",
                    ));
                }
                out.insert(field.name.to_string(), check(field, value)?);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIELDS: &[Field] = &[
        Field::new("name", Kind::Str { min: 1, max: 5 }),
        Field::new("coe", Kind::Enum(&["kubernetes", "swarm"])).mandatory(),
        Field::new(
            "size",
            Kind::Int {
                min: Some(1),
                max: Some(10),
            },
        ),
        Field::new("public", Kind::Bool),
        Field::new("labels", Kind::Labels),
        Field::new("dns", Kind::DnsList),
        Field::new("uuid", Kind::Uuid),
        Field::new("project_id", Kind::Text).readonly(),
        Field::new("reason", Kind::Unicode { max: 10 }),
    ];

    fn err(body: Value) -> String {
        validate_object("thing", FIELDS, &body)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn accepts_and_normalises() {
        let out = validate_object(
            "thing",
            FIELDS,
            &json!({"coe": "swarm", "size": "3", "public": "yes", "labels": {"a": 1},
                    "dns": "8.8.8.8,1.1.1.1", "uuid": "ABCDEF00-0000-0000-0000-000000000001",
                    "name": null}),
        )
        .unwrap();
        assert_eq!(out["size"], json!(3));
        assert_eq!(out["public"], json!(true));
        assert_eq!(out["labels"], json!({"a": "1"}));
        assert_eq!(out["uuid"], json!("abcdef00-0000-0000-0000-000000000001"));
        assert!(!out.contains_key("name"));
        // Python's int(): floats are truncated, booleans are 0 and 1.
        let out = validate_object(
            "thing",
            FIELDS,
            &json!({"coe": "swarm", "size": 3.7, "public": 1}),
        )
        .unwrap();
        assert_eq!(out["size"], json!(3));
        assert_eq!(out["public"], json!(true));
        let out = validate_object("thing", FIELDS, &json!({"coe": "swarm", "size": true})).unwrap();
        assert_eq!(out["size"], json!(1));
    }

    #[test]
    fn strings_are_strings() {
        assert_eq!(
            err(json!({"coe": "swarm", "name": 5})),
            "Invalid input for field/attribute name. Value: '5'. Value should be string"
        );
        assert_eq!(
            err(json!({"coe": "swarm", "name": true})),
            "Invalid input for field/attribute name. Value: 'True'. Value should be string"
        );
        assert_eq!(
            err(json!({"coe": "swarm", "name": ["a"]})),
            "Invalid input for field/attribute name. Value: '['a']'. Value should be string"
        );
        assert_eq!(
            err(json!({"coe": "swarm", "reason": 5.5})),
            "Invalid input for field/attribute reason. Value: '5.5'. \
             Wrong type. Expected '<class 'str'>', got '<class 'float'>'"
        );
        assert!(err(json!({"coe": "swarm", "reason": "x".repeat(11)})).contains("maximum"));
        assert!(err(json!({"coe": 5})).contains("Value should be one of"));
        assert_eq!(
            err(json!({"coe": "swarm", "labels": {"a": [1]}})),
            "Invalid input for field/attribute labels. Value: '{'a': [1]}'. Wrong type. \
             Expected '(<class 'str'>, <class 'int'>, <class 'bool'>, <class 'float'>)', \
             got '<class 'list'>'"
        );
    }

    #[test]
    fn refuses_bad_input() {
        assert!(err(json!({})).contains("coe. Value: 'None'. Mandatory field missing."));
        assert!(err(json!({"coe": "x"})).contains("Value should be one of: kubernetes, swarm"));
        assert_eq!(
            err(json!({"coe": "swarm", "zz": 1, "aa": 2})),
            "Unknown attribute for argument thing: aa, zz"
        );
        assert!(err(json!({"coe": "swarm", "size": 0})).contains("greater or equal to 1"));
        assert!(err(json!({"coe": "swarm", "size": 11})).contains("lower or equal to 10"));
        assert!(err(json!({"coe": "swarm", "size": "x"})).contains("Wrong type"));
        assert!(err(json!({"coe": "swarm", "name": ""})).contains("minimum character"));
        assert!(err(json!({"coe": "swarm", "name": "toolong"})).contains("maximum character"));
        assert!(err(json!({"coe": "swarm", "public": "maybe"})).contains("Unrecognized value"));
        assert!(err(json!({"coe": "swarm", "labels": "a=b"})).contains("Wrong type"));
        assert!(err(json!({"coe": "swarm", "labels": {"a": [1]}})).contains("Wrong type"));
        assert!(err(json!({"coe": "swarm", "dns": "8.8.8"})).contains("dns"));
        assert!(err(json!({"coe": "swarm", "uuid": "nope"})).contains("Expected a uuid"));
        assert!(err(json!({"coe": "swarm", "project_id": "p"})).contains("read only"));
        assert!(err(json!([1])).contains("Expected an object"));
    }
}
