//! Our HOT templates, and what is sent to Heat with them.
//!
//! Each COE has a top template (`cluster.yaml`) and nested ones it names by
//! file (`master.yaml`, `worker.yaml`, `lb.yaml`, …); node boot
//! configuration is the abstract type `Magnum::Boot::<Role>`, mapped in the
//! environment to the OS's provider (Ignition for Fedora CoreOS, cloud-init
//! for Ubuntu). An operator may add environments (`[drivers]
//! heat_environment_files`): their `resource_registry` entries that name
//! files are sent along, so a cloud can map types to its own providers.

use std::path::Path;

use magnum_core::drivers::DriverError;
use serde_json::{json, Map, Value};

/// The container orchestration engine a driver builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coe {
    Kubernetes,
    Swarm,
    Mesos,
}

impl Coe {
    pub fn of(coe: &str) -> Option<Coe> {
        match coe {
            "kubernetes" => Some(Coe::Kubernetes),
            "swarm-mode" | "swarm" => Some(Coe::Swarm),
            "mesos" => Some(Coe::Mesos),
            _ => None,
        }
    }
}

/// The operating system of a driver's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    FedoraCoreos,
    Ubuntu,
}

impl Os {
    pub fn of(os: &str) -> Option<Os> {
        match os {
            "fedora-coreos" => Some(Os::FedoraCoreos),
            "ubuntu" => Some(Os::Ubuntu),
            _ => None,
        }
    }
}

/// (name Heat knows the file by, its text).
type File = (&'static str, &'static str);

/// The templates every COE shares; `cluster.yaml` is the top one.
const COMMON: &[File] = &[
    (
        "cluster.yaml",
        include_str!("../templates/common/cluster.yaml"),
    ),
    (
        "network.yaml",
        include_str!("../templates/common/network.yaml"),
    ),
    ("lb.yaml", include_str!("../templates/common/lb.yaml")),
    ("node.yaml", include_str!("../templates/common/node.yaml")),
    (
        "node-config.yaml",
        include_str!("../templates/common/node-config.yaml"),
    ),
    (
        "workers.yaml",
        include_str!("../templates/common/workers.yaml"),
    ),
    (
        "nodegroup.yaml",
        include_str!("../templates/common/nodegroup.yaml"),
    ),
    (
        "node-lib.sh",
        include_str!("../templates/common/node-lib.sh"),
    ),
];

/// What each COE brings: its security groups and its installer.
const KUBERNETES: &[File] = &[
    (
        "secgroups.yaml",
        include_str!("../templates/kubernetes/secgroups.yaml"),
    ),
    ("node.sh", include_str!("../templates/kubernetes/node.sh")),
];
const SWARM: &[File] = &[
    (
        "secgroups.yaml",
        include_str!("../templates/swarm/secgroups.yaml"),
    ),
    ("node.sh", include_str!("../templates/swarm/node.sh")),
];
const MESOS: &[File] = &[
    (
        "secgroups.yaml",
        include_str!("../templates/mesos/secgroups.yaml"),
    ),
    ("node.sh", include_str!("../templates/mesos/node.sh")),
];

/// The top template of a node group's own stack, among a COE's files.
pub const NODEGROUP_TOP: &str = "nodegroup.yaml";

const BOOT_FCOS: File = (
    "boot-fcos.yaml",
    include_str!("../templates/boot/fcos.yaml"),
);
const BOOT_UBUNTU: File = (
    "boot-ubuntu.yaml",
    include_str!("../templates/boot/ubuntu.yaml"),
);

/// The directory of a COE's templates under `crates/heat/templates`.
pub fn dir_of(coe: Coe) -> &'static str {
    match coe {
        Coe::Kubernetes => "kubernetes",
        Coe::Swarm => "swarm",
        Coe::Mesos => "mesos",
    }
}

/// The files of a COE's own, beside the common ones.
fn own_files_of(coe: Coe) -> &'static [File] {
    match coe {
        Coe::Kubernetes => KUBERNETES,
        Coe::Swarm => SWARM,
        Coe::Mesos => MESOS,
    }
}

/// Every template file of a COE, the top one first.
pub fn files_of(coe: Coe) -> Vec<File> {
    COMMON.iter().chain(own_files_of(coe)).copied().collect()
}

/// Why an operator's environment file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    #[error("cannot read heat environment {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("heat environment {path} is not valid YAML")]
    Yaml {
        path: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("heat environment {path}: cannot read {}", file.display())]
    File {
        path: String,
        file: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Environments an operator added: their registry and the files it names.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    registry: Map<String, Value>,
    parameter_defaults: Map<String, Value>,
    files: Map<String, Value>,
}

