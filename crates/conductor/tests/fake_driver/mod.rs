//! A cluster driver over a pretend cloud, for tests only (compiled in with
//! the `fake-driver` feature, never in a release build).
//!
//! The "cloud" is a directory (`$MAGNUM_FAKE_CLOUD`, else a temporary one):
//! one JSON file per stack records the last action started on it and when,
//! so every conductor process sees the same cloud and it outlives any of
//! them, as Heat would. An action takes `fake_seconds` (a cluster label,
//! default 1) to finish; labels steer the rest:
//! - `fake_call_seconds`: how long each driver call itself blocks;
//! - `fake_after_seconds`: how long a call blocks after the cloud did the
//!   work (an answer that is slow to come back);
//! - `fake_fail`: actions (create, update, delete) the cloud reports FAILED;
//! - `fake_fail_once`: actions the cloud reports FAILED the first time
//!   they run on a stack only (a retry then succeeds);
//! - `fake_fail_reason`: what the cloud says a failure was (default
//!   `fake cloud: <action> failed as asked`), reported as a failed
//!   resource `fake_server` (or `fake_fail_resource`) in the driver's
//!   events;
//! - `fake_refuse`: actions whose driver call errors at once;
//! - `fake_hang`: actions that never finish (timeouts);
//! - `fake_health`: the health status the COE reports;
//! - `fake_trust_refused`: actions (and `status`) that fail as Keystone's
//!   refusal of the owner's trust when the driver is asked with the trust,
//!   and work with the service's own credentials (`ClusterSpec::as_service`).
//!
//! A file `outage` in the cloud directory makes every operation call
//! answer that the cloud is unreachable while it exists (tests create and
//! remove it). A create of a cluster whose stack exists and was not
//! deleted adopts it, as Heat's driver adopts a stack found by name.
//!
//! For counting, the cloud keeps two logs beside the stacks: `calls.log`,
//! one line `<action> <cluster> <start> <end>` per driver call that
//! blocked (`fake_call_seconds`), and, when the driver has a tag
//! ([`FakeDriver::counting`], or `$MAGNUM_FAKE_STATUS_LOG` for a process),
//! `status.log`, one line `<tag> <cluster> <time>` per status call.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use magnum_core::drivers::{
    Action, ClusterKind, ClusterSpec, Driver, DriverError, DriverEvent, DriverFuture, Health,
    Observed, Progress,
};
use magnum_core::objects::{label_string, ClusterTemplate, NodeGroup};
use serde_json::{json, Value};

/// The fake driver's name (templates select it with `"driver": "fake"`).
pub const NAME: &str = "fake";

const KINDS: &[ClusterKind] = &[
    ClusterKind {
        server_type: "vm",
        os: "fake",
        coe: "kubernetes",
    },
    ClusterKind {
        server_type: "vm",
        os: "fake",
        coe: "swarm-mode",
    },
    ClusterKind {
        server_type: "vm",
        os: "fake",
        coe: "mesos",
    },
];

#[derive(Debug, Clone)]
pub struct FakeDriver {
    dir: PathBuf,
    /// Who this driver's status calls are logged as, if they are.
    tag: Option<String>,
}

/// One status call the cloud answered.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusCall {
    pub tag: String,
    pub cluster: String,
    pub at: f64,
}

/// One driver call that blocked, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowCall {
    pub action: String,
    pub cluster: String,
    pub start: f64,
    pub end: f64,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn label(spec: &ClusterSpec, key: &str) -> Option<String> {
    spec.cluster
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(label_string)
}

fn listed(spec: &ClusterSpec, key: &str, action: &str) -> bool {
    label(spec, key).is_some_and(|v| v.split(',').any(|a| a.trim() == action))
}

/// Keystone's refusal of the owner's trust, for the actions
/// `fake_trust_refused` lists, unless the driver acts as the service.
fn trust_refused(spec: &ClusterSpec, what: &str) -> Result<(), DriverError> {
    if listed(spec, "fake_trust_refused", what) && spec.trust.is_some() && !spec.as_service {
        return Err(DriverError::Failed(
            "Keystone refused authentication (401 Unauthorized)".into(),
        ));
    }
    Ok(())
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::Delete => "delete",
        Action::Rollback => "rollback",
    }
}

