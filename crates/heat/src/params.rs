//! The parameters of a cluster's stack, from the cluster, its template,
//! its node groups and its labels.

use magnum_core::drivers::{ClusterSpec, DriverError};
use serde_json::{json, Map, Value};

use crate::Coe;

/// A label the drivers read: its name, the COEs that read it, its default,
/// and what it does. `docs/labels.md` is this table.
pub struct Label {
    pub name: &'static str,
    pub coes: &'static [Coe],
    pub default: &'static str,
    pub help: &'static str,
}

const K8S: &[Coe] = &[Coe::Kubernetes];
const ALL: &[Coe] = &[Coe::Kubernetes, Coe::Swarm, Coe::Mesos];

const SWARM: &[Coe] = &[Coe::Swarm];
const MESOS: &[Coe] = &[Coe::Mesos];

/// Every label the Heat drivers read.
pub const LABELS: &[Label] = &[
    Label {
        name: "kube_tag",
        coes: K8S,
        default: "v1.30.4",
        help: "Kubernetes version the nodes install (kubeadm, kubelet, control plane); also the cluster's coe_version, and what an upgrade moves to.",
    },
    Label {
        name: "pods_network_cidr",
        coes: K8S,
        default: "10.100.0.0/16",
        help: "Pod network CIDR given to kubeadm and the network driver (flannel or calico, the template's network_driver).",
    },
    Label {
        name: "service_cluster_ip_range",
        coes: K8S,
        default: "10.254.0.0/16",
        help: "Service (cluster IP) CIDR given to kubeadm.",
    },
    Label {
        name: "docker_version",
        coes: SWARM,
        default: "27.3.1",
        help: "Docker Engine version the nodes install from Docker's apt repository (the newest packaged release starting with it); also the cluster's coe_version, and what an upgrade moves to.",
    },
    Label {
        name: "mesos_version",
        coes: MESOS,
        default: "1.7.1",
        help: "Tag of the Mesos master and agent images; also the cluster's coe_version, and what an upgrade moves to.",
    },
    Label {
        name: "mesos_master_image",
        coes: MESOS,
        default: "mesosphere/mesos-master",
        help: "Image (without tag) of the Mesos master container.",
    },
    Label {
        name: "mesos_agent_image",
        coes: MESOS,
        default: "mesosphere/mesos-slave",
        help: "Image (without tag) of the Mesos agent container.",
    },
    Label {
        name: "marathon_image",
        coes: MESOS,
        default: "mesosphere/marathon:v1.6.322",
        help: "Image of Marathon, the cluster's API on the masters (port 8080).",
    },
    Label {
        name: "zookeeper_image",
        coes: MESOS,
        default: "zookeeper:3.8",
        help: "Image of the ZooKeeper the first master runs for the Mesos masters and Marathon.",
    },
    Label {
        name: "mesos_slave_isolation",
        coes: MESOS,
        default: "",
        help: "The agents' --isolation (as upstream's label); empty: Mesos' default.",
    },
    Label {
        name: "mesos_slave_image_providers",
        coes: MESOS,
        default: "",
        help: "The agents' --image_providers (as upstream's label), e.g. `docker`.",
    },
    Label {
        name: "mesos_slave_work_dir",
        coes: MESOS,
        default: "/tmp/mesos",
        help: "The agents' --work_dir (as upstream's label).",
    },
    Label {
        name: "mesos_slave_executor_env_variables",
        coes: MESOS,
        default: "",
        help: "The agents' --executor_environment_variables, a JSON object (as upstream's label).",
    },
    Label {
        name: "fixed_subnet_cidr",
        coes: ALL,
        default: "10.0.0.0/24",
        help: "CIDR of the private subnet made for the cluster when the template names no fixed_network.",
    },
    Label {
        name: "docker_volume_type",
        coes: ALL,
        default: "",
        help: "Cinder volume type of the container storage volumes (docker_volume_size > 0); empty: Cinder's default.",
    },
    Label {
        name: "master_lb_floating_ip_enabled",
        coes: ALL,
        default: "(floating_ip_enabled)",
        help: "Whether the API load balancer gets a floating IP; defaults to the cluster's floating_ip_enabled.",
    },
    Label {
        name: "availability_zone",
        coes: ALL,
        default: "",
        help: "Nova availability zone of the nodes; empty: Nova chooses.",
    },
];

