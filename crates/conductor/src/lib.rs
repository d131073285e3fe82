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

mod attempts;
mod ops;
mod sync;

pub mod notify;

#[cfg(feature = "fake-driver")]
#[path = "../tests/fake_driver/mod.rs"]
pub mod fake_driver;

use std::sync::Arc;
use std::time::Duration;

use magnum_certs::CertManager;
use magnum_core::config::Config;
use magnum_core::drivers::DriverRegistry;
use magnum_core::{MagnumError, RequestContext};
use magnum_db::{Database, DbError};
use magnum_openstack::trusts::TrustManager;
use magnum_rpc::{Handler, HandlerFuture, RemoteError};
use serde_json::{Map, Value};

pub use attempts::HeldOperation;
pub use notify::Notifier;

/// The context key naming the queued operation a cast is about.
pub use magnum_db::OPERATION_KEY;

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
    /// Seconds without a heartbeat after which a conductor counts as down
    /// (`[DEFAULT] service_down_time`): the live ones share the status sync.
    pub down_after: i64,
    /// How many operations a sweep runs at once.
    pub sweep_concurrency: usize,
    /// How many clusters a status or health sync asks their driver about
    /// at once.
    pub sync_concurrency: usize,
    /// `[cluster_events] max_age` (seconds) and `max_per_cluster`: how
    /// long and how many of each cluster's events are kept (0: unbounded).
    pub events_max_age: i64,
    pub events_max_per_cluster: i64,
}

impl Settings {
    pub fn from_conf(conf: &Config, host: &str) -> Self {
        use magnum_core::config::opts::{
            cluster_events, conductor as c, default, kubernetes, Int, Opt,
        };
        let int = |o: Opt<Int>, d: i64| conf.get(o).unwrap_or(d);
        Settings {
            host: host.to_string(),
            lease: int(c::OPERATION_LEASE, 30).max(2),
            grace: int(c::OPERATION_GRACE, 10).max(0),
            sync_interval: Duration::from_secs(int(c::SYNC_INTERVAL, 10).max(1) as u64),
            health_interval: Duration::from_secs(
                int(kubernetes::HEALTH_POLLING_INTERVAL, 60).max(1) as u64,
            ),
            retry_delay: int(c::OPERATION_RETRY_DELAY, 30).max(1),
            down_after: int(default::SERVICE_DOWN_TIME, 180),
            sweep_concurrency: int(c::SWEEP_CONCURRENCY, 16).max(1) as usize,
            sync_concurrency: int(c::SYNC_CONCURRENCY, 16).max(1) as usize,
            events_max_age: int(cluster_events::MAX_AGE, 2_592_000).max(0),
            events_max_per_cluster: int(cluster_events::MAX_PER_CLUSTER, 1000).max(0),
        }
    }
}

pub(crate) struct Inner {
    pub db: Database,
    pub drivers: DriverRegistry,
    pub settings: Settings,
    pub notifier: Notifier,
    pub trusts: Option<TrustManager>,
    pub certs: CertManager,
    /// Bounds the operations this conductor's sweeps run at once.
    pub sweep_slots: Arc<tokio::sync::Semaphore>,
    /// Operations a sweep of this conductor has started and not ended.
    pub swept: Held,
    /// Operations a runner of this conductor holds right now.
    pub running: Held,
    /// The attempts running now, with their leases (for reports).
    pub attempts: attempts::Attempts,
}

/// A set of operation ids held by this process, each entry released when
/// its [`Hold`] is dropped (even by a panic).
#[derive(Clone, Default)]
pub(crate) struct Held(Arc<std::sync::Mutex<std::collections::HashSet<String>>>);

pub(crate) struct Hold {
    set: Held,
    uuid: String,
}

