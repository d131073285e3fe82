//! Objects in oslo.versionedobjects' primitive form, as upstream Magnum
//! sends them over RPC:
//! `{"magnum_object.name": "Cluster", "magnum_object.namespace": "magnum",
//!   "magnum_object.version": "1.24", "magnum_object.data": {…},
//!   "magnum_object.changes": […]}`, with datetimes as `YYYY-MM-DDTHH:MM:SSZ`.
//! Names, versions and which fields may not be null are upstream's.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::objects::{Certificate, Cluster, ClusterTemplate, NodeGroup};

/// The namespace of every Magnum object.
pub const NAMESPACE: &str = "magnum";

/// What the wire needs to know of one object type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kind {
    pub name: &'static str,
    pub version: &'static str,
    /// Fields upstream declares non-nullable: left out rather than sent as null.
    pub non_null: &'static [&'static str],
    pub datetimes: &'static [&'static str],
}

const TIMESTAMPS: &[&str] = &["created_at", "updated_at"];

pub const CLUSTER: Kind = Kind {
    name: "Cluster",
    version: "1.24",
    non_null: &[
        "cluster_template",
        "floating_ip_enabled",
        "id",
        "master_lb_enabled",
    ],
    datetimes: TIMESTAMPS,
};
pub const CLUSTER_TEMPLATE: Kind = Kind {
    name: "ClusterTemplate",
    version: "1.21",
    non_null: &[
        "floating_ip_enabled",
        "hidden",
        "id",
        "master_lb_enabled",
        "public",
        "registry_enabled",
        "tls_disabled",
    ],
    datetimes: TIMESTAMPS,
};
pub const NODEGROUP: Kind = Kind {
    name: "NodeGroup",
    version: "1.2",
    non_null: &[
        "cluster_id",
        "id",
        "is_default",
        "min_node_count",
        "name",
        "node_count",
        "project_id",
        "role",
        "uuid",
    ],
    datetimes: TIMESTAMPS,
};

pub const CERTIFICATE: Kind = Kind {
    name: "Certificate",
    version: "1.2",
    non_null: &[],
    datetimes: &[],
};

/// A domain type with a versioned-object form.
pub trait Versioned: Serialize + DeserializeOwned {
    const KIND: Kind;
}

impl Versioned for Cluster {
    const KIND: Kind = CLUSTER;
}
impl Versioned for ClusterTemplate {
    const KIND: Kind = CLUSTER_TEMPLATE;
}
impl Versioned for NodeGroup {
    const KIND: Kind = NODEGROUP;
}
impl Versioned for Certificate {
    const KIND: Kind = CERTIFICATE;
}

