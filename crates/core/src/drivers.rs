//! Cluster drivers and their registry.
//!
//! A driver builds clusters of some (server_type, os_distro, coe) kinds. The
//! registry is one plain function, [`registry`], that lists the drivers this
//! build ships minus those an operator disabled with `[drivers]
//! disabled_drivers`; [`DriverRegistry::select`] picks the driver for a
//! template the way upstream does: by the template's `driver` field when set,
//! otherwise by the kind it asks for.

pub mod external;

use crate::config::opts;
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
    /// Act with the service's own credentials instead of the trust: a
    /// delete whose owner, trust or project is gone (Keystone refuses the
    /// trust), so that it still completes.
    pub as_service: bool,
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
    /// The orchestration's own account of a failure: each resource that
    /// failed of its own accord (recorded in the cluster's events).
    pub events: Vec<DriverEvent>,
}

/// One event of the orchestration, as a driver reports it (a Heat
/// resource that failed, with Heat's reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverEvent {
    /// The resource, as a path from the top of the orchestration.
    pub resource: String,
    /// Its status (`CREATE_FAILED`, …).
    pub status: String,
    pub reason: String,
    /// The node group it belongs to, when the driver knows.
    pub nodegroup_uuid: Option<String>,
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
            events: Vec::new(),
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
    /// Whether other conductors run it (`[drivers] external_drivers`): the
    /// API hands its clusters' operations to them, and ours leave those
    /// clusters alone.
    fn external(&self) -> bool {
        false
    }
    /// Whether it acts for the cluster's owner through a Keystone trust
    /// (the Heat drivers do), so that a cluster create is refused when
    /// none can be made.
    fn needs_trust(&self) -> bool {
        false
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
    /// Drive a failed build again (a create retried from CREATE_FAILED):
    /// the orchestration retries what failed and the status sync follows
    /// it as a create; the orchestration's id. Safe to repeat: a build
    /// already running again is left to run.
    fn retry_create(&self, _spec: &ClusterSpec, _timeout_minutes: i64) -> DriverFuture<'_, String> {
        not_available(self.name(), "Retrying a failed create")
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

/// A driver whose calls are timed into the driver call latency metric
/// (`crate::metrics::driver_call`); the registry wraps every driver so.
#[derive(Debug)]
struct Timed(Arc<dyn Driver>);

fn timed<'a, T: 'a>(call: &'static str, f: DriverFuture<'a, T>) -> DriverFuture<'a, T> {
    Box::pin(async move {
        let began = std::time::Instant::now();
        let r = f.await;
        crate::metrics::driver_call(call, began.elapsed());
        r
    })
}

