//! Upstream's rules for a new cluster (its API controller's `post`): what
//! the request leaves out comes from the template (keypair, flavors,
//! network, volume size, floating IPs, load balancer), labels replace the
//! template's or, with `merge_labels`, override them, a missing name is
//! generated, and several masters need a load balancer.

use serde_json::{Map, Value};

use crate::objects::{status::CREATE_IN_PROGRESS, Cluster, ClusterTemplate};
use crate::MagnumError;

/// Whether upstream treats an attribute as not given (`if not value:` in
/// Python: null, "", 0, {}, false).
pub fn not_given(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Bool(b)) => !b,
        Some(_) => false,
    }
}

/// The new cluster `uuid` that `given` (validated attributes) asks for,
/// built from `template`, owned by (project, user), with `master_count`
/// masters and `create_timeout` minutes; `CREATE_IN_PROGRESS`.
pub fn new_cluster(
    uuid: String,
    given: &Map<String, Value>,
    template: &ClusterTemplate,
    owner: (Option<String>, Option<String>),
    master_count: i64,
    create_timeout: i64,
) -> Result<Cluster, MagnumError> {
    let s = |k: &str| given.get(k).and_then(Value::as_str).map(str::to_string);
    let int = |k: &str| given.get(k).and_then(Value::as_i64);
    let mut labels = given
        .get("labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let template_labels = template.labels.clone().unwrap_or_default();
    if labels.is_empty() {
        labels = template_labels;
    } else if given.get("merge_labels").and_then(Value::as_bool) == Some(true) {
        let mut merged = template_labels;
        merged.extend(labels);
        labels = merged;
    }
    let pick = |k: &str, fallback: Option<String>| {
        if not_given(given.get(k)) {
            fallback
        } else {
            s(k)
        }
    };
    let master_lb_enabled = given
        .get("master_lb_enabled")
        .and_then(Value::as_bool)
        .or(template.master_lb_enabled);
    if master_count > 1 && !master_lb_enabled.unwrap_or(false) {
        return Err(MagnumError::Invalid(
            "master_count must be 1 when master_lb_enabled is False".into(),
        ));
    }
    let (project_id, user_id) = owner;
    Ok(Cluster {
        uuid,
        name: Some(
            s("name")
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("{}-cluster", crate::names::generate())),
        ),
        project_id,
        user_id,
        cluster_template_id: Some(template.uuid.clone()),
        keypair: s("keypair").or_else(|| template.keypair_id.clone()),
        docker_volume_size: if not_given(given.get("docker_volume_size")) {
            template.docker_volume_size
        } else {
            int("docker_volume_size")
        },
        labels: Some(labels),
        master_flavor_id: pick("master_flavor_id", template.master_flavor_id.clone()),
        flavor_id: pick("flavor_id", template.flavor_id.clone()),
        fixed_network: pick("fixed_network", template.fixed_network.clone()),
        fixed_subnet: pick("fixed_subnet", template.fixed_subnet.clone()),
        floating_ip_enabled: given
            .get("floating_ip_enabled")
            .and_then(Value::as_bool)
            .or(template.floating_ip_enabled),
        master_lb_enabled,
        create_timeout: Some(create_timeout),
        discovery_url: s("discovery_url"),
        status: Some(CREATE_IN_PROGRESS.into()),
        ..Default::default()
    })
}

/// Upstream's `_enforce_volume_storage_size`: a cluster of a devicemapper
/// template needs at least 3 GB of Docker volume, its own `size` or else
/// the template's.
pub fn check_storage_size(t: &ClusterTemplate, size: Option<i64>) -> Result<(), MagnumError> {
    let size = size.or(t.docker_volume_size);
    if t.docker_storage_driver.as_deref() == Some("devicemapper") && size.is_none_or(|s| s < 3) {
        let shown = size.map_or("None".to_string(), |s| s.to_string());
        return Err(MagnumError::Invalid(format!(
            "docker volume size {shown} GB is not valid, expecting minimum value 3GB for \
             devicemapper storage driver."
        )));
    }
    Ok(())
}

/// Upstream's `cluster_update_allowed_properties`: what a PATCH may change.
pub const UPDATABLE_PROPERTIES: [&str; 3] = ["node_count", "health_status", "health_status_reason"];