/// The label naming a COE's version: what the nodes install, the
/// cluster's coe_version, and what an upgrade moves to.
pub fn version_label(coe: Coe) -> &'static str {
    match coe {
        Coe::Kubernetes => "kube_tag",
        Coe::Swarm => "docker_version",
        Coe::Mesos => "mesos_version",
    }
}

/// Where a COE's API listens on the masters (and the load balancer).
pub fn api_port(coe: Coe, tls: bool) -> u16 {
    match (coe, tls) {
        (Coe::Kubernetes, _) => 6443,
        (Coe::Swarm, true) => 2376,
        (Coe::Swarm, false) => 2375,
        (Coe::Mesos, _) => 8080,
    }
}

/// The installer variables of a COE's own (`coe_settings`).
fn coe_settings(spec: &ClusterSpec, coe: Coe) -> Map<String, Value> {
    let t = &spec.template;
    let mut m = Map::new();
    let mut set = |k: &str, v: String| {
        m.insert(k.to_string(), json!(v));
    };
    match coe {
        Coe::Kubernetes => {
            set(
                "NETWORK_DRIVER",
                t.network_driver.clone().unwrap_or_else(|| "flannel".into()),
            );
            set(
                "PODS_NETWORK_CIDR",
                label_or_default(spec, "pods_network_cidr"),
            );
            set(
                "SERVICE_CLUSTER_IP_RANGE",
                label_or_default(spec, "service_cluster_ip_range"),
            );
        }
        Coe::Swarm => {
            set(
                "NETWORK_DRIVER",
                t.network_driver.clone().unwrap_or_else(|| "docker".into()),
            );
        }
        Coe::Mesos => {
            let masters = spec
                .default_group("master")
                .and_then(|m| m.node_count)
                .unwrap_or(1)
                .max(1);
            set("MESOS_QUORUM", (masters / 2 + 1).to_string());
            for (var, label) in [
                ("MESOS_MASTER_IMAGE", "mesos_master_image"),
                ("MESOS_AGENT_IMAGE", "mesos_agent_image"),
                ("MARATHON_IMAGE", "marathon_image"),
                ("ZOOKEEPER_IMAGE", "zookeeper_image"),
                ("MESOS_AGENT_ISOLATION", "mesos_slave_isolation"),
                ("MESOS_AGENT_IMAGE_PROVIDERS", "mesos_slave_image_providers"),
                ("MESOS_AGENT_WORK_DIR", "mesos_slave_work_dir"),
                (
                    "MESOS_AGENT_EXECUTOR_ENV_VARIABLES",
                    "mesos_slave_executor_env_variables",
                ),
            ] {
                set(var, label_or_default(spec, label));
            }
        }
    }
    m
}

/// The labels table as Markdown (`docs/labels.md`).
pub fn labels_markdown() -> String {
    let mut out = String::from(
        "# Labels the Heat drivers read\n\n\
         Generated from `crates/heat/src/params.rs` (`LABELS`); a test keeps \
         this file equal to it (`MAGNUM_REGENERATE_DOCS=1 cargo test -p magnum-heat` \
         rewrites it).\n\n\
         | label | COEs | default | what it does |\n|---|---|---|---|\n",
    );
    for l in LABELS {
        let coes: Vec<&str> = l
            .coes
            .iter()
            .map(|c| match c {
                Coe::Kubernetes => "kubernetes",
                Coe::Swarm => "swarm-mode",
                Coe::Mesos => "mesos",
            })
            .collect();
        let default = if l.default.is_empty() {
            "(empty)".to_string()
        } else {
            format!("`{}`", l.default)
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            l.name,
            coes.join(", "),
            default,
            l.help
        ));
    }
    out
}