impl Held {
    /// Hold `uuid`; `None` if it is already held.
    pub fn hold(&self, uuid: &str) -> Option<Hold> {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        set.insert(uuid.to_string()).then(|| Hold {
            set: self.clone(),
            uuid: uuid.to_string(),
        })
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut set = self.set.0.lock().unwrap_or_else(|p| p.into_inner());
        set.remove(&self.uuid);
    }
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

/// Why a step of an operation failed for good, in the words the cluster's
/// (or node group's) `status_reason` shows. A step that may succeed later
/// is a [`ConductorError`] instead (`Retry`, `LeaseLost`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reason(pub String);

impl std::ops::Deref for Reason {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an operation could not run (reported to RPC callers).
#[derive(Debug, thiserror::Error)]
pub enum ConductorError {
    #[error(transparent)]
    Magnum(#[from] MagnumError),
    #[error(transparent)]
    Db(#[from] DbError),
    /// The operation could not run now (its cloud is unreachable): keep it
    /// queued and run it again later.
    #[error("will retry: {0}")]
    Retry(String),
    /// The attempt no longer holds its operation (its lease was taken over
    /// or could not be renewed): it stops and writes nothing.
    #[error("the operation's lease was lost")]
    LeaseLost,
}

/// Why a cluster's trust and trustee could not be forgotten.
#[derive(Debug, thiserror::Error)]
enum ForgetTrustError {
    #[error("cannot read or remove the cluster's trust record")]
    Db(#[from] DbError),
    #[error("Keystone did not delete the trust or trustee")]
    Keystone(#[from] magnum_openstack::trusts::TrustError),
}

impl ForgetTrustError {
    /// The text the cluster's status reason shows: the database's words,
    /// or Keystone's ([`TrustError::reason`](magnum_openstack::trusts::TrustError::reason)).
    fn reason(&self) -> String {
        match self {
            ForgetTrustError::Db(e) => e.to_string(),
            ForgetTrustError::Keystone(e) => e.reason(),
        }
    }
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
                    (_, 503) => "ServiceUnavailable",
                    _ => "InvalidParameterValue",
                };
                failure(class, "magnum.common.exception", m.to_string())
            }
            ConductorError::LeaseLost => failure(
                "MagnumException",
                "magnum.common.exception",
                "the operation was taken over by another attempt".into(),
            ),
            ConductorError::Retry(r) => failure(
                "MagnumException",
                "magnum.common.exception",
                format!("will retry: {r}"),
            ),
            ConductorError::Db(d) => {
                failure("MagnumException", "magnum.common.exception", d.to_string())
            }
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
        let slots = tokio::sync::Semaphore::new(settings.sweep_concurrency.max(1));
        Conductor {
            inner: Arc::new(Inner {
                db,
                drivers,
                settings,
                notifier,
                trusts: None,
                certs: CertManager::with_settings(Default::default()),
                sweep_slots: Arc::new(slots),
                swept: Held::default(),
                running: Held::default(),
                attempts: Default::default(),
            }),
        }
    }

    /// Keep cluster certificates with `certs` (`[certificates]`, `[x509]`).
    pub fn with_certs(self, certs: CertManager) -> Self {
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
                sweep_slots: shared.sweep_slots.clone(),
                swept: shared.swept.clone(),
                running: shared.running.clone(),
                attempts: shared.attempts.clone(),
            },
        }
    }

    /// The operations this conductor runs now, with their leases.
    pub fn held_operations(&self) -> Vec<HeldOperation> {
        self.inner.attempts.list()
    }

    /// Remove clusters' Keystone trusts with `trusts` when they are gone.
    pub fn with_trusts(self, trusts: Option<TrustManager>) -> Self {
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
                .note_retry(
                    &cluster.uuid,
                    magnum_core::objects::status::DELETE_IN_PROGRESS,
                    format!(
                        "Failed to delete the cluster's trust or trustee: {}",
                        e.reason()
                    ),
                )
                .await;
        }
        // Storage outside the database that fails to delete a certificate
        // is logged and left behind, as upstream does: it must not keep a
        // cluster alive. Rows of the x509keypair table go with the
        // cluster's, in one transaction.
        self.inner.certs.delete_external(db, cluster).await;
        let rows = self.inner.certs.rows_of(cluster);
        Ok(db.cluster_destroy(&cluster.uuid, &rows).await?)
    }