/// Upstream's refusal of a cluster PATCH that changes anything else:
/// `names` are the attributes whose value `before` and `after` differ in.
pub fn check_update<'a>(
    names: impl IntoIterator<Item = &'a str>,
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) -> Result<(), MagnumError> {
    let mut delta: Vec<&str> = names
        .into_iter()
        .filter(|k| after.get(*k) != before.get(*k))
        .filter(|k| !UPDATABLE_PROPERTIES.contains(k))
        .collect();
    if delta.is_empty() {
        return Ok(());
    }
    delta.sort_unstable();
    Err(MagnumError::Invalid(format!(
        "cannot change cluster property(ies) {}.",
        delta.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template() -> ClusterTemplate {
        ClusterTemplate {
            uuid: "t-1".into(),
            keypair_id: Some("kp".into()),
            flavor_id: Some("m1.small".into()),
            master_flavor_id: Some("m1.medium".into()),
            docker_volume_size: Some(5),
            labels: json!({"a": "1", "b": "2"}).as_object().cloned(),
            ..Default::default()
        }
    }

    fn build(given: Value, masters: i64) -> Result<Cluster, MagnumError> {
        let owner = (Some("p".into()), Some("u".into()));
        new_cluster(
            "c-1".into(),
            given.as_object().unwrap(),
            &template(),
            owner,
            masters,
            60,
        )
    }

    #[test]
    fn what_is_not_given_comes_from_the_template() {
        let c = build(json!({"flavor_id": "", "docker_volume_size": 0}), 1).unwrap();
        assert_eq!(c.keypair.as_deref(), Some("kp"));
        assert_eq!(c.flavor_id.as_deref(), Some("m1.small"));
        assert_eq!(c.master_flavor_id.as_deref(), Some("m1.medium"));
        assert_eq!(c.docker_volume_size, Some(5));
        assert_eq!(c.labels, template().labels);
        assert!(c.name.unwrap().ends_with("-cluster"));
        assert_eq!(c.status.as_deref(), Some(CREATE_IN_PROGRESS));
        let c = build(
            json!({"name": "x", "flavor_id": "big", "keypair": "mine"}),
            1,
        )
        .unwrap();
        assert_eq!(
            (
                c.name.as_deref(),
                c.flavor_id.as_deref(),
                c.keypair.as_deref()
            ),
            (Some("x"), Some("big"), Some("mine"))
        );
    }

    #[test]
    fn labels_replace_or_merge() {
        let c = build(json!({"labels": {"b": "9", "c": "3"}}), 1).unwrap();
        assert_eq!(c.labels, json!({"b": "9", "c": "3"}).as_object().cloned());
        let c = build(json!({"labels": {"b": "9"}, "merge_labels": true}), 1).unwrap();
        assert_eq!(c.labels, json!({"a": "1", "b": "9"}).as_object().cloned());
    }

    #[test]
    fn several_masters_need_a_load_balancer() {
        let e = build(json!({}), 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "master_count must be 1 when master_lb_enabled is False"
        );
        assert!(build(json!({"master_lb_enabled": true}), 3).is_ok());
    }

    #[test]
    fn devicemapper_clusters_need_three_gigabytes() {
        let mut t = template();
        t.docker_storage_driver = Some("devicemapper".into());
        t.docker_volume_size = None;
        assert_eq!(
            check_storage_size(&t, Some(2)).unwrap_err().to_string(),
            "docker volume size 2 GB is not valid, expecting minimum value 3GB for \
             devicemapper storage driver."
        );
        assert!(check_storage_size(&t, None)
            .unwrap_err()
            .to_string()
            .starts_with("docker volume size None GB"));
        t.docker_volume_size = Some(3);
        assert!(check_storage_size(&t, None).is_ok());
        t.docker_storage_driver = Some("overlay2".into());
        assert!(check_storage_size(&t, Some(1)).is_ok());
    }

    #[test]
    fn an_update_changes_only_counts_and_health() {
        let before = json!({"node_count": 1, "name": "a", "keypair": "k", "health_status": null});
        let before = before.as_object().unwrap();
        let after =
            json!({"node_count": 3, "name": "b", "keypair": "j", "health_status": "HEALTHY"});
        let after = after.as_object().unwrap();
        let names = ["node_count", "name", "keypair", "health_status"];
        assert_eq!(
            check_update(names, before, after).unwrap_err().to_string(),
            "cannot change cluster property(ies) keypair, name."
        );
        assert!(check_update(["node_count", "health_status"], before, after).is_ok());
    }
}
