//! Cluster drivers and their registry.
//!
//! A driver builds clusters of some (server_type, os_distro, coe) kinds. The
//! registry is one plain function, [`registry`], that lists the drivers this
//! build ships minus those an operator disabled with `[drivers]
//! disabled_drivers`; [`DriverRegistry::select`] picks the driver for a
//! template the way upstream does: by the template's `driver` field when set,
//! otherwise by the kind it asks for.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::Config;
use crate::objects::{Cluster, ClusterTemplate, NodeGroup};
use crate::MagnumError;

/// What a driver operation returns.
pub type DriverFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DriverError>> + Send + 'a>>;

/// Why a driver operation did not happen.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriverError {
    /// The driver cannot do this (yet); nothing was touched.
    #[error("{0}")]
    NotAvailable(String),
    /// The operation was tried and failed.
    #[error("{0}")]
    Failed(String),
    /// The cloud could not be asked (unreachable, or answered that it is
    /// unavailable): nothing is known to have happened; try again later.
    #[error("{0}")]
    Unreachable(String),
}

/// Everything a driver sees of a cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterSpec {
    pub cluster: Cluster,
    pub template: ClusterTemplate,
    pub nodegroups: Vec<NodeGroup>,
    /// How to act for the cluster's owner (Keystone deployments).
    pub trust: Option<TrustCredentials>,
}

/// A cluster's trustee and the trust its owner gave it: what a driver
/// authenticates with to act for the owner, with no user token kept.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustCredentials {
    pub user_id: String,
    pub username: String,
    pub password: String,
    pub trust_id: String,
}

impl std::fmt::Debug for TrustCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustCredentials")
            .field("user_id", &self.user_id)
            .field("trust_id", &self.trust_id)
            .field("password", &"****")
            .finish()
    }
}

impl ClusterSpec {
    /// The default group of this role.
    pub fn default_group(&self, role: &str) -> Option<&NodeGroup> {
        self.nodegroups
            .iter()
            .find(|n| n.is_default.unwrap_or(false) && n.role.as_deref() == Some(role))
            .or_else(|| {
                self.nodegroups.iter().find(|n| {
                    let master = n.role.as_deref() == Some("master");
                    master == (role == "master")
                })
            })
    }
}

/// The stage an operation of the underlying orchestration is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    InProgress,
    Complete,
    Failed(String),
}

/// Which operation the orchestration last ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Delete,
    Rollback,
}

impl Action {
    /// Upstream's status name stem (`CREATE`, `UPDATE`, …).
    pub fn stem(self) -> &'static str {
        match self {
            Action::Create => "CREATE",
            Action::Update => "UPDATE",
            Action::Delete => "DELETE",
            Action::Rollback => "ROLLBACK",
        }
    }
}

/// What a status sync found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub action: Action,
    pub progress: Progress,
    pub api_address: Option<String>,
    pub coe_version: Option<String>,
    pub container_version: Option<String>,
    /// Node addresses by node group UUID.
    pub node_addresses: HashMap<String, Vec<String>>,
}

impl Observed {
    pub fn new(action: Action, progress: Progress) -> Self {
        Observed {
            action,
            progress,
            api_address: None,
            coe_version: None,
            container_version: None,
            node_addresses: HashMap::new(),
        }
    }
}

/// What a health sync found: upstream's `health_status` and its reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub status: String,
    pub reason: serde_json::Map<String, serde_json::Value>,
}

/// The answer of an operation a driver has not got.
fn not_available<T: Send + 'static>(driver: &str, what: &str) -> DriverFuture<'static, T> {
    let msg = format!("{what} is not available with the {driver} driver yet");
    Box::pin(async move { Err(DriverError::NotAvailable(msg)) })
}

/// One kind of cluster a driver can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterKind {
    pub server_type: &'static str,
    pub os: &'static str,
    pub coe: &'static str,
}