impl FakeDriver {
    /// The cloud in `$MAGNUM_FAKE_CLOUD`, else under the temporary directory.
    /// Status calls are logged under `$MAGNUM_FAKE_STATUS_LOG`, if set.
    pub fn from_env() -> Self {
        let dir = std::env::var_os("MAGNUM_FAKE_CLOUD")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("magnum-fake-cloud"));
        let tag = std::env::var("MAGNUM_FAKE_STATUS_LOG")
            .ok()
            .filter(|t| !t.trim().is_empty());
        FakeDriver { dir, tag }
    }

    pub fn new(dir: PathBuf) -> Self {
        FakeDriver { dir, tag: None }
    }

    /// Log this driver's status calls as `tag`'s.
    pub fn counting(self, tag: &str) -> Self {
        FakeDriver {
            tag: Some(tag.split_whitespace().collect::<Vec<_>>().join("_")),
            ..self
        }
    }

    fn append(&self, log: &str, line: String) -> Result<(), DriverError> {
        std::fs::create_dir_all(&self.dir)
            .and_then(|_| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join(log))
            })
            // One write per line: lines of several processes never mix.
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(|e| DriverError::Failed(format!("fake cloud: {e}")))
    }

    fn log_lines(&self, log: &str) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.dir.join(log))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect()
    }

    /// Every status call logged so far, by any tagged driver on this cloud.
    pub fn status_calls(&self) -> Vec<StatusCall> {
        self.log_lines("status.log")
            .into_iter()
            .filter_map(|f| match f.as_slice() {
                [tag, cluster, at] => Some(StatusCall {
                    tag: tag.clone(),
                    cluster: cluster.clone(),
                    at: at.parse().ok()?,
                }),
                _ => None,
            })
            .collect()
    }

    /// Every blocking driver call so far, with its start and end.
    pub fn slow_calls(&self) -> Vec<SlowCall> {
        self.log_lines("calls.log")
            .into_iter()
            .filter_map(|f| match f.as_slice() {
                [action, cluster, start, end] => Some(SlowCall {
                    action: action.clone(),
                    cluster: cluster.clone(),
                    start: start.parse().ok()?,
                    end: end.parse().ok()?,
                }),
                _ => None,
            })
            .collect()
    }

    fn stack_id(spec: &ClusterSpec) -> String {
        format!("fake-{}", spec.cluster.uuid)
    }

    fn file(&self, stack_id: &str) -> PathBuf {
        self.dir.join(format!("{stack_id}.json"))
    }

    /// Every action the cloud has seen on this cluster, oldest first.
    pub fn history(&self, cluster_uuid: &str) -> Vec<String> {
        let path = self.dir.join(format!("fake-{cluster_uuid}.log"));
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn start(&self, spec: &ClusterSpec, action: Action, what: &str) -> DriverFuture<'_, String> {
        self.start_with(spec, action, what, true)
    }

    /// Start `what` on the cluster's stack; with `adopt`, a create finds a
    /// stack that exists and keeps it as it is.
    fn start_with(
        &self,
        spec: &ClusterSpec,
        action: Action,
        what: &str,
        adopt: bool,
    ) -> DriverFuture<'_, String> {
        let spec = spec.clone();
        let what = what.to_string();
        Box::pin(async move {
            let call = label(&spec, "fake_call_seconds")
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(0.0);
            if call > 0.0 {
                let start = now();
                tokio::time::sleep(Duration::from_secs_f64(call)).await;
                let line = format!("{what} {} {start:.6} {:.6}\n", spec.cluster.uuid, now());
                self.append("calls.log", line)?;
            }
            if self.dir.join("outage").exists() {
                return Err(DriverError::Unreachable(format!(
                    "the fake cloud is unreachable (to {what} cluster {})",
                    spec.cluster.uuid
                )));
            }
            if listed(&spec, "fake_refuse", &what) {
                return Err(DriverError::Failed(format!(
                    "fake cloud refused to {what} the cluster"
                )));
            }
            trust_refused(&spec, &what)?;
            std::fs::create_dir_all(&self.dir)
                .map_err(|e| DriverError::Failed(format!("fake cloud: {e}")))?;
            let id = Self::stack_id(&spec);
            let log = self.dir.join(format!("fake-{}.log", spec.cluster.uuid));
            let stack = std::fs::read_to_string(self.file(&id))
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok());
            // How many times this action has run on the stack.
            let runs = match &stack {
                Some(s) if s["what"] == what.as_str() => s["runs"].as_u64().unwrap_or(1) + 1,
                _ => 1,
            };
            if action == Action::Create && adopt && stack.is_some_and(|s| s["action"] != "delete") {
                let mut text = std::fs::read_to_string(&log).unwrap_or_default();
                text.push_str("adopt\n");
                std::fs::write(&log, text)
                    .map_err(|e| DriverError::Failed(format!("fake cloud: {e}")))?;
                return Ok(id);
            }
            let record = json!({
                "action": action_name(action),
                "what": what,
                "started": now(),
                "runs": runs,
            });
            std::fs::write(self.file(&id), record.to_string())
                .map_err(|e| DriverError::Failed(format!("fake cloud: {e}")))?;
            let mut text = std::fs::read_to_string(&log).unwrap_or_default();
            text.push_str(&what);
            text.push('\n');
            std::fs::write(log, text)
                .map_err(|e| DriverError::Failed(format!("fake cloud: {e}")))?;
            if let Some(after) = label(&spec, "fake_after_seconds").and_then(|s| s.parse().ok()) {
                tokio::time::sleep(Duration::from_secs_f64(after)).await;
            }
            Ok(id)
        })
    }

    fn done(&self, spec: &ClusterSpec, action: Action, what: &str) -> DriverFuture<'_, ()> {
        let started = self.start(spec, action, what);
        Box::pin(async move { started.await.map(|_| ()) })
    }
}