/// A primitive that is not the object expected.
#[derive(Debug, thiserror::Error)]
pub enum OvoError {
    #[error("not a versioned object primitive: {0}")]
    NotAnObject(String),
    #[error("expected a {expected} object, got {got}")]
    WrongType { expected: &'static str, got: String },
    #[error("{name} version {got} is not compatible with {ours}")]
    Version {
        name: &'static str,
        got: String,
        ours: &'static str,
    },
    #[error("invalid {name} data: {source}")]
    Data {
        name: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

fn to_wire_time(v: &Value) -> Value {
    // Stored form `YYYY-MM-DDTHH:MM:SS[.f]` (UTC) to oslo's `…Z`.
    match v.as_str() {
        Some(s) => Value::String(format!("{}Z", s.split('.').next().unwrap_or(s))),
        None => Value::Null,
    }
}

fn from_wire_time(v: &Value) -> Value {
    match v.as_str() {
        Some(s) => {
            let s = s.trim_end_matches('Z');
            let s = s.split('+').next().unwrap_or(s);
            Value::String(s.split('.').next().unwrap_or(s).to_string())
        }
        None => Value::Null,
    }
}

/// The primitive form of a new object: every field set, and every field
/// listed as changed (upstream's API sends new clusters so).
pub fn encode<T: Versioned>(obj: &T) -> Value {
    let kind = T::KIND;
    let fields = match serde_json::to_value(obj) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut data = Map::new();
    for (k, v) in fields {
        if v.is_null() && kind.non_null.contains(&k.as_str()) {
            continue;
        }
        let v = if kind.datetimes.contains(&k.as_str()) {
            to_wire_time(&v)
        } else {
            v
        };
        data.insert(k, v);
    }
    let changes: Vec<&String> = data.keys().collect();
    json!({
        "magnum_object.name": kind.name,
        "magnum_object.namespace": NAMESPACE,
        "magnum_object.version": kind.version,
        "magnum_object.changes": changes,
        "magnum_object.data": data,
    })
}

/// The primitive form of an object as loaded from the database and not
/// changed since: no `magnum_object.changes`, so a peer that saves it
/// writes only what it changes itself (upstream refuses to save a changed
/// `uuid`).
pub fn encode_stored<T: Versioned>(obj: &T) -> Value {
    let mut v = encode(obj);
    if let Value::Object(m) = &mut v {
        m.remove("magnum_object.changes");
    }
    v
}

/// The primitive form of a stored object of which only `changed` fields
/// were changed (a patched object on its way to be saved).
pub fn encode_changed<T: Versioned>(obj: &T, changed: &[&str]) -> Value {
    let mut v = encode_stored(obj);
    if let Value::Object(m) = &mut v {
        m.insert("magnum_object.changes".into(), json!(changed));
    }
    v
}

/// The object a primitive carries; fields it lacks take their defaults.
pub fn decode<T: Versioned>(primitive: &Value) -> Result<T, OvoError> {
    let kind = T::KIND;
    let p = primitive
        .as_object()
        .ok_or_else(|| OvoError::NotAnObject(primitive.to_string().chars().take(80).collect()))?;
    let name = p
        .get("magnum_object.name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let namespace = p
        .get("magnum_object.namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name != kind.name || namespace != NAMESPACE {
        return Err(OvoError::WrongType {
            expected: kind.name,
            got: format!("{namespace}.{name}"),
        });
    }
    let version = p
        .get("magnum_object.version")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if version.split('.').next() != kind.version.split('.').next() {
        return Err(OvoError::Version {
            name: kind.name,
            got: version.to_string(),
            ours: kind.version,
        });
    }
    let mut data = p
        .get("magnum_object.data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for f in kind.datetimes {
        if let Some(v) = data.get_mut(*f) {
            *v = from_wire_time(v);
        }
    }
    // A nested object (e.g. a cluster's loaded template) is not a field of ours.
    data.retain(|_, v| !v.get("magnum_object.name").is_some_and(|n| n.is_string()));
    serde_json::from_value(Value::Object(data)).map_err(|source| OvoError::Data {
        name: kind.name,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_upstream_sends() {
        // Captured from upstream Magnum 23.0.0's Cluster.obj_to_primitive().
        let p: Value = serde_json::from_str(r#"{"magnum_object.changes": ["labels", "status", "health_status_reason", "id", "cluster_template_id", "uuid", "name", "create_timeout"], "magnum_object.data": {"cluster_template_id": "27e3153e-d5bf-4b7e-b517-fb518e17f34c", "create_timeout": 60, "health_status_reason": {}, "id": 7, "labels": {"k": "v"}, "name": "c", "status": "CREATE_IN_PROGRESS", "uuid": "11111111-1111-1111-1111-111111111111", "created_at": "2026-11-24T10:00:00Z"}, "magnum_object.name": "Cluster", "magnum_object.namespace": "magnum", "magnum_object.version": "1.24"}"#).unwrap();
        let c: Cluster = decode(&p).unwrap();
        assert_eq!(c.id, 7);
        assert_eq!(c.create_timeout, Some(60));
        assert_eq!(c.labels.unwrap()["k"], "v");
        assert_eq!(c.created_at.unwrap().to_string(), "2026-11-24 10:00:00");
        assert!(decode::<NodeGroup>(&p).is_err(), "wrong type");
        let mut newer = p.clone();
        newer["magnum_object.version"] = json!("2.0");
        assert!(decode::<Cluster>(&newer).is_err());
    }

    #[test]
    fn encodes_like_upstream() {
        let ng = NodeGroup {
            id: 1,
            uuid: "u".into(),
            name: "default-worker".into(),
            cluster_id: "c".into(),
            project_id: "p".into(),
            node_count: Some(2),
            created_at: chrono::NaiveDateTime::parse_from_str(
                "2026-11-24T10:00:00",
                "%Y-%m-%dT%H:%M:%S",
            )
            .ok(),
            ..Default::default()
        };
        let p = encode(&ng);
        assert_eq!(p["magnum_object.name"], "NodeGroup");
        assert_eq!(p["magnum_object.version"], "1.2");
        let data = &p["magnum_object.data"];
        assert_eq!(data["created_at"], "2026-11-24T10:00:00Z");
        assert!(
            data.get("role").is_none(),
            "non-nullable nulls are left out"
        );
        assert!(data["stack_id"].is_null(), "nullable nulls are sent");
        let back: NodeGroup = decode(&p).unwrap();
        assert_eq!(back, ng);
    }
}