/// What a cluster driver declares and does. Operations start work in the
/// underlying orchestration and return; [`Driver::status`] tells later how
/// it went (the conductor's status sync asks). Every operation must be safe
/// to repeat: a conductor that takes over from a dead one runs the
/// operation again. An operation a driver lacks answers
/// [`DriverError::NotAvailable`].
pub trait Driver: Send + Sync + std::fmt::Debug {
    /// The name templates refer to in their `driver` field.
    fn name(&self) -> &'static str;
    /// The kinds of cluster this driver builds.
    fn provides(&self) -> &'static [ClusterKind];
    /// Where its template lives, for `magnum-driver-manage list-drivers -p`.
    fn template_path(&self) -> Option<String> {
        None
    }
    /// Beta drivers must be enabled with `[drivers] enabled_beta_drivers`.
    fn beta(&self) -> bool {
        false
    }
    /// Whether templates that name no driver and no OS may fall back to
    /// this one (test drivers say no).
    fn default_candidate(&self) -> bool {
        true
    }
    /// Refuse a master count this driver cannot build.
    fn validate_master_size(&self, _count: i64) -> Result<(), MagnumError> {
        Ok(())
    }
    /// Refuse resizing the masters to `count`.
    fn validate_master_resize(&self, _count: i64) -> Result<(), MagnumError> {
        Err(MagnumError::Invalid(
            "Resizing a nodegroup with role master is not supported.".into(),
        ))
    }
    /// Start building the cluster; the orchestration's id (`stack_id`).
    fn create(&self, _spec: &ClusterSpec, _timeout_minutes: i64) -> DriverFuture<'_, String> {
        not_available(self.name(), "Creating a cluster")
    }
    /// Apply the cluster's stored node counts and settings.
    fn update(&self, _spec: &ClusterSpec, _rollback: bool) -> DriverFuture<'_, ()> {
        not_available(self.name(), "Updating a cluster")
    }
    /// Resize one node group to `node_count`, removing these nodes first.
    fn resize(
        &self,
        _spec: &ClusterSpec,
        _nodegroup: &NodeGroup,
        _node_count: i64,
        _nodes_to_remove: &[String],
    ) -> DriverFuture<'_, ()> {
        not_available(self.name(), "Resizing a cluster")
    }
    /// Upgrade a node group to the template's versions.
    fn upgrade(
        &self,
        _spec: &ClusterSpec,
        _template: &ClusterTemplate,
        _max_batch_size: i64,
        _nodegroup: &NodeGroup,
    ) -> DriverFuture<'_, ()> {
        not_available(self.name(), "Upgrading a cluster")
    }
    /// Start tearing the cluster down.
    fn delete(&self, _spec: &ClusterSpec) -> DriverFuture<'_, ()> {
        not_available(self.name(), "Deleting a cluster")
    }
    /// Add a node group to a built cluster; the id of the stack the
    /// driver made for it, if it made one (recorded as its `stack_id`).
    fn create_nodegroup(
        &self,
        _spec: &ClusterSpec,
        _ng: &NodeGroup,
    ) -> DriverFuture<'_, Option<String>> {
        not_available(self.name(), "Creating a node group")
    }
    /// Apply a node group's stored settings.
    fn update_nodegroup(&self, _spec: &ClusterSpec, _ng: &NodeGroup) -> DriverFuture<'_, ()> {
        not_available(self.name(), "Updating a node group")
    }
    /// Remove a node group.
    fn delete_nodegroup(&self, _spec: &ClusterSpec, _ng: &NodeGroup) -> DriverFuture<'_, ()> {
        not_available(self.name(), "Deleting a node group")
    }
    /// Hand the cluster's nodes its new CA after a rotation.
    fn rotate_ca_certificate(&self, _spec: &ClusterSpec) -> DriverFuture<'_, ()> {
        not_available(self.name(), "Rotating the CA certificate")
    }
    /// Replace the credentials the cluster uses to reach the cloud.
    fn rotate_credential(&self, _spec: &ClusterSpec) -> DriverFuture<'_, ()> {
        not_available(self.name(), "Rotating credentials")
    }
    /// Where the last operation stands.
    fn status(&self, _spec: &ClusterSpec) -> DriverFuture<'_, Observed> {
        not_available(self.name(), "Syncing cluster status")
    }
    /// The cluster's health as its COE reports it; `None`: unknown.
    fn health(&self, _spec: &ClusterSpec) -> DriverFuture<'_, Option<Health>> {
        Box::pin(async { Ok(None) })
    }
}

/// A Heat driver: clusters become Heat stacks built from our templates.
#[derive(Debug)]
pub struct HeatDriver {
    name: &'static str,
    provides: &'static [ClusterKind],
}

