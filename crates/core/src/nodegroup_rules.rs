//! Upstream's rules for a node group's settings (its API controller's
//! `_validate_*`): node counts within their bounds, no node labels or taints
//! on masters, no labels the kubelet would refuse to set on itself, and
//! taints of a known shape. A refusal is upstream's `NodeGroupInvalidInput`
//! (409).

use serde_json::{Map, Value};

use crate::objects::{Cluster, NodeGroup};
use crate::MagnumError;

const VALID_TAINT_EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
const VALID_TAINT_FIELDS: [&str; 3] = ["key", "value", "effect"];

/// Node label namespaces (and labels) the kubelet may set on itself.
const KUBELET_ALLOWED_LABEL_NAMESPACES: [&str; 2] = ["kubelet.kubernetes.io", "node.kubernetes.io"];
const KUBELET_ALLOWED_LABELS: [&str; 12] = [
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "beta.kubernetes.io/os",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "kubernetes.io/arch",
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "node.kubernetes.io/instance-type",
    "node.kubernetes.io/windows-build",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
];

/// Upstream's `NodeGroupInvalidInput` (a conflict, 409).
fn invalid(attr: &str, ng: &NodeGroup, expl: String) -> MagnumError {
    MagnumError::Conflict(format!("{attr} for {} is invalid ({expl}).", ng.name))
}

/// Upstream's `_validate_node_count`.
fn validate_node_count(ng: &NodeGroup) -> Result<(), MagnumError> {
    let min = ng.min_node_count.unwrap_or(0);
    let count = ng.node_count.unwrap_or(0);
    if let Some(max) = ng.max_node_count.filter(|m| *m != 0) {
        if max < min {
            return Err(invalid(
                "max_node_count",
                ng,
                format!("min_node_count ({min}) should be less or equal to max_node_count ({max})"),
            ));
        }
        if count > max {
            return Err(invalid(
                "max_node_count",
                ng,
                format!("node_count ({count}) should be less or equal to max_node_count ({max})"),
            ));
        }
    }
    if min > count {
        return Err(invalid(
            "min_node_count",
            ng,
            format!("min_node_count ({min}) should be less or equal to node_count ({count})"),
        ));
    }
    Ok(())
}

/// Upstream's `_validate_node_attrs_role`: no node labels or taints on
/// master groups.
fn validate_node_attrs_role(ng: &NodeGroup) -> Result<(), MagnumError> {
    if ng.role.as_deref() != Some("master") {
        return Ok(());
    }
    if ng.node_labels.as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(invalid(
            "node_labels",
            ng,
            "node_labels may not be set on master nodegroups".into(),
        ));
    }
    if ng.node_taints.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(invalid(
            "node_taints",
            ng,
            "node_taints may not be set on master nodegroups".into(),
        ));
    }
    Ok(())
}

/// Whether a label key lives in the kubernetes.io or k8s.io namespaces.
fn is_restricted_kubernetes_label(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return false;
    };
    matches!(prefix, "kubernetes.io" | "k8s.io")
        || prefix.ends_with(".kubernetes.io")
        || prefix.ends_with(".k8s.io")
}

