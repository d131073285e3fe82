//! What the node group routes show: a group's full view (every attribute,
//! its labels' differences from the cluster's, links) and its summary in a
//! list.

use super::*;
use serde_json::json;

const SUMMARY: [&str; 9] = [
    "uuid",
    "name",
    "flavor_id",
    "node_count",
    "role",
    "is_default",
    "image_id",
    "status",
    "stack_id",
];

pub(super) fn full(ng: &NodeGroup, cluster_labels: &Map<String, Value>, base: &BaseUrl) -> Value {
    let stored = match serde_json::to_value(ng) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut out = Map::new();
    for field in DOC_FIELDS {
        out.insert(
            field.into(),
            stored.get(field).cloned().unwrap_or(Value::Null),
        );
    }
    out.insert("created_at".into(), timestamp(&ng.created_at));
    out.insert("updated_at".into(), timestamp(&ng.updated_at));
    let (overridden, added, skipped) =
        labels_diff(cluster_labels, &ng.labels.clone().unwrap_or_default());
    out.insert("labels_overridden".into(), Value::Object(overridden));
    out.insert("labels_added".into(), Value::Object(added));
    out.insert("labels_skipped".into(), Value::Object(skipped));
    // Upstream's API-only attribute, never stored: its WSME default.
    out.insert("merge_labels".into(), Value::Bool(false));
    let path = format!("nodegroups/{}", ng.uuid);
    let cluster_path = format!("clusters/{}", ng.cluster_id);
    out.insert(
        "links".into(),
        json!([
            base.link("self", &cluster_path, &path, false),
            base.link("bookmark", &cluster_path, &path, true)
        ]),
    );
    let mut sorted: Vec<(String, Value)> = out.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(sorted.into_iter().collect())
}

/// A node group in a list (the [`SUMMARY`] fields, keys sorted),
/// serialized straight into the answer. Upstream unsets every other
/// attribute, and WSME then shows those with a default as that default:
/// `max_node_count` null, `merge_labels` false and `min_node_count` 0,
/// whatever the group holds (its show gives the stored values).
pub(super) struct Summary<'a>(pub(super) &'a NodeGroup);

impl serde::Serialize for Summary<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let ng = self.0;
        let mut m = s.serialize_map(Some(SUMMARY.len() + 3))?;
        m.serialize_entry("flavor_id", &ng.flavor_id)?;
        m.serialize_entry("image_id", &ng.image_id)?;
        m.serialize_entry("is_default", &ng.is_default)?;
        m.serialize_entry("max_node_count", &None::<i64>)?;
        m.serialize_entry("merge_labels", &false)?;
        m.serialize_entry("min_node_count", &0)?;
        m.serialize_entry("name", &ng.name)?;
        m.serialize_entry("node_count", &ng.node_count)?;
        m.serialize_entry("role", &ng.role)?;
        m.serialize_entry("stack_id", &ng.stack_id)?;
        m.serialize_entry("status", &ng.status)?;
        m.serialize_entry("uuid", &ng.uuid)?;
        m.end()
    }
}

/// The attributes of a stored group a PATCH document shows.
pub(super) const DOC_FIELDS: [&str; 21] = [
    "id",
    "uuid",
    "name",
    "cluster_id",
    "project_id",
    "docker_volume_size",
    "labels",
    "flavor_id",
    "image_id",
    "node_addresses",
    "node_count",
    "role",
    "min_node_count",
    "max_node_count",
    "is_default",
    "stack_id",
    "status",
    "status_reason",
    "version",
    "node_labels",
    "node_taints",
];
