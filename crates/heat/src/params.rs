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

/// Every label the Heat drivers read.
pub const LABELS: &[Label] = &[
    Label {
        name: "kube_tag",
        coes: K8S,
        default: "v1.30.4",
        help: "Kubernetes version the nodes install (kubeadm, kubelet, control plane); also the cluster's coe_version.",
    },
    Label {
        name: "fixed_subnet_cidr",
        coes: ALL,
        default: "10.0.0.0/24",
        help: "CIDR of the private subnet made for the cluster when the template names no fixed_network.",
    },
    Label {
        name: "pods_network_cidr",
        coes: K8S,
        default: "10.100.0.0/16",
        help: "Pod network CIDR given to kubeadm and the network driver.",
    },
    Label {
        name: "service_cluster_ip_range",
        coes: K8S,
        default: "10.254.0.0/16",
        help: "Service (cluster IP) CIDR given to kubeadm.",
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
    if coe == Coe::Kubernetes {
        set("kube_tag", json!(label_or_default(spec, "kube_tag")));
        set(
            "network_driver",
            json!(t.network_driver.clone().unwrap_or_else(|| "flannel".into())),
        );
        set(
            "pods_network_cidr",
            json!(label_or_default(spec, "pods_network_cidr")),
        );
        set(
            "service_cluster_ip_range",
            json!(label_or_default(spec, "service_cluster_ip_range")),
        );
    }
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

    #[test]
    fn every_label_is_a_template_parameter() {
        for l in LABELS {
            if l.coes.contains(&Coe::Kubernetes) {
                let t = crate::templates::files_of(Coe::Kubernetes)[0].1;
                assert!(
                    t.contains(&format!("  {}:", l.name)),
                    "{} is no parameter",
                    l.name
                );
            }
        }
    }
}
