//! Magnum's conductor: it runs cluster and node group operations through
//! the cluster's driver and keeps each cluster's status true.
//!
//! Work arrives two ways. Our API queues every operation in the database
//! (`rs_cluster_operation`, see `magnum_db::Operation`) and casts it under
//! upstream's RPC method name with the operation's id in the context; any
//! conductor that receives the cast runs it. Upstream's API casts the same
//! methods without queueing; we queue them on arrival ("adopt" them) and
//! run them alike. Either way an operation is claimed under a lease, so
//! many conductors can run at once: each operation runs on one of them, and
//! when a conductor dies its lease runs out and another one's sweep takes
//! the operation over ([`Conductor::tick`]).
//!
//! A driver operation only starts work; the periodic status sync asks the
//! driver where it stands and moves the cluster to `*_COMPLETE` or
//! `*_FAILED`, enforcing `create_timeout` (module `sync`).

pub mod certs;
mod ops;
mod sync;
pub mod trusts;

pub mod notify;

#[cfg(feature = "fake-driver")]
#[path = "../tests/fake_driver/mod.rs"]
pub mod fake_driver;

use std::sync::Arc;
use std::time::Duration;

use magnum_core::config::Config;
use magnum_core::drivers::DriverRegistry;
use magnum_core::{MagnumError, RequestContext};
use magnum_db::{Database, DbError};
use magnum_rpc::{Handler, HandlerFuture, RemoteError};
use serde_json::{Map, Value};

pub use notify::Notifier;
pub use ops::{gate_for, refusal};

/// The context key naming the queued operation a cast is about.
pub const OPERATION_KEY: &str = "magnum_rs_operation";

/// The cluster and node group operations, by upstream method name.
pub const OPERATIONS: &[&str] = &[
    "cluster_create",
    "cluster_delete",
    "cluster_update",
    "cluster_resize",
    "cluster_upgrade",
    "nodegroup_create",
    "nodegroup_update",
    "nodegroup_delete",
    "rotate_ca_certificate",
];

/// Upstream conductor methods that come with later work (certificates,
/// trusts, federations, remote objects).
pub const NOT_YET: &[&str] = &[
    "federation_create",
    "federation_update",
    "federation_delete",
    "object_class_action_versions",
    "object_action",
    "object_backport_versions",
];

/// Timings of a conductor.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The name this conductor claims operations under.
    pub host: String,
    /// Seconds a claim lasts between renewals.
    pub lease: i64,
    /// Seconds a queued operation waits for its cast before a sweep takes it.
    pub grace: i64,
    /// Time between sweeps and status syncs.
    pub sync_interval: Duration,
    /// Time between health syncs.
    pub health_interval: Duration,
    /// Seconds before an operation whose cloud was unreachable runs again.
    pub retry_delay: i64,
}

impl Settings {
    pub fn from_conf(conf: &Config, host: &str) -> Self {
        let int = |s: &str, k: &str, d: i64| conf.int(s, k).unwrap_or(d);
        Settings {
            host: host.to_string(),
            lease: int("conductor", "operation_lease", 30).max(2),
            grace: int("conductor", "operation_grace", 10).max(0),
            sync_interval: Duration::from_secs(int("conductor", "sync_interval", 10).max(1) as u64),
            health_interval: Duration::from_secs(
                int("kubernetes", "health_polling_interval", 60).max(1) as u64,
            ),
            retry_delay: int("conductor", "operation_retry_delay", 30).max(1),
        }
    }
}

pub(crate) struct Inner {
    pub db: Database,
    pub drivers: DriverRegistry,
    pub settings: Settings,
    pub notifier: Notifier,
    pub trusts: Option<trusts::TrustManager>,
    pub certs: certs::CertManager,
}

/// The conductor's endpoints and background work.
#[derive(Clone)]
pub struct Conductor {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Conductor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conductor")
            .field("host", &self.inner.settings.host)
            .finish()
    }
}