/// Upstream's `_validate_node_labels`: labels the kubelet would refuse to
/// set on itself are refused.
fn validate_node_labels(ng: &NodeGroup) -> Result<(), MagnumError> {
    for key in ng.node_labels.iter().flat_map(|l| l.keys()) {
        if !is_restricted_kubernetes_label(key) {
            continue;
        }
        let prefix = key.split('/').next().unwrap_or_default();
        if KUBELET_ALLOWED_LABEL_NAMESPACES.contains(&prefix)
            || KUBELET_ALLOWED_LABELS.contains(&key.as_str())
        {
            continue;
        }
        return Err(invalid(
            "node_labels",
            ng,
            format!(
                "node label '{key}' is in a restricted Kubernetes namespace; the kubelet will \
                 refuse to start. Labels in the kubernetes.io/ and k8s.io/ namespaces must use \
                 one of the allowed prefixes ({}) or be one of the allowed labels ({}).",
                KUBELET_ALLOWED_LABEL_NAMESPACES.join(", "),
                KUBELET_ALLOWED_LABELS.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Upstream's `_validate_node_taints`.
fn validate_node_taints(ng: &NodeGroup) -> Result<(), MagnumError> {
    for (index, taint) in ng.node_taints.iter().flatten().enumerate() {
        let Some(taint) = taint.as_object() else {
            return Err(invalid(
                "node_taints",
                ng,
                format!(
                    "node_taints[{index}] must be an object with key, effect and optional value"
                ),
            ));
        };
        let mut unknown: Vec<&str> = taint
            .keys()
            .map(String::as_str)
            .filter(|k| !VALID_TAINT_FIELDS.contains(k))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(invalid(
                "node_taints",
                ng,
                format!(
                    "node_taints[{index}] contains unrecognised field(s) {}; allowed fields are {}",
                    unknown.join(", "),
                    VALID_TAINT_FIELDS.join(", ")
                ),
            ));
        }
        let key = taint.get("key").and_then(Value::as_str).unwrap_or_default();
        if key.is_empty() {
            return Err(invalid(
                "node_taints",
                ng,
                format!("node_taints[{index}].key is required"),
            ));
        }
        let effect = taint.get("effect").and_then(Value::as_str);
        if !effect.is_some_and(|e| VALID_TAINT_EFFECTS.contains(&e)) {
            return Err(invalid(
                "node_taints",
                ng,
                format!(
                    "node_taints[{index}].effect must be one of {}",
                    VALID_TAINT_EFFECTS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Upstream's checks of a group's settings, in its order.
pub fn validate(ng: &NodeGroup) -> Result<(), MagnumError> {
    validate_node_count(ng)?;
    validate_node_attrs_role(ng)?;
    validate_node_labels(ng)?;
    validate_node_taints(ng)
}

/// The node group `uuid` a create request (`given`, its validated
/// attributes) asks for in `cluster`, owned by `project_id`, checked by
/// [`validate`]: upstream's defaults (one node, minimum 0, role `worker`),
/// the cluster's flavor when none is given, and the cluster's labels,
/// replaced by the group's own or, with `merge_labels`, overridden by them.
/// Master groups are refused. The image (the template's when none is
/// given) is left to the caller.
pub fn new_group(
    uuid: String,
    given: &Map<String, Value>,
    cluster: &Cluster,
    project_id: String,
) -> Result<NodeGroup, MagnumError> {
    let s = |k: &str| given.get(k).and_then(Value::as_str).map(str::to_string);
    let int = |k: &str| given.get(k).and_then(Value::as_i64);
    let mut ng = NodeGroup {
        uuid,
        name: s("name").unwrap_or_default(),
        cluster_id: cluster.uuid.clone(),
        project_id,
        docker_volume_size: int("docker_volume_size"),
        labels: given.get("labels").and_then(Value::as_object).cloned(),
        flavor_id: s("flavor_id"),
        image_id: s("image_id"),
        node_count: Some(int("node_count").unwrap_or(1)),
        min_node_count: Some(int("min_node_count").unwrap_or(0)),
        max_node_count: int("max_node_count"),
        role: Some(s("role").unwrap_or_else(|| "worker".into())),
        is_default: Some(
            given
                .get("is_default")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        ),
        version: s("version"),
        node_labels: given.get("node_labels").and_then(Value::as_object).cloned(),
        node_taints: given.get("node_taints").and_then(Value::as_array).cloned(),
        ..Default::default()
    };
    validate(&ng)?;
    if ng.role.as_deref() == Some("master") {
        return Err(MagnumError::NotSupportedMsg(
            "Creating master nodegroups is currently not supported.".into(),
        ));
    }
    if ng.flavor_id.is_none() {
        ng.flavor_id = cluster.flavor_id.clone();
    }
    let cluster_labels = cluster.labels.clone().unwrap_or_default();
    ng.labels = Some(match ng.labels.take() {
        None => cluster_labels,
        Some(labels) if given.get("merge_labels").and_then(Value::as_bool) == Some(true) => {
            let mut merged = cluster_labels;
            merged.extend(labels);
            merged
        }
        Some(labels) => labels,
    });
    Ok(ng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn group(role: &str, min: i64, count: i64, max: Option<i64>) -> NodeGroup {
        NodeGroup {
            name: "ng".into(),
            role: Some(role.into()),
            min_node_count: Some(min),
            node_count: Some(count),
            max_node_count: max,
            ..Default::default()
        }
    }

    fn refusal(ng: &NodeGroup) -> String {
        validate(ng).unwrap_err().to_string()
    }

    #[test]
    fn counts_stay_within_their_bounds() {
        assert!(validate(&group("worker", 1, 2, Some(3))).is_ok());
        // A max of 0 means no max.
        assert!(validate(&group("worker", 0, 9, Some(0))).is_ok());
        assert!(refusal(&group("worker", 3, 3, Some(2))).contains(
            "max_node_count for ng is invalid (min_node_count (3) should be less or equal to max_node_count (2))"
        ));
        assert!(refusal(&group("worker", 0, 5, Some(4))).contains("node_count (5) should be less"));
        assert!(refusal(&group("worker", 2, 1, None)).contains("min_node_count for ng is invalid"));
    }

    #[test]
    fn masters_take_no_node_labels_or_taints() {
        let mut ng = group("master", 1, 1, None);
        ng.node_labels = json!({"a": "b"}).as_object().cloned();
        assert!(refusal(&ng).contains("node_labels may not be set on master nodegroups"));
        ng.role = Some("worker".into());
        assert!(validate(&ng).is_ok());
    }

    #[test]
    fn labels_the_kubelet_refuses_are_refused() {
        let mut ng = group("worker", 0, 1, None);
        for ok in [
            "app",
            "example.com/x",
            "node.kubernetes.io/pool",
            "kubernetes.io/os",
        ] {
            ng.node_labels = json!({ ok: "v" }).as_object().cloned();
            assert!(validate(&ng).is_ok(), "{ok}");
        }
        for bad in [
            "kubernetes.io/role",
            "node-role.kubernetes.io/x",
            "k8s.io/y",
            "a.k8s.io/z",
        ] {
            ng.node_labels = json!({ bad: "v" }).as_object().cloned();
            assert!(
                refusal(&ng).contains("restricted Kubernetes namespace"),
                "{bad}"
            );
        }
    }

    #[test]
    fn taints_have_a_key_and_a_known_effect() {
        let mut ng = group("worker", 0, 1, None);
        let mut check = |taints: Value| {
            ng.node_taints = taints.as_array().cloned();
            validate(&ng).map_err(|e| e.to_string())
        };
        assert!(check(json!([{"key": "k", "value": "v", "effect": "NoSchedule"}])).is_ok());
        assert!(check(json!(["k=v"]))
            .unwrap_err()
            .contains("must be an object"));
        assert!(check(json!([{"key": "k", "effect": "NoSchedule", "x": 1}]))
            .unwrap_err()
            .contains("unrecognised field(s) x"));
        assert!(check(json!([{"effect": "NoSchedule"}]))
            .unwrap_err()
            .contains("key is required"));
        assert!(check(json!([{"key": "k", "effect": "Sometimes"}]))
            .unwrap_err()
            .contains("effect must be one of NoSchedule, PreferNoSchedule, NoExecute"));
    }

    fn cluster() -> Cluster {
        Cluster {
            uuid: "c-1".into(),
            flavor_id: Some("m1.small".into()),
            labels: json!({"a": "1", "b": "2"}).as_object().cloned(),
            ..Default::default()
        }
    }

    fn new(given: Value) -> Result<NodeGroup, MagnumError> {
        new_group(
            "ng-1".into(),
            given.as_object().unwrap(),
            &cluster(),
            "p".into(),
        )
    }

    #[test]
    fn a_new_group_takes_upstreams_defaults_and_the_clusters_settings() {
        let ng = new(json!({"name": "g"})).unwrap();
        assert_eq!(
            (ng.node_count, ng.min_node_count, ng.max_node_count),
            (Some(1), Some(0), None)
        );
        assert_eq!(ng.role.as_deref(), Some("worker"));
        assert_eq!(ng.is_default, Some(false));
        assert_eq!(ng.flavor_id.as_deref(), Some("m1.small"));
        assert_eq!(ng.labels, cluster().labels);
        assert_eq!(
            (ng.cluster_id.as_str(), ng.project_id.as_str()),
            ("c-1", "p")
        );
        assert_eq!(ng.image_id, None);
        let ng = new(json!({"name": "g", "flavor_id": "big", "role": "gpu"})).unwrap();
        assert_eq!(ng.flavor_id.as_deref(), Some("big"));
        assert_eq!(ng.role.as_deref(), Some("gpu"));
    }

    #[test]
    fn a_new_groups_labels_replace_or_merge_the_clusters() {
        let ng = new(json!({"name": "g", "labels": {"b": "9"}})).unwrap();
        assert_eq!(ng.labels, json!({"b": "9"}).as_object().cloned());
        let ng = new(json!({"name": "g", "labels": {"b": "9"}, "merge_labels": true})).unwrap();
        assert_eq!(ng.labels, json!({"a": "1", "b": "9"}).as_object().cloned());
    }

    #[test]
    fn a_new_group_is_checked_and_never_a_master() {
        assert_eq!(
            new(json!({"name": "g", "role": "master"}))
                .unwrap_err()
                .to_string(),
            "Creating master nodegroups is currently not supported."
        );
        // The counts are judged before the role.
        let e = new(json!({"name": "g", "role": "master", "min_node_count": 5}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("min_node_count for g is invalid"), "{e}");
    }
}