impl Driver for HeatDriver {
    fn name(&self) -> &'static str {
        self.name
    }
    fn provides(&self) -> &'static [ClusterKind] {
        self.provides
    }
}

const fn kind(server_type: &'static str, os: &'static str, coe: &'static str) -> ClusterKind {
    ClusterKind {
        server_type,
        os,
        coe,
    }
}

/// The Heat drivers a release build ships, by name.
pub const HEAT_DRIVERS: [(&str, &[ClusterKind]); 4] = [
    (
        "k8s_fedora_coreos_v1",
        &[kind("vm", "fedora-coreos", "kubernetes")],
    ),
    ("k8s_ubuntu_v1", &[kind("vm", "ubuntu", "kubernetes")]),
    ("mesos_ubuntu_v1", &[kind("vm", "ubuntu", "mesos")]),
    (
        "swarm_mode_ubuntu_v1",
        &[kind("vm", "ubuntu", "swarm-mode")],
    ),
];

/// The drivers in force, in name order.
#[derive(Debug, Clone)]
pub struct DriverRegistry {
    drivers: Vec<Arc<dyn Driver>>,
    enabled_beta: Vec<String>,
    default_driver: Option<String>,
}

/// The registry for this configuration: every driver this build ships that
/// `[drivers] disabled_drivers` does not name.
pub fn registry(conf: &Config) -> DriverRegistry {
    registry_with(Vec::new(), conf)
}

/// Placeholders of the drivers a release build ships: they know their
/// names and kinds, and build nothing (the real ones live in
/// `magnum-heat`, which the binary registers).
pub fn shipped() -> Vec<Arc<dyn Driver>> {
    HEAT_DRIVERS
        .iter()
        .map(|(name, provides)| Arc::new(HeatDriver { name, provides }) as Arc<dyn Driver>)
        .collect()
}

/// The registry of `extra` (the binary adds the real Heat drivers, tests
/// their own) plus a placeholder for each shipped name `extra` lacks.
pub fn registry_with(extra: Vec<Arc<dyn Driver>>, conf: &Config) -> DriverRegistry {
    let mut all = extra;
    for d in shipped() {
        if !all.iter().any(|e| e.name() == d.name()) {
            all.push(d);
        }
    }
    DriverRegistry::new(all, conf)
}

impl DriverRegistry {
    /// A registry of the given drivers, filtered and tuned by `[drivers]`.
    pub fn new(drivers: Vec<Arc<dyn Driver>>, conf: &Config) -> Self {
        let disabled = conf.list("drivers", "disabled_drivers");
        let mut drivers: Vec<_> = drivers
            .into_iter()
            .filter(|d| !disabled.iter().any(|n| n == d.name()))
            .collect();
        drivers.sort_by_key(|d| d.name());
        DriverRegistry {
            drivers,
            enabled_beta: conf.list("drivers", "enabled_beta_drivers"),
            default_driver: conf.str("drivers", "default_driver"),
        }
    }

    pub fn drivers(&self) -> &[Arc<dyn Driver>] {
        &self.drivers
    }