/// Why an operation could not run (reported to RPC callers).
#[derive(Debug, thiserror::Error)]
pub enum ConductorError {
    #[error(transparent)]
    Magnum(#[from] MagnumError),
    #[error("database: {0}")]
    Db(#[from] DbError),
    /// The operation could not run now (its cloud is unreachable): keep it
    /// queued and run it again later.
    #[error("will retry: {0}")]
    Retry(String),
}

fn failure(class: &str, module: &str, message: String) -> RemoteError {
    RemoteError {
        class: class.into(),
        module: module.into(),
        message,
        ..Default::default()
    }
}

impl From<ConductorError> for RemoteError {
    fn from(e: ConductorError) -> Self {
        match e {
            ConductorError::Magnum(m) => {
                let class = match (&m, m.code()) {
                    (MagnumError::NotSupported(_) | MagnumError::NotSupportedMsg(_), _) => {
                        "NotSupported"
                    }
                    (_, 404) => "ClusterNotFound",
                    (_, 409) => "Conflict",
                    (_, 403) => "NotAuthorized",
                    _ => "InvalidParameterValue",
                };
                failure(class, "magnum.common.exception", m.to_string())
            }
            ConductorError::Retry(r) => failure(
                "MagnumException",
                "magnum.common.exception",
                format!("will retry: {r}"),
            ),
            ConductorError::Db(d) => failure(
                "MagnumException",
                "magnum.common.exception",
                format!("database: {d}"),
            ),
        }
    }
}

impl Conductor {
    pub fn new(
        db: Database,
        drivers: DriverRegistry,
        settings: Settings,
        notifier: Notifier,
    ) -> Self {
        Conductor {
            inner: Arc::new(Inner {
                db,
                drivers,
                settings,
                notifier,
                trusts: None,
                certs: certs::CertManager::with_settings(Default::default()),
            }),
        }
    }

    /// Keep cluster certificates with `certs` (`[certificates]`, `[x509]`).
    pub fn with_certs(self, certs: certs::CertManager) -> Self {
        let inner = self.into_inner();
        Conductor {
            inner: Arc::new(Inner { certs, ..inner }),
        }
    }

    fn into_inner(self) -> Inner {
        match std::sync::Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => Inner {
                db: shared.db.clone(),
                drivers: shared.drivers.clone(),
                settings: shared.settings.clone(),
                notifier: shared.notifier.clone(),
                trusts: shared.trusts.clone(),
                certs: shared.certs.clone(),
            },
        }
    }

    /// Remove clusters' Keystone trusts with `trusts` when they are gone.
    pub fn with_trusts(self, trusts: Option<trusts::TrustManager>) -> Self {
        let inner = self.into_inner();
        Conductor {
            inner: Arc::new(Inner { trusts, ..inner }),
        }
    }

    /// A deleted cluster's last steps, once its stack is gone: its trust
    /// and trustee, its certificates, then its rows. Each step is safe to
    /// repeat, and the rows (which hold the references to the others) go
    /// last, so a conductor dying midway leaves a cluster still
    /// `DELETE_IN_PROGRESS` that the next attempt finishes. `Ok(true)` when
    /// this call removed the rows (another conductor may have). A trust
    /// Keystone would not delete keeps the cluster, with the reason, for a
    /// retry (as upstream, whose conductor retries it at every poll).
    pub(crate) async fn retire(
        &self,
        cluster: &magnum_core::objects::Cluster,
    ) -> Result<bool, ConductorError> {
        let db = &self.inner.db;
        if let Err(e) = self.forget_trust(&cluster.uuid).await {
            return self
                .retry_later(
                    &cluster.uuid,
                    magnum_core::objects::status::DELETE_IN_PROGRESS,
                    format!("Failed to delete the cluster's trust or trustee: {e}"),
                )
                .await;
        }
        // Storage that fails to delete a certificate is logged and left
        // behind, as upstream does: it must not keep a cluster alive.
        self.inner.certs.delete(db, cluster).await;
        Ok(db.cluster_destroy(&cluster.uuid).await?)
    }

    /// Remove a cluster's trust and trustee, then their record.
    async fn forget_trust(&self, cluster_uuid: &str) -> Result<(), String> {
        let db = &self.inner.db;
        let t = match db.trust_get(cluster_uuid).await {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        match &self.inner.trusts {
            Some(m) => m.delete(&t).await?,
            None => tracing::warn!(
                "cluster {cluster_uuid} had a trust but [trust] is not configured here; \
                 removing the record only"
            ),
        }
        db.trust_forget(cluster_uuid)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Sweep due operations, then sync the status of clusters in progress.
    /// Every conductor runs this every `sync_interval`.
    pub async fn tick(&self) {
        match self
            .inner
            .db
            .operations_due(self.inner.settings.grace)
            .await
        {
            Ok(due) => {
                for op in due {
                    tracing::info!(
                        "taking over {} of cluster {} (attempt {})",
                        op.method,
                        op.cluster_uuid,
                        op.attempts + 1
                    );
                    if let Err(e) = self.work(&op.uuid).await {
                        tracing::warn!("{} of cluster {}: {e}", op.method, op.cluster_uuid);
                    }
                }
            }
            Err(e) => tracing::warn!("cannot read queued operations: {e}"),
        }
        self.sync_status().await;
    }

    /// Run [`Conductor::tick`] every `sync_interval` and the health sync
    /// every `health_interval`, until the task is dropped.
    pub fn spawn_background(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.inner.settings.sync_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut health = tokio::time::interval(me.inner.settings.health_interval);
            health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => me.tick().await,
                    _ = health.tick() => me.sync_health().await,
                }
            }
        })
    }

    async fn dispatch(
        &self,
        context: Map<String, Value>,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<Value, ConductorError> {
        let op_uuid = context
            .get(OPERATION_KEY)
            .and_then(Value::as_str)
            .map(str::to_string);
        let op_uuid = match op_uuid {
            Some(u) => u,
            None => {
                let ctx = RequestContext::from_wire(&context);
                match self.adopt(&ctx, context, method, args).await? {
                    Some(u) => u,
                    None => return Ok(Value::Null),
                }
            }
        };
        let cluster = self.work(&op_uuid).await?;
        Ok(cluster.map_or(Value::Null, |c| magnum_core::ovo::encode_stored(&c)))
    }
}

