//! Upstream's rules for a cluster template (its API's `Validator` classes
//! and the controller's defaults): the server types, network and volume
//! drivers each COE allows (narrowed by `[cluster_template]
//! <coe>_allowed_network_drivers`), the devicemapper volume size, and what
//! a create request leaves out. A refusal is upstream's `InvalidParameterValue`
//! (400).

use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::objects::ClusterTemplate;
use crate::MagnumError;

/// Defaults upstream applies to attributes a create request leaves out.
const CREATE_DEFAULTS: [(&str, Value); 6] = [
    ("registry_enabled", Value::Bool(false)),
    ("tls_disabled", Value::Bool(false)),
    ("public", Value::Bool(false)),
    ("master_lb_enabled", Value::Bool(false)),
    ("floating_ip_enabled", Value::Bool(true)),
    ("hidden", Value::Bool(false)),
];

/// Fill in what a create request (validated attributes) leaves out: the
/// booleans above, server type `vm` and no labels.
pub fn with_create_defaults(given: &mut Map<String, Value>) {
    for (name, default) in CREATE_DEFAULTS {
        if !given.contains_key(name) {
            given.insert(name.into(), default);
        }
    }
    given
        .entry("server_type")
        .or_insert_with(|| Value::String("vm".into()));
    given.entry("labels").or_insert_with(|| json!({}));
}

/// The validation rules of one COE (upstream's `Validator` classes).
pub struct CoeRules {
    coe: &'static str,
    network_drivers: &'static [&'static str],
    volume_drivers: &'static [&'static str],
}

const COE_RULES: [CoeRules; 4] = [
    CoeRules {
        coe: "kubernetes",
        network_drivers: &["flannel", "calico", "cilium"],
        volume_drivers: &["cinder"],
    },
    CoeRules {
        coe: "swarm",
        network_drivers: &["docker", "flannel"],
        volume_drivers: &["rexray"],
    },
    CoeRules {
        coe: "swarm-mode",
        network_drivers: &["docker", "flannel"],
        volume_drivers: &["rexray"],
    },
    CoeRules {
        coe: "mesos",
        network_drivers: &["docker"],
        volume_drivers: &["rexray"],
    },
];

fn invalid(msg: String) -> MagnumError {
    MagnumError::Invalid(msg)
}

fn expecting(list: &[&str]) -> String {
    let mut all: Vec<&str> = list.to_vec();
    all.push("unspecified");
    all.join("/")
}

impl CoeRules {
    /// The rules of `coe`, or upstream's refusal of a COE it does not know.
    pub fn of(coe: &str) -> Result<&'static CoeRules, MagnumError> {
        COE_RULES
            .iter()
            .find(|r| r.coe == coe)
            .ok_or_else(|| invalid(format!("Requested COE type {coe} is not supported.")))
    }

    /// `[cluster_template] <coe>_allowed_network_drivers` and
    /// `<coe>_default_network_driver` (the swarms share `swarm_…`).
    pub fn network_options(&self, conf: &Config) -> (Vec<String>, Option<String>) {
        let prefix = match self.coe {
            "kubernetes" => "kubernetes",
            "mesos" => "mesos",
            _ => "swarm",
        };
        (
            conf.list(
                "cluster_template",
                &format!("{prefix}_allowed_network_drivers"),
            ),
            conf.str(
                "cluster_template",
                &format!("{prefix}_default_network_driver"),
            ),
        )
    }

    pub fn check_server_type(&self, server_type: &str) -> Result<(), MagnumError> {
        if ["vm", "bm"].contains(&server_type) {
            return Ok(());
        }
        Err(invalid(format!(
            "Server type {server_type} is not supported, expecting a {} server type.",
            expecting(&["vm", "bm"])
        )))
    }

    /// `driver` is one the COE supports and `allowed` (the configured
    /// list; `all` allows any) lets in.
    pub fn check_network_driver(
        &self,
        allowed: &[String],
        driver: &str,
    ) -> Result<(), MagnumError> {
        if !self.network_drivers.contains(&driver) {
            return Err(invalid(format!(
                "Network driver type {driver} is not supported, expecting a {} network driver.",
                expecting(self.network_drivers)
            )));
        }
        if !allowed.iter().any(|a| a == "all" || a == driver) {
            let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
            return Err(invalid(format!(
                "Network driver type {driver} is not allowed, expecting a {} network driver. ",
                expecting(&allowed)
            )));
        }
        Ok(())
    }

    pub fn check_volume_driver(&self, driver: &str) -> Result<(), MagnumError> {
        if self.volume_drivers.contains(&driver) {
            return Ok(());
        }
        Err(invalid(format!(
            "Volume driver type {driver} is not supported, expecting a {} volume driver.",
            expecting(self.volume_drivers)
        )))
    }
}