impl Driver for FakeDriver {
    fn name(&self) -> &'static str {
        NAME
    }

    fn provides(&self) -> &'static [ClusterKind] {
        KINDS
    }

    fn default_candidate(&self) -> bool {
        false
    }

    fn validate_master_size(&self, count: i64) -> Result<(), magnum_core::MagnumError> {
        if count % 2 == 0 {
            return Err(magnum_core::MagnumError::Invalid(format!(
                "master nodegroup size of {count} is invalid, size cannot be an even number."
            )));
        }
        Ok(())
    }

    fn validate_master_resize(&self, count: i64) -> Result<(), magnum_core::MagnumError> {
        self.validate_master_size(count)
    }

    fn create(&self, spec: &ClusterSpec, _timeout: i64) -> DriverFuture<'_, String> {
        self.start(spec, Action::Create, "create")
    }

    fn retry_create(&self, spec: &ClusterSpec, _timeout: i64) -> DriverFuture<'_, String> {
        self.start_with(spec, Action::Create, "create", false)
    }

    fn update(&self, spec: &ClusterSpec, _rollback: bool) -> DriverFuture<'_, ()> {
        self.done(spec, Action::Update, "update")
    }

    fn resize(
        &self,
        spec: &ClusterSpec,
        _ng: &NodeGroup,
        _count: i64,
        _remove: &[String],
    ) -> DriverFuture<'_, ()> {
        self.done(spec, Action::Update, "resize")
    }

    fn upgrade(
        &self,
        spec: &ClusterSpec,
        _t: &ClusterTemplate,
        _batch: i64,
        _ng: &NodeGroup,
    ) -> DriverFuture<'_, ()> {
        self.done(spec, Action::Update, "upgrade")
    }

    fn delete(&self, spec: &ClusterSpec) -> DriverFuture<'_, ()> {
        self.done(spec, Action::Delete, "delete")
    }

    /// The group's pretend stack is `<cluster stack>-<group uuid>`.
    fn create_nodegroup(
        &self,
        spec: &ClusterSpec,
        ng: &NodeGroup,
    ) -> DriverFuture<'_, Option<String>> {
        let started = self.start(spec, Action::Update, "nodegroup_create");
        let uuid = ng.uuid.clone();
        Box::pin(async move { started.await.map(|id| Some(format!("{id}-{uuid}"))) })
    }

    fn update_nodegroup(&self, spec: &ClusterSpec, _ng: &NodeGroup) -> DriverFuture<'_, ()> {
        self.done(spec, Action::Update, "nodegroup_update")
    }

    fn delete_nodegroup(&self, spec: &ClusterSpec, _ng: &NodeGroup) -> DriverFuture<'_, ()> {
        self.done(spec, Action::Update, "nodegroup_delete")
    }

    fn rotate_ca_certificate(&self, spec: &ClusterSpec) -> DriverFuture<'_, ()> {
        self.done(spec, Action::Update, "rotate_ca_certificate")
    }

    fn rotate_credential(&self, spec: &ClusterSpec) -> DriverFuture<'_, ()> {
        let spec = spec.clone();
        Box::pin(async move {
            if self.dir.join("outage").exists() {
                return Err(DriverError::Unreachable(
                    "the fake cloud is unreachable (to rotate credentials)".into(),
                ));
            }
            if listed(&spec, "fake_refuse", "rotate_credential") {
                return Err(DriverError::NotAvailable("rotation refused".into()));
            }
            std::fs::create_dir_all(&self.dir)
                .map_err(|e| DriverError::Failed(format!("fake cloud: {e}")))?;
            let log = self.dir.join(format!("fake-{}.log", spec.cluster.uuid));
            let mut text = std::fs::read_to_string(&log).unwrap_or_default();
            text.push_str("rotate_credential\n");
            std::fs::write(log, text).map_err(|e| DriverError::Failed(format!("fake cloud: {e}")))
        })
    }

    fn status(&self, spec: &ClusterSpec) -> DriverFuture<'_, Observed> {
        let spec = spec.clone();
        Box::pin(async move {
            if let Some(tag) = &self.tag {
                let line = format!("{tag} {} {:.6}\n", spec.cluster.uuid, now());
                self.append("status.log", line)?;
            }
            trust_refused(&spec, "status")?;
            let id = spec
                .cluster
                .stack_id
                .clone()
                .unwrap_or_else(|| Self::stack_id(&spec));
            let Ok(text) = std::fs::read_to_string(self.file(&id)) else {
                // No stack: as Heat's "not found", nothing is left.
                return Ok(Observed::new(Action::Delete, Progress::Complete));
            };
            let record: Value = serde_json::from_str(&text)
                .map_err(|e| DriverError::Failed(format!("fake cloud: {e}")))?;
            let action = match record["action"].as_str() {
                Some("create") => Action::Create,
                Some("delete") => Action::Delete,
                _ => Action::Update,
            };
            let what = record["what"].as_str().unwrap_or_default().to_string();
            let seconds = label(&spec, "fake_seconds")
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(1.0);
            let started = record["started"].as_f64().unwrap_or(0.0);
            let progress = if listed(&spec, "fake_hang", &what) || now() < started + seconds {
                Progress::InProgress
            } else if listed(&spec, "fake_fail", &what)
                || (listed(&spec, "fake_fail_once", &what) && record["runs"].as_u64() == Some(1))
            {
                Progress::Failed(
                    label(&spec, "fake_fail_reason")
                        .unwrap_or_else(|| format!("fake cloud: {what} failed as asked")),
                )
            } else {
                Progress::Complete
            };
            let mut o = Observed::new(action, progress);
            if let Progress::Failed(reason) = &o.progress {
                o.events.push(DriverEvent {
                    resource: label(&spec, "fake_fail_resource")
                        .unwrap_or_else(|| "fake_server".into()),
                    status: format!("{}_FAILED", action.stem()),
                    reason: reason.clone(),
                    nodegroup_uuid: None,
                });
            }
            for (i, ng) in spec.nodegroups.iter().enumerate() {
                let n = ng.node_count.unwrap_or(0);
                let addrs = (1..=n).map(|k| format!("10.0.{i}.{k}")).collect();
                o.node_addresses.insert(ng.uuid.clone(), addrs);
            }
            if let Some(m) = spec.default_group("master") {
                let i = spec
                    .nodegroups
                    .iter()
                    .position(|n| n.uuid == m.uuid)
                    .unwrap_or(0);
                // Where each COE's clients connect, as the Heat drivers report it.
                o.api_address = Some(match spec.template.coe.as_deref() {
                    Some("swarm-mode") | Some("swarm") => format!("tcp://10.0.{i}.1:2376"),
                    Some("mesos") => format!("http://10.0.{i}.1:8080"),
                    _ => format!("https://10.0.{i}.1:6443"),
                });
            }
            o.coe_version = Some("v1.30.0-fake".into());
            o.container_version = Some("1.0.0-fake".into());
            Ok(o)
        })
    }

    fn health(&self, spec: &ClusterSpec) -> DriverFuture<'_, Option<Health>> {
        let status = label(spec, "fake_health");
        Box::pin(async move {
            Ok(status.map(|s| {
                let mut reason = serde_json::Map::new();
                reason.insert("api".into(), json!("ok"));
                Health { status: s, reason }
            }))
        })
    }
}