impl Driver for Timed {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn provides(&self) -> &'static [ClusterKind] {
        self.0.provides()
    }
    fn template_path(&self) -> Option<String> {
        self.0.template_path()
    }
    fn beta(&self) -> bool {
        self.0.beta()
    }
    fn default_candidate(&self) -> bool {
        self.0.default_candidate()
    }
    fn external(&self) -> bool {
        self.0.external()
    }
    fn needs_trust(&self) -> bool {
        self.0.needs_trust()
    }
    fn validate_master_size(&self, count: i64) -> Result<(), MagnumError> {
        self.0.validate_master_size(count)
    }
    fn validate_master_resize(&self, count: i64) -> Result<(), MagnumError> {
        self.0.validate_master_resize(count)
    }
    fn create(&self, spec: &ClusterSpec, timeout_minutes: i64) -> DriverFuture<'_, String> {
        timed("create", self.0.create(spec, timeout_minutes))
    }
    fn retry_create(&self, spec: &ClusterSpec, timeout_minutes: i64) -> DriverFuture<'_, String> {
        timed("retry_create", self.0.retry_create(spec, timeout_minutes))
    }
    fn update(&self, spec: &ClusterSpec, rollback: bool) -> DriverFuture<'_, ()> {
        timed("update", self.0.update(spec, rollback))
    }
    fn resize(
        &self,
        spec: &ClusterSpec,
        nodegroup: &NodeGroup,
        node_count: i64,
        nodes_to_remove: &[String],
    ) -> DriverFuture<'_, ()> {
        timed(
            "resize",
            self.0.resize(spec, nodegroup, node_count, nodes_to_remove),
        )
    }
    fn upgrade(
        &self,
        spec: &ClusterSpec,
        template: &ClusterTemplate,
        max_batch_size: i64,
        nodegroup: &NodeGroup,
    ) -> DriverFuture<'_, ()> {
        timed(
            "upgrade",
            self.0.upgrade(spec, template, max_batch_size, nodegroup),
        )
    }
    fn delete(&self, spec: &ClusterSpec) -> DriverFuture<'_, ()> {
        timed("delete", self.0.delete(spec))
    }
    fn create_nodegroup(
        &self,
        spec: &ClusterSpec,
        ng: &NodeGroup,
    ) -> DriverFuture<'_, Option<String>> {
        timed("create_nodegroup", self.0.create_nodegroup(spec, ng))
    }
    fn update_nodegroup(&self, spec: &ClusterSpec, ng: &NodeGroup) -> DriverFuture<'_, ()> {
        timed("update_nodegroup", self.0.update_nodegroup(spec, ng))
    }
    fn delete_nodegroup(&self, spec: &ClusterSpec, ng: &NodeGroup) -> DriverFuture<'_, ()> {
        timed("delete_nodegroup", self.0.delete_nodegroup(spec, ng))
    }
    fn rotate_ca_certificate(&self, spec: &ClusterSpec) -> DriverFuture<'_, ()> {
        timed("rotate_ca_certificate", self.0.rotate_ca_certificate(spec))
    }
    fn rotate_credential(&self, spec: &ClusterSpec) -> DriverFuture<'_, ()> {
        timed("rotate_credential", self.0.rotate_credential(spec))
    }
    fn status(&self, spec: &ClusterSpec) -> DriverFuture<'_, Observed> {
        timed("status", self.0.status(spec))
    }
    fn health(&self, spec: &ClusterSpec) -> DriverFuture<'_, Option<Health>> {
        timed("health", self.0.health(spec))
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
    /// A registry of the given drivers, filtered and tuned by `[drivers]`,
    /// with the external drivers it declares (one of those stands in for a
    /// given driver of its name: other conductors serve it).
    pub fn new(drivers: Vec<Arc<dyn Driver>>, conf: &Config) -> Self {
        let disabled = conf.get(opts::drivers::DISABLED_DRIVERS);
        let external = external::registered(conf);
        let served_elsewhere: Vec<&str> = external.iter().map(|e| e.name()).collect();
        let mut drivers: Vec<_> = drivers
            .into_iter()
            .filter(|d| !served_elsewhere.contains(&d.name()))
            .chain(external)
            .filter(|d| !disabled.iter().any(|n| n == d.name()))
            .collect();
        drivers.sort_by_key(|d| d.name());
        let drivers = drivers
            .into_iter()
            .map(|d| Arc::new(Timed(d)) as Arc<dyn Driver>)
            .collect();
        DriverRegistry {
            drivers,
            enabled_beta: conf.get(opts::drivers::ENABLED_BETA_DRIVERS),
            default_driver: conf.get(opts::drivers::DEFAULT_DRIVER),
        }
    }

    pub fn drivers(&self) -> &[Arc<dyn Driver>] {
        &self.drivers
    }

    /// Whether any driver in force is served by other conductors.
    pub fn has_external(&self) -> bool {
        self.drivers.iter().any(|d| d.external())
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
            // A kind declared external is built by those conductors, even
            // where a driver of ours builds it too (templates our API made
            // name their driver, so only others are selected by kind).
            let builds = |d: &&Arc<dyn Driver>| {
                d.provides()
                    .iter()
                    .any(|k| k.server_type == server_type && k.os == os && k.coe == coe)
            };
            let matching = self
                .drivers
                .iter()
                .filter(builds)
                .find(|d| d.external())
                .or_else(|| self.drivers.iter().find(builds));
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

    #[test]
    fn external_drivers_are_selected_like_ours_and_stand_in_for_a_namesake() {
        let reg = registry(&conf(
            "[drivers]\nexternal_drivers = k8s_capi:vm:ubuntu:kubernetes,\
             k8s_capi:vm:flatcar:kubernetes, mesos_ubuntu_v1:vm:ubuntu:mesos\n",
        ));
        assert!(reg.has_external());
        let d = reg
            .select("vm", Some("flatcar"), "kubernetes", None)
            .unwrap();
        assert_eq!(d.name(), "k8s_capi");
        assert!(d.external());
        let d = reg
            .select("vm", None, "kubernetes", Some("k8s_capi"))
            .unwrap();
        assert!(d.external());
        assert!(reg.select("vm", None, "mesos", Some("k8s_capi")).is_err());
        // Not a fallback for templates that name no OS.
        let d = reg.select("vm", None, "kubernetes", None).unwrap();
        assert_eq!(d.name(), "k8s_fedora_coreos_v1");
        // A shipped name declared external is the external one.
        let mesos = reg.by_name("mesos_ubuntu_v1").unwrap();
        assert!(mesos.external());
        assert_eq!(
            reg.drivers()
                .iter()
                .filter(|d| d.name() == "mesos_ubuntu_v1")
                .count(),
            1
        );
        assert!(!registry(&Config::defaults()).has_external());
        // A kind one of ours builds too goes to the external driver.
        let reg = registry(&conf(
            "[drivers]\nexternal_drivers = zz_capi:vm:ubuntu:kubernetes\n",
        ));
        let d = reg
            .select("vm", Some("ubuntu"), "kubernetes", None)
            .unwrap();
        assert_eq!(d.name(), "zz_capi");
        let d = reg
            .select("vm", None, "kubernetes", Some("k8s_ubuntu_v1"))
            .unwrap();
        assert!(!d.external());
    }

    /// The metrics wrapper hands every call to the driver it wraps: a call
    /// it forgot would reach the trait's default and answer "not available"
    /// for a driver that implements it.
    #[test]
    fn timed_drivers_forward_every_call() {
        #[derive(Debug)]
        struct Probe;
        fn said<T: Send + 'static>(call: &'static str) -> DriverFuture<'static, T> {
            Box::pin(async move { Err(DriverError::NotAvailable(format!("probe {call}"))) })
        }
        impl Driver for Probe {
            fn name(&self) -> &'static str {
                "probe"
            }
            fn provides(&self) -> &'static [ClusterKind] {
                &[]
            }
            fn create(&self, _: &ClusterSpec, _: i64) -> DriverFuture<'_, String> {
                said("create")
            }
            fn retry_create(&self, _: &ClusterSpec, _: i64) -> DriverFuture<'_, String> {
                said("retry_create")
            }
            fn update(&self, _: &ClusterSpec, _: bool) -> DriverFuture<'_, ()> {
                said("update")
            }
            fn resize(
                &self,
                _: &ClusterSpec,
                _: &NodeGroup,
                _: i64,
                _: &[String],
            ) -> DriverFuture<'_, ()> {
                said("resize")
            }
            fn upgrade(
                &self,
                _: &ClusterSpec,
                _: &ClusterTemplate,
                _: i64,
                _: &NodeGroup,
            ) -> DriverFuture<'_, ()> {
                said("upgrade")
            }
            fn delete(&self, _: &ClusterSpec) -> DriverFuture<'_, ()> {
                said("delete")
            }
            fn create_nodegroup(
                &self,
                _: &ClusterSpec,
                _: &NodeGroup,
            ) -> DriverFuture<'_, Option<String>> {
                said("create_nodegroup")
            }
            fn update_nodegroup(&self, _: &ClusterSpec, _: &NodeGroup) -> DriverFuture<'_, ()> {
                said("update_nodegroup")
            }
            fn delete_nodegroup(&self, _: &ClusterSpec, _: &NodeGroup) -> DriverFuture<'_, ()> {
                said("delete_nodegroup")
            }
            fn rotate_ca_certificate(&self, _: &ClusterSpec) -> DriverFuture<'_, ()> {
                said("rotate_ca_certificate")
            }
            fn rotate_credential(&self, _: &ClusterSpec) -> DriverFuture<'_, ()> {
                said("rotate_credential")
            }
            fn status(&self, _: &ClusterSpec) -> DriverFuture<'_, Observed> {
                said("status")
            }
            fn health(&self, _: &ClusterSpec) -> DriverFuture<'_, Option<Health>> {
                said("health")
            }
        }
        // Each probe's future is ready at its first poll.
        fn answer<T>(mut f: DriverFuture<'_, T>) -> String {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            match f.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(Err(e)) => e.to_string(),
                _ => "no answer".into(),
            }
        }
        let d = Timed(Arc::new(Probe));
        let spec = ClusterSpec {
            cluster: Cluster::default(),
            template: ClusterTemplate::default(),
            nodegroups: Vec::new(),
            trust: None,
            as_service: false,
        };
        let (ng, t) = (NodeGroup::default(), ClusterTemplate::default());
        let answers = [
            ("create", answer(d.create(&spec, 1))),
            ("retry_create", answer(d.retry_create(&spec, 1))),
            ("update", answer(d.update(&spec, false))),
            ("resize", answer(d.resize(&spec, &ng, 1, &[]))),
            ("upgrade", answer(d.upgrade(&spec, &t, 1, &ng))),
            ("delete", answer(d.delete(&spec))),
            ("create_nodegroup", answer(d.create_nodegroup(&spec, &ng))),
            ("update_nodegroup", answer(d.update_nodegroup(&spec, &ng))),
            ("delete_nodegroup", answer(d.delete_nodegroup(&spec, &ng))),
            (
                "rotate_ca_certificate",
                answer(d.rotate_ca_certificate(&spec)),
            ),
            ("rotate_credential", answer(d.rotate_credential(&spec))),
            ("status", answer(d.status(&spec))),
            ("health", answer(d.health(&spec))),
        ];
        for (call, said) in answers {
            assert_eq!(said, format!("probe {call}"));
        }
    }
}