    /// The driver for a template (`select` on its fields).
    pub fn for_template(&self, t: &ClusterTemplate) -> Result<Arc<dyn Driver>, MagnumError> {
        self.select(
            t.server_type.as_deref().unwrap_or("vm"),
            t.cluster_distro.as_deref(),
            t.coe.as_deref().unwrap_or_default(),
            t.driver.as_deref().filter(|d| !d.is_empty()),
        )
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<dyn Driver>> {
        self.drivers.iter().find(|d| d.name() == name)
    }

    fn usable(&self, driver: &Arc<dyn Driver>) -> bool {
        !driver.beta() || self.enabled_beta.iter().any(|n| n == driver.name())
    }

    /// Pick the driver for a template: the one its `driver` field names
    /// (which must exist and build this server type and COE), else the one
    /// that provides (server_type, os, coe); when the OS is not known, the
    /// default driver for this server type and COE.
    pub fn select(
        &self,
        server_type: &str,
        os: Option<&str>,
        coe: &str,
        driver_name: Option<&str>,
    ) -> Result<Arc<dyn Driver>, MagnumError> {
        let unsupported = || MagnumError::ClusterTypeNotSupported {
            server_type: server_type.to_string(),
            os: os.unwrap_or("None").to_string(),
            coe: coe.to_string(),
        };
        let builds_coe = |d: &Arc<dyn Driver>| {
            d.provides()
                .iter()
                .any(|k| k.server_type == server_type && k.coe == coe)
        };
        if let Some(name) = driver_name {
            let driver = self
                .by_name(name)
                .filter(|d| self.usable(d))
                .ok_or_else(|| MagnumError::ClusterDriverNotSupported(name.to_string()))?;
            return if builds_coe(driver) {
                Ok(driver.clone())
            } else {
                Err(unsupported())
            };
        }
        if let Some(os) = os {
            let matching = self.drivers.iter().find(|d| {
                d.provides()
                    .iter()
                    .any(|k| k.server_type == server_type && k.os == os && k.coe == coe)
            });
            return match matching {
                Some(driver) if self.usable(driver) => Ok(driver.clone()),
                _ => Err(unsupported()),
            };
        }
        // The OS is unknown (no image lookup, no cluster_distro): as
        // upstream, fall back to the default driver, which is
        // `[drivers] default_driver` or else the first by name, among those
        // that build this server type and COE.
        if let Some(default) = &self.default_driver {
            let driver = self
                .by_name(default)
                .filter(|d| self.usable(d))
                .ok_or_else(|| MagnumError::ClusterDriverNotSupported(default.clone()))?;
            return if builds_coe(driver) {
                Ok(driver.clone())
            } else {
                Err(unsupported())
            };
        }
        self.drivers
            .iter()
            .find(|d| self.usable(d) && d.default_candidate() && builds_coe(d))
            .cloned()
            .ok_or_else(unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> Config {
        Config::parse(text, "test.conf").unwrap()
    }

    #[test]
    fn selects_by_kind() {
        let reg = registry(&Config::defaults());
        let d = reg
            .select("vm", Some("fedora-coreos"), "kubernetes", None)
            .unwrap();
        assert_eq!(d.name(), "k8s_fedora_coreos_v1");
        let d = reg
            .select("vm", Some("ubuntu"), "swarm-mode", None)
            .unwrap();
        assert_eq!(d.name(), "swarm_mode_ubuntu_v1");
        let d = reg.select("vm", Some("ubuntu"), "mesos", None).unwrap();
        assert_eq!(d.name(), "mesos_ubuntu_v1");
    }

    #[test]
    fn unknown_kind_is_rejected_with_upstream_text() {
        let reg = registry(&Config::defaults());
        let err = reg
            .select("bm", Some("ubuntu"), "kubernetes", None)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Cluster type (bm, ubuntu, kubernetes) not supported."
        );
        assert_eq!(err.code(), 400);
        let err = reg.select("vm", None, "swarm", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Cluster type (vm, None, swarm) not supported."
        );
    }

    #[test]
    fn named_driver_must_exist_and_build_the_coe() {
        let reg = registry(&Config::defaults());
        let d = reg
            .select("vm", None, "kubernetes", Some("k8s_ubuntu_v1"))
            .unwrap();
        assert_eq!(d.name(), "k8s_ubuntu_v1");
        let err = reg
            .select("vm", None, "kubernetes", Some("nope"))
            .unwrap_err();
        assert_eq!(err.to_string(), "Cluster driver (nope) not supported.");
        assert!(reg
            .select("vm", None, "mesos", Some("k8s_ubuntu_v1"))
            .is_err());
    }

    #[test]
    fn disabled_drivers_are_gone() {
        let reg = registry(&conf("[drivers]\ndisabled_drivers = k8s_ubuntu_v1\n"));
        assert!(reg.by_name("k8s_ubuntu_v1").is_none());
        assert!(reg
            .select("vm", Some("ubuntu"), "kubernetes", None)
            .is_err());
    }

    #[test]
    fn unknown_os_takes_the_default_driver() {
        let reg = registry(&Config::defaults());
        let d = reg.select("vm", None, "kubernetes", None).unwrap();
        assert_eq!(d.name(), "k8s_fedora_coreos_v1", "first by name");
        let reg = registry(&conf("[drivers]\ndefault_driver = k8s_ubuntu_v1\n"));
        let d = reg.select("vm", None, "kubernetes", None).unwrap();
        assert_eq!(d.name(), "k8s_ubuntu_v1");
        assert!(reg.select("vm", None, "mesos", None).is_err());
        assert!(reg
            .select("vm", Some("debian"), "kubernetes", None)
            .is_err());
    }
}