/// Upstream's devicemapper rule: at least 3 GB of Docker volume.
pub fn check_storage_size(ct: &ClusterTemplate) -> Result<(), MagnumError> {
    let driver = ct.docker_storage_driver.as_deref();
    if driver == Some("devicemapper") && ct.docker_volume_size.is_none_or(|s| s < 3) {
        let size = ct
            .docker_volume_size
            .map(|s| s.to_string())
            .unwrap_or_else(|| "None".into());
        return Err(invalid(format!(
            "docker volume size {size} GB is not valid, expecting minimum value 3GB for \
             devicemapper storage driver."
        )));
    }
    Ok(())
}

/// Whether the template's storage driver is one Docker deprecated
/// (upstream logs a warning for those).
pub fn deprecated_storage_driver(ct: &ClusterTemplate) -> bool {
    matches!(
        ct.docker_storage_driver.as_deref(),
        Some("devicemapper" | "overlay")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_defaults_fill_only_what_is_missing() {
        let mut given = json!({"public": true, "labels": {"a": "1"}})
            .as_object()
            .cloned()
            .unwrap();
        with_create_defaults(&mut given);
        assert_eq!(given["public"], json!(true));
        assert_eq!(given["hidden"], json!(false));
        assert_eq!(given["floating_ip_enabled"], json!(true));
        assert_eq!(given["server_type"], json!("vm"));
        assert_eq!(given["labels"], json!({"a": "1"}));
    }

    #[test]
    fn unknown_coe_and_server_type_are_refused() {
        assert_eq!(
            CoeRules::of("nomad").err().unwrap().to_string(),
            "Requested COE type nomad is not supported."
        );
        let k8s = CoeRules::of("kubernetes").unwrap();
        assert!(k8s.check_server_type("bm").is_ok());
        assert_eq!(
            k8s.check_server_type("zone").unwrap_err().to_string(),
            "Server type zone is not supported, expecting a vm/bm/unspecified server type."
        );
    }

    #[test]
    fn network_drivers_per_coe_and_per_option() {
        let all = vec!["all".to_string()];
        let k8s = CoeRules::of("kubernetes").unwrap();
        assert!(k8s.check_network_driver(&all, "calico").is_ok());
        assert_eq!(
            k8s.check_network_driver(&all, "docker")
                .unwrap_err()
                .to_string(),
            "Network driver type docker is not supported, expecting a \
             flannel/calico/cilium/unspecified network driver."
        );
        let only = vec!["flannel".to_string()];
        assert_eq!(
            k8s.check_network_driver(&only, "calico")
                .unwrap_err()
                .to_string(),
            "Network driver type calico is not allowed, expecting a flannel/unspecified \
             network driver. "
        );
        let swarm = CoeRules::of("swarm-mode").unwrap();
        assert!(swarm.check_volume_driver("rexray").is_ok());
        assert!(swarm.check_volume_driver("cinder").is_err());
    }

    #[test]
    fn devicemapper_needs_three_gigabytes() {
        let mut ct = ClusterTemplate {
            docker_storage_driver: Some("devicemapper".into()),
            ..Default::default()
        };
        assert_eq!(
            check_storage_size(&ct).unwrap_err().to_string(),
            "docker volume size None GB is not valid, expecting minimum value 3GB for \
             devicemapper storage driver."
        );
        ct.docker_volume_size = Some(3);
        assert!(check_storage_size(&ct).is_ok());
        assert!(deprecated_storage_driver(&ct));
        ct.docker_storage_driver = Some("overlay2".into());
        ct.docker_volume_size = None;
        assert!(check_storage_size(&ct).is_ok());
        assert!(!deprecated_storage_driver(&ct));
    }
}