impl Handler for Conductor {
    fn handle(
        &self,
        context: Map<String, Value>,
        method: String,
        args: Map<String, Value>,
    ) -> HandlerFuture {
        let me = self.clone();
        Box::pin(async move {
            match method.as_str() {
                // Upstream's listener: "I am alive".
                "ping_conductor" => Ok(Value::Bool(true)),
                "sign_certificate" => me.sign_certificate(&args).await.map_err(RemoteError::from),
                "get_ca_certificate" => me
                    .get_ca_certificate(&args)
                    .await
                    .map_err(RemoteError::from),
                "credential_rotate" => me
                    .credential_rotate(&args)
                    .await
                    .map(|_| Value::Null)
                    .map_err(RemoteError::from),
                m if OPERATIONS.contains(&m) => me
                    .dispatch(context, m, args)
                    .await
                    .map_err(RemoteError::from),
                m if NOT_YET.contains(&m) => {
                    tracing::warn!("conductor method {m} called; not available yet");
                    Err(failure(
                        "NotImplementedError",
                        "builtins",
                        format!("{m} is not available in this conductor yet"),
                    ))
                }
                m => Err(failure(
                    "NoSuchMethod",
                    "oslo_messaging.rpc.dispatcher",
                    format!("Endpoint does not support RPC method {m}"),
                )),
            }
        })
    }
}