    /// Remove a cluster's trust and trustee, then their record.
    async fn forget_trust(&self, cluster_uuid: &str) -> Result<(), ForgetTrustError> {
        let db = &self.inner.db;
        let Some(t) = db.trust_get(cluster_uuid).await? else {
            return Ok(());
        };
        match &self.inner.trusts {
            Some(m) => m.delete(&t).await?,
            None => tracing::warn!(
                "cluster {cluster_uuid} had a trust but [trust] is not configured here; \
                 removing the record only"
            ),
        }
        db.trust_forget(cluster_uuid).await?;
        Ok(())
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Sweep due operations (waiting for those it started), then sync the
    /// status of clusters in progress: one round of what
    /// [`Conductor::spawn_background`] does continuously.
    pub async fn tick(&self) {
        let mut started = tokio::task::JoinSet::new();
        self.sweep(&mut started).await;
        while started.join_next().await.is_some() {}
        self.sync_status().await;
    }

    /// Start the operations that are due (a lease ran out, or no cast came
    /// within `operation_grace`) in `tasks`, at most `sweep_concurrency`
    /// running at once, so a dead conductor's operations are all taken
    /// over together rather than one after another. An operation a
    /// previous sweep started and that has not ended is left to it.
    pub(crate) async fn sweep(&self, tasks: &mut tokio::task::JoinSet<()>) {
        let due = match self
            .inner
            .db
            .operations_due(self.inner.settings.grace)
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!("cannot read queued operations: {e}");
                return;
            }
        };
        let mut seen = std::collections::HashSet::new();
        for op in due {
            // Oldest first: a later operation of the same cluster waits
            // for the earlier one (whose runner runs it next).
            if !seen.insert(op.cluster_uuid.clone()) {
                continue;
            }
            let Some(hold) = self.inner.swept.hold(&op.uuid) else {
                continue;
            };
            let me = self.clone();
            tasks.spawn(async move {
                let _hold = hold;
                let Ok(_slot) = me.inner.sweep_slots.clone().acquire_owned().await else {
                    return;
                };
                tracing::info!(
                    "taking over {} of cluster {} (attempt {})",
                    op.method,
                    op.cluster_uuid,
                    op.attempts + 1
                );
                if let Err(e) = me.work(&op.uuid).await {
                    tracing::warn!("{} of cluster {}: {e}", op.method, op.cluster_uuid);
                }
            });
        }
    }

    /// Sweep and sync the status every `sync_interval` (each on its own
    /// clock, so a long sync never delays a takeover) and sync health
    /// every `health_interval`, until the task is dropped (which stops
    /// the operations its sweeps started, too).
    pub fn spawn_background(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let every = |d| {
                let mut i = tokio::time::interval(d);
                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                i
            };
            let s = &me.inner.settings;
            let sweeps = async {
                let mut tick = every(s.sync_interval);
                let mut tasks = tokio::task::JoinSet::new();
                loop {
                    tick.tick().await;
                    while tasks.try_join_next().is_some() {}
                    me.sweep(&mut tasks).await;
                }
            };
            let syncs = async {
                let mut tick = every(s.sync_interval);
                loop {
                    tick.tick().await;
                    let began = std::time::Instant::now();
                    me.sync_status().await;
                    magnum_core::metrics::status_sync(began.elapsed());
                }
            };
            let health = async {
                let mut tick = every(s.health_interval);
                loop {
                    tick.tick().await;
                    me.sync_health().await;
                }
            };
            let prunes = async {
                // Events are pruned once a minute (or each sync, if slower).
                let mut tick = every(s.sync_interval.max(Duration::from_secs(60)));
                loop {
                    tick.tick().await;
                    me.prune_events().await;
                }
            };
            tokio::join!(sweeps, syncs, health, prunes);
        })
    }

    /// Remove the events beyond `[cluster_events] max_age` and
    /// `max_per_cluster` (every conductor may: removing is idempotent).
    pub async fn prune_events(&self) {
        let s = &self.inner.settings;
        match self
            .inner
            .db
            .events_prune(s.events_max_age, s.events_max_per_cluster)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!("pruned {n} cluster events"),
            Err(e) => tracing::warn!("cannot prune cluster events: {e}"),
        }
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
                m if magnum_core::state::Method::parse(m).is_some() => me
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