impl Extra {
    /// Read environment files; a registry entry naming a file (relative to
    /// its environment) is read and sent by its file name.
    pub fn load(paths: &[String]) -> Result<Extra, EnvironmentError> {
        let mut extra = Extra::default();
        for p in paths {
            let path = || p.clone();
            let text = std::fs::read_to_string(p).map_err(|source| EnvironmentError::Read {
                path: path(),
                source,
            })?;
            let env: Value =
                serde_yaml::from_str(&text).map_err(|source| EnvironmentError::Yaml {
                    path: path(),
                    source,
                })?;
            let dir = Path::new(p).parent().unwrap_or(Path::new("."));
            for (k, v) in env["resource_registry"].as_object().into_iter().flatten() {
                let Some(target) = v.as_str() else {
                    extra.registry.insert(k.clone(), v.clone());
                    continue;
                };
                let file = dir.join(target);
                if target.ends_with(".yaml") || target.ends_with(".yml") {
                    let body = match std::fs::read_to_string(&file) {
                        Ok(body) => body,
                        Err(source) => {
                            return Err(EnvironmentError::File {
                                path: path(),
                                file,
                                source,
                            })
                        }
                    };
                    let name = format!("extra-{}", target.replace('/', "-"));
                    extra.files.insert(name.clone(), json!(body));
                    extra.registry.insert(k.clone(), json!(name));
                } else {
                    extra.registry.insert(k.clone(), json!(target));
                }
            }
            if let Some(d) = env["parameter_defaults"].as_object() {
                extra.parameter_defaults.extend(d.clone());
            }
        }
        Ok(extra)
    }
}

/// The parameter names a template declares.
pub fn declared(template: &Value) -> Vec<String> {
    template["parameters"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// What a stack of one driver is made from.
pub struct Bundle {
    pub template: Value,
    pub files: Map<String, Value>,
    pub environment: Value,
}

fn parse(name: &str, text: &str) -> Result<Value, DriverError> {
    serde_yaml::from_str(text)
        .map_err(|e| DriverError::Failed(format!("template {name} does not parse: {e}")))
}

/// The template, files and environment of a (COE, OS) cluster.
pub fn bundle(coe: Coe, os: Os, extra: &Extra) -> Result<Bundle, DriverError> {
    let top = files_of(coe).first().map(|f| f.0).unwrap_or_default();
    bundle_of(coe, os, extra, top)
}

/// [`bundle`] with another of the COE's templates on top (a node group's).
pub fn bundle_of(coe: Coe, os: Os, extra: &Extra, top: &str) -> Result<Bundle, DriverError> {
    let all = files_of(coe);
    let Some(top) = all.iter().find(|f| f.0 == top) else {
        return Err(DriverError::Failed(format!(
            "{top} is none of the {coe:?} templates"
        )));
    };
    let rest: Vec<&File> = all.iter().filter(|f| f.0 != top.0).collect();
    let boot = match os {
        Os::FedoraCoreos => BOOT_FCOS,
        Os::Ubuntu => BOOT_UBUNTU,
    };
    let mut files = Map::new();
    for (name, text) in rest.into_iter().chain(std::iter::once(&boot)) {
        files.insert(name.to_string(), json!(text));
    }
    files.extend(extra.files.clone());
    let mut registry = Map::new();
    registry.insert("Magnum::Boot".into(), json!(boot.0));
    registry.extend(extra.registry.clone());
    Ok(Bundle {
        template: parse(top.0, top.1)?,
        files,
        environment: json!({
            "resource_registry": registry,
            "parameter_defaults": extra.parameter_defaults,
        }),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_template_parses_and_names_only_files_we_send() {
        for (coe, os) in [
            (Coe::Kubernetes, Os::FedoraCoreos),
            (Coe::Kubernetes, Os::Ubuntu),
            (Coe::Swarm, Os::Ubuntu),
            (Coe::Mesos, Os::Ubuntu),
        ] {
            let b = bundle(coe, os, &Extra::default()).unwrap();
            assert!(b.template["heat_template_version"].is_string());
            for (name, text) in b.files.iter() {
                if name.ends_with(".yaml") {
                    parse(name, text.as_str().unwrap()).unwrap();
                }
            }
            // Every `type:` or `get_file:` naming a file is one we send.
            let mut texts = vec![serde_json::to_string(&b.template).unwrap()];
            texts.extend(b.files.values().map(|v| v.as_str().unwrap().to_string()));
            for t in texts {
                for word in t.split(|c: char| c.is_whitespace() || c == '"' || c == ',') {
                    if (word.ends_with(".yaml") || word.ends_with(".sh")) && !word.contains('/') {
                        assert!(b.files.contains_key(word), "{word} is not sent");
                    }
                }
            }
        }
    }
}