fn label(spec: &ClusterSpec, name: &str) -> Option<String> {
    let l = spec.cluster.labels.as_ref()?.get(name)?;
    Some(match l {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// A label's value, or its default from [`LABELS`].
fn label_or_default(spec: &ClusterSpec, name: &str) -> String {
    label(spec, name).unwrap_or_else(|| {
        LABELS
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.default.to_string())
            .unwrap_or_default()
    })
}

fn truthy(s: &str) -> bool {
    matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on")
}

/// The stack parameters of a cluster.
pub fn for_cluster(
    spec: &ClusterSpec,
    coe: Coe,
    magnum_url: &str,
    auth_url: &str,
    verify_ca: bool,
) -> Result<Map<String, Value>, DriverError> {
    let c = &spec.cluster;
    let t = &spec.template;
    let master = spec.default_group("master");
    let worker = spec.default_group("worker");
    let count = |g: Option<&magnum_core::objects::NodeGroup>, d: i64| {
        g.and_then(|g| g.node_count).unwrap_or(d)
    };
    let trust = spec.trust.clone().unwrap_or_default();
    let floating = c
        .floating_ip_enabled
        .or(t.floating_ip_enabled)
        .unwrap_or(true);
    let lb_floating = label(spec, "master_lb_floating_ip_enabled")
        .map(|v| truthy(&v))
        .unwrap_or(floating);
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut p = Map::new();
    let mut set = |k: &str, v: Value| {
        p.insert(k.to_string(), v);
    };
    set("cluster_uuid", json!(c.uuid));
    set(
        "cluster_name",
        json!(c.name.clone().unwrap_or_else(|| c.uuid.clone())),
    );
    set(
        "server_image",
        json!(master
            .and_then(|m| m.image_id.clone())
            .or_else(|| t.image_id.clone())
            .unwrap_or_default()),
    );
    set(
        "master_flavor",
        json!(master
            .and_then(|m| m.flavor_id.clone())
            .or_else(|| c.master_flavor_id.clone())
            .or_else(|| t.master_flavor_id.clone())
            .unwrap_or_else(|| "m1.small".into())),
    );
    set(
        "worker_flavor",
        json!(worker
            .and_then(|m| m.flavor_id.clone())
            .or_else(|| c.flavor_id.clone())
            .or_else(|| t.flavor_id.clone())
            .unwrap_or_else(|| "m1.small".into())),
    );
    set(
        "ssh_key_name",
        json!(c
            .keypair
            .clone()
            .or_else(|| t.keypair_id.clone())
            .unwrap_or_default()),
    );
    set("external_network", json!(s(&t.external_network_id)));
    set(
        "fixed_network",
        json!(c
            .fixed_network
            .clone()
            .or_else(|| t.fixed_network.clone())
            .unwrap_or_default()),
    );
    set(
        "fixed_subnet",
        json!(c
            .fixed_subnet
            .clone()
            .or_else(|| t.fixed_subnet.clone())
            .unwrap_or_default()),
    );
    set(
        "fixed_subnet_cidr",
        json!(label_or_default(spec, "fixed_subnet_cidr")),
    );
    set(
        "dns_nameserver",
        json!(t.dns_nameserver.clone().unwrap_or_else(|| "8.8.8.8".into())),
    );
    set("number_of_masters", json!(count(master, 1)));
    set("number_of_workers", json!(count(worker, 1)));
    set(
        "docker_volume_size",
        json!(c.docker_volume_size.or(t.docker_volume_size).unwrap_or(0)),
    );
    set(
        "docker_volume_type",
        json!(label_or_default(spec, "docker_volume_type")),
    );
    set("floating_ip_enabled", json!(floating));
    set(
        "master_lb_enabled",
        json!(c.master_lb_enabled.or(t.master_lb_enabled).unwrap_or(false)),
    );
    set("master_lb_floating_ip_enabled", json!(lb_floating));
    set(
        "availability_zone",
        json!(label_or_default(spec, "availability_zone")),
    );
    set("http_proxy", json!(s(&t.http_proxy)));
    set("https_proxy", json!(s(&t.https_proxy)));
    set("no_proxy", json!(s(&t.no_proxy)));
    set("insecure_registry_url", json!(s(&t.insecure_registry)));
    set("tls_disabled", json!(t.tls_disabled.unwrap_or(false)));
    set("verify_ca", json!(verify_ca));
    set("magnum_url", json!(magnum_url));
    set("auth_url", json!(auth_url));
    set("trustee_user_id", json!(trust.user_id));
    set("trustee_password", json!(trust.password));
    set("trust_id", json!(trust.trust_id));
    let tls = !t.tls_disabled.unwrap_or(false);
    set("api_port", json!(api_port(coe, tls)));
    set(
        "coe_version",
        json!(label_or_default(spec, version_label(coe))),
    );
    set("coe_settings", Value::Object(coe_settings(spec, coe)));
    set("ca_generation", json!(s(&c.ca_cert_ref)));
    Ok(p)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn labels_doc_is_the_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/labels.md");
        let want = labels_markdown();
        if std::env::var_os("MAGNUM_REGENERATE_DOCS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            have, want,
            "docs/labels.md is stale: MAGNUM_REGENERATE_DOCS=1 cargo test -p magnum-heat"
        );
    }

    /// A spec of `coe` whose labels are each set to a value of its own.
    fn spec_with_every_label(coe: Coe) -> ClusterSpec {
        let labels: Map<String, Value> = LABELS
            .iter()
            .map(|l| (l.name.to_string(), json!(format!("L-{}", l.name))))
            .collect();
        let coe_name = match coe {
            Coe::Kubernetes => "kubernetes",
            Coe::Swarm => "swarm-mode",
            Coe::Mesos => "mesos",
        };
        let cluster: magnum_core::objects::Cluster = serde_json::from_value(json!({
            "uuid": "u", "name": "c", "labels": labels,
        }))
        .unwrap();
        let template: magnum_core::objects::ClusterTemplate =
            serde_json::from_value(json!({"uuid": "t", "coe": coe_name})).unwrap();
        ClusterSpec {
            cluster,
            template,
            nodegroups: vec![],
            trust: None,
            as_service: false,
        }
    }

    #[test]
    fn every_label_reaches_the_stack_of_its_coes() {
        for coe in [Coe::Kubernetes, Coe::Swarm, Coe::Mesos] {
            let spec = spec_with_every_label(coe);
            let p = for_cluster(&spec, coe, "", "", true).unwrap();
            let sent = serde_json::to_string(&p).unwrap();
            for l in LABELS {
                let value = format!("L-{}", l.name);
                // master_lb_floating_ip_enabled is read as a boolean.
                if l.name == "master_lb_floating_ip_enabled" {
                    continue;
                }
                assert_eq!(
                    sent.contains(&format!("\"{value}\"")),
                    l.coes.contains(&coe),
                    "{} for {coe:?}: {sent}",
                    l.name
                );
            }
            // Every parameter sent is one the top template declares.
            let top = crate::templates::bundle(coe, crate::Os::Ubuntu, &Default::default())
                .unwrap()
                .template;
            let declared = crate::templates::declared(&top);
            for k in p.keys() {
                assert!(declared.contains(k), "{k} is no parameter of {coe:?}");
            }
        }
    }

    #[test]
    fn versions_and_api_ports() {
        for (coe, label) in [
            (Coe::Kubernetes, "kube_tag"),
            (Coe::Swarm, "docker_version"),
            (Coe::Mesos, "mesos_version"),
        ] {
            let p = for_cluster(&spec_with_every_label(coe), coe, "", "", true).unwrap();
            assert_eq!(p["coe_version"], json!(format!("L-{label}")));
        }
        assert_eq!(api_port(Coe::Swarm, true), 2376);
        assert_eq!(api_port(Coe::Swarm, false), 2375);
        assert_eq!(api_port(Coe::Kubernetes, false), 6443);
    }
}
