//! Running queued operations: claim, call the driver, record the outcome.
//!
//! Each runner is written to be run again by another conductor after a
//! crash: it re-reads the cluster, skips what is already done (a create
//! that has its `stack_id`) and relies on drivers' operations being safe to
//! repeat.

mod done;
mod runners;

pub(crate) use done::*;
pub(crate) use runners::as_service;

use std::sync::Arc;

use std::time::Duration;
use tracing::Instrument as _;

use magnum_core::drivers::{ClusterSpec, Driver, DriverError};
use magnum_core::objects::status::*;
use magnum_core::objects::{default_nodegroup, Cluster, ClusterTemplate, NodeGroup};
use magnum_core::ovo;
use magnum_core::state::{nodegroup_moves, Method, Status};
use magnum_core::{MagnumError, RequestContext};
use magnum_db::{ClusterEvent, EventKind, FailureClass, Fence, Operation, Write};
use serde_json::{json, Map, Value};

use crate::notify::Outcome;
use crate::{Conductor, ConductorError, Reason};

/// The longest a driver call other than create may take.
const DRIVER_CALL_LIMIT: Duration = Duration::from_secs(600);

fn arg_i64(args: &Map<String, Value>, key: &str) -> Option<i64> {
    args.get(key).and_then(Value::as_i64)
}

fn decode<T: ovo::Versioned>(args: &Map<String, Value>, key: &str) -> Result<T, MagnumError> {
    let v = args
        .get(key)
        .ok_or_else(|| MagnumError::Invalid(format!("missing argument {key}")))?;
    ovo::decode(v).map_err(|e| MagnumError::Invalid(format!("argument {key}: {e}")))
}

fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// What a driver acts with for a cluster: its trustee and trust, when
/// both are complete.
pub(crate) fn credentials(
    t: magnum_db::ClusterTrust,
) -> Option<magnum_core::drivers::TrustCredentials> {
    Some(magnum_core::drivers::TrustCredentials {
        user_id: t.trustee_user_id?,
        username: t.trustee_username.unwrap_or_default(),
        password: t.trustee_password?,
        trust_id: t.trust_id?,
    })
}

impl Conductor {
    /// Queue an operation that arrived without one (from upstream's API).
    /// `Ok(None)`: nothing to do (a create of a cluster that exists).
    pub(crate) async fn adopt(
        &self,
        ctx: &RequestContext,
        context: Map<String, Value>,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<Option<String>, ConductorError> {
        let db = &self.inner.db;
        let cluster_uuid = match method {
            "cluster_delete" => args
                .get("uuid")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| MagnumError::Invalid("missing argument uuid".into()))?,
            _ => decode::<Cluster>(&args, "cluster")?.uuid,
        };
        let mut context = context;
        // Never keep a token in the queue.
        context.remove("auth_token");
        context.remove("auth_token_info");
        if method == "cluster_create" {
            if db.cluster_get(&cluster_uuid).await?.is_some() {
                return Ok(None);
            }
            let mut cluster: Cluster = decode(&args, "cluster")?;
            let template = self.template(&cluster).await?;
            cluster.status = Some(CREATE_IN_PROGRESS.into());
            cluster.status_reason = None;
            let masters = arg_i64(&args, "master_count").unwrap_or(1);
            let workers = arg_i64(&args, "node_count").unwrap_or(1);
            let ngs = [
                default_nodegroup(&cluster, &template, masters, true),
                default_nodegroup(&cluster, &template, workers, false),
            ];
            let op = Operation::new(&cluster_uuid, method, args, context);
            // No quota here: upstream's API checked it before casting, and
            // upstream's conductor checks none.
            db.cluster_create_queued(&cluster, &ngs, &op, None).await?;
            magnum_core::metrics::operation_queued(method);
            return Ok(Some(op.uuid));
        }
        let cluster = db
            .cluster_get(&cluster_uuid)
            .await?
            .ok_or_else(|| MagnumError::ClusterNotFound(cluster_uuid.clone()))?;
        let health_only = method == "cluster_update" && {
            let worker = db
                .nodegroups_of(&cluster_uuid)
                .await?
                .into_iter()
                .find(|n| n.is_default == Some(true) && n.role.as_deref() != Some("master"));
            arg_i64(&args, "node_count") == worker.and_then(|w| w.node_count)
        };
        let Some(m) = Method::parse(method) else {
            return Err(MagnumError::Invalid(format!("unknown operation {method}")).into());
        };
        let gate = m.gate(health_only);
        let op = Operation::new(&cluster_uuid, method, args, context);
        let queued = match method {
            "nodegroup_create" => {
                let mut ng: NodeGroup = decode(&op.args, "nodegroup")?;
                ng.status = Some(CREATE_IN_PROGRESS.into());
                db.nodegroup_enqueue(&op, gate, Some((&ng, true))).await?
            }
            "nodegroup_delete" => {
                let mut ng: NodeGroup = decode(&op.args, "nodegroup")?;
                ng.status = Some(DELETE_IN_PROGRESS.into());
                db.nodegroup_enqueue(&op, gate, Some((&ng, false))).await?
            }
            _ => db.operation_enqueue(&op, gate).await?,
        };
        if !queued {
            let status = cluster.status.unwrap_or_default();
            return Err(m.refusal(&status).into());
        }
        let _ = ctx;
        magnum_core::metrics::operation_queued(method);
        Ok(Some(op.uuid))
    }

    /// Upstream's `credential_rotate` (a call, not queued: it is quick).
    pub(crate) async fn credential_rotate(
        &self,
        args: &Map<String, Value>,
    ) -> Result<(), ConductorError> {
        const ALLOWED: [&str; 10] = [
            CREATE_COMPLETE,
            UPDATE_COMPLETE,
            UPDATE_IN_PROGRESS,
            UPDATE_FAILED,
            RESUME_COMPLETE,
            RESTORE_COMPLETE,
            ROLLBACK_COMPLETE,
            SNAPSHOT_COMPLETE,
            CHECK_COMPLETE,
            ADOPT_COMPLETE,
        ];
        let cluster = self.stored_cluster(args).await?;
        let status = cluster.status.clone().unwrap_or_default();
        if !ALLOWED.contains(&status.as_str()) {
            return Err(MagnumError::NotSupported(format!(
                "magnum.conductor.handlers.credential_conductor when cluster status is \"{status}\""
            ))
            .into());
        }
        let spec = self.spec(&cluster).await?;
        let driver = self.driver(&spec)?;
        match tokio::time::timeout(DRIVER_CALL_LIMIT, driver.rotate_credential(&spec)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(DriverError::NotAvailable(_))) => Err(MagnumError::NotSupportedMsg(
                "Credential rotation is not supported by driver.".into(),
            )
            .into()),
            Ok(Err(DriverError::Unreachable(reason))) => {
                Err(MagnumError::ServiceUnavailable(reason).into())
            }
            Ok(Err(DriverError::Failed(reason))) => Err(MagnumError::Invalid(reason).into()),
            Err(_) => Err(MagnumError::Invalid("the driver did not answer in time".into()).into()),
        }
    }

    async fn stored_cluster(&self, args: &Map<String, Value>) -> Result<Cluster, ConductorError> {
        let sent: Cluster = decode(args, "cluster")?;
        Ok(self
            .inner
            .db
            .cluster_get(&sent.uuid)
            .await?
            .ok_or(MagnumError::ClusterNotFound(sent.uuid))?)
    }

    /// Upstream's `sign_certificate` call: the certificate object back
    /// with `pem` set, signed by the cluster's CA of its `ca_cert_type`.
    pub(crate) async fn sign_certificate(
        &self,
        args: &Map<String, Value>,
    ) -> Result<Value, ConductorError> {
        let cluster = self.stored_cluster(args).await?;
        let mut cert: magnum_core::objects::Certificate = decode(args, "certificate")?;
        let csr = cert.csr.clone().unwrap_or_default();
        let kind = magnum_certs::CaType::parse(cert.ca_cert_type.as_deref());
        let pem = self
            .inner
            .certs
            .sign(&self.inner.db, &cluster, &csr, kind)
            .await?;
        cert.pem = Some(pem);
        Ok(ovo::encode(&cert))
    }

    /// Upstream's `get_ca_certificate` call: a certificate object holding
    /// the cluster's CA of `ca_cert_type` (the Kubernetes one by default).
    pub(crate) async fn get_ca_certificate(
        &self,
        args: &Map<String, Value>,
    ) -> Result<Value, ConductorError> {
        let cluster = self.stored_cluster(args).await?;
        let kind = magnum_certs::CaType::parse(args.get("ca_cert_type").and_then(Value::as_str));
        let ca = self.inner.certs.ca(&self.inner.db, &cluster, kind).await?;
        Ok(ovo::encode(&magnum_core::objects::Certificate {
            project_id: cluster.project_id.clone(),
            user_id: cluster.user_id.clone(),
            cluster_uuid: Some(cluster.uuid.clone()),
            pem: ca.certificate,
            ..Default::default()
        }))
    }

    /// Claim and run the operation `uuid`, then whatever else is queued
    /// for its cluster. The cluster as it is afterwards, if it exists.
    ///
    /// An attempt ends one of four ways. Done: its results and the
    /// operation's retirement are written in one fenced transaction.
    /// Retry (the cloud or the database could not be reached, certificates
    /// could not be stored): the operation stays queued and runs again
    /// after a backoff, here or on another conductor. Lost (its lease was
    /// taken over, or could not be renewed for a whole lease): it stops
    /// and writes nothing. Refused (its arguments are wrong, its cluster
    /// or template is gone): the operation is retired with the error.
    pub(crate) async fn work(&self, uuid: &str) -> Result<Option<Cluster>, ConductorError> {
        let db = &self.inner.db;
        let s = &self.inner.settings;
        let mut next = Some(uuid.to_string());
        let mut cluster_uuid = None;
        let mut first_error = None;
        while let Some(uuid) = next.take() {
            // One runner per operation in this process, even when its
            // lease lapsed and a sweep here finds it due again.
            let Some(_held) = self.inner.running.hold(&uuid) else {
                break;
            };
            let Some(op) = db.operation_claim(&uuid, &s.host, s.lease).await? else {
                break;
            };
            cluster_uuid = Some(op.cluster_uuid.clone());
            let attempt = Attempt {
                fence: Fence {
                    operation: op.uuid.clone(),
                    token: op.owner.clone().unwrap_or_default(),
                },
                op,
            };
            let op = &attempt.op;
            let span = tracing::info_span!(
                "operation",
                id = %op.uuid,
                method = %op.method,
                cluster = %op.cluster_uuid
            );
            let go_on = self
                .attempt(&attempt, &mut first_error)
                .instrument(span)
                .await;
            if !go_on {
                break;
            }
            next = db
                .operations_of(&op.cluster_uuid)
                .await?
                .into_iter()
                .find(|o| o.owner.is_none())
                .map(|o| o.uuid);
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        match cluster_uuid {
            Some(u) => Ok(db.cluster_get(&u).await?),
            None => Ok(None),
        }
    }

    /// Run one claimed attempt to its end, in the operation's span (every
    /// line it logs names the operation): whether the cluster's next
    /// queued operation may run now.
    async fn attempt(&self, attempt: &Attempt, first_error: &mut Option<ConductorError>) -> bool {
        let db = &self.inner.db;
        let op = &attempt.op;
        let _listed = self.inner.attempts.begin(op);
        tracing::info!(
            "running {} of cluster {} (attempt {})",
            op.method,
            op.cluster_uuid,
            op.attempts
        );
        let (lost, keeper) = self.keep_lease(&attempt.fence);
        let outcome = tokio::select! {
            r = self.run(attempt) => r,
            _ = lost => Err(ConductorError::LeaseLost),
        };
        keeper.abort();
        let outcome = match outcome {
            Ok(done) => self.record(attempt, done).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => {}
            Err(ConductorError::LeaseLost) => {
                tracing::warn!(
                    "{} of cluster {}: lease lost; this attempt stopped and wrote nothing more",
                    op.method,
                    op.cluster_uuid
                );
                return false;
            }
            Err(e @ (ConductorError::Retry(_) | ConductorError::Db(_))) => {
                self.again_later(attempt, &e).await;
                return false;
            }
            Err(e @ ConductorError::Magnum(_)) => {
                magnum_core::metrics::operation_failed(&op.method);
                tracing::warn!("{} of cluster {} failed: {e}", op.method, op.cluster_uuid);
                let failed = self.event_of(
                    attempt,
                    ClusterEvent::failure(&op.cluster_uuid, &e.to_string()),
                );
                match db
                    .fenced(&attempt.fence, &[Write::Event(failed), Write::Finish])
                    .await
                {
                    Ok(_) => {}
                    Err(d) => tracing::warn!(
                        "{} of cluster {}: cannot retire it yet ({d}); it runs again",
                        op.method,
                        op.cluster_uuid
                    ),
                }
                first_error.get_or_insert(e);
            }
        }
        true
    }

    /// Write what an attempt concluded with its operation's retirement,
    /// then tell the bus about a failure.
    async fn record(&self, a: &Attempt, done: Done) -> Result<(), ConductorError> {
        let mut writes = done.writes;
        // What it concluded, as an event: a failure with its class, from
        // the status move that records it.
        let event = match (done.failed, done_failure(&writes)) {
            (Some(_), Some((to, reason))) => {
                ClusterEvent::failure(&a.op.cluster_uuid, &reason).status(&to)
            }
            _ => ClusterEvent::new(
                &a.op.cluster_uuid,
                EventKind::Finished,
                format!("{} done", a.op.method),
            ),
        };
        writes.push(Write::Event(self.event_of(a, event)));
        writes.push(Write::Finish);
        self.write(a, &writes).await?;
        match done.failed {
            Some(_) => magnum_core::metrics::operation_failed(&a.op.method),
            None => magnum_core::metrics::operation_done(&a.op.method),
        }
        if let Some(action) = done.failed {
            if let Some(c) = self.inner.db.cluster_get(&a.op.cluster_uuid).await? {
                let ctx = RequestContext::from_wire(&a.op.context);
                self.inner
                    .notifier
                    .cluster(&ctx, action, Outcome::Failure, &c)
                    .await;
            }
        }
        Ok(())
    }

    /// Keep an operation that could not run now: it is due again after a
    /// backoff (the retry delay, doubled with each attempt up to eight
    /// times it). When even that cannot be written, its lease runs out and
    /// a sweep takes it then.
    async fn again_later(&self, a: &Attempt, why: &ConductorError) {
        let s = &self.inner.settings;
        let factor = 1i64 << (a.op.attempts.clamp(1, 4) - 1);
        let delay = s.retry_delay.saturating_mul(factor);
        magnum_core::metrics::operation_retried(&a.op.method);
        tracing::warn!(
            "{} of cluster {}: {why}; again in {delay} s",
            a.op.method,
            a.op.cluster_uuid
        );
        let why_text = why.to_string();
        let retried = ClusterEvent::new(
            &a.op.cluster_uuid,
            EventKind::Retried,
            format!("{why_text}; again in {delay} s"),
        )
        .class(FailureClass::classify(&why_text));
        // Recorded only while the attempt holds its operation; a database
        // that cannot take it now takes the retry without it.
        if let Err(e) = self
            .inner
            .db
            .fenced(&a.fence, &[Write::Event(self.event_of(a, retried))])
            .await
        {
            tracing::debug!("operation {}: retry not recorded: {e}", a.op.uuid);
        }
        if let Err(e) = self
            .inner
            .db
            .operation_renew(&a.op.uuid, &a.fence.token, delay)
            .await
        {
            tracing::warn!(
                "{} of cluster {}: cannot reschedule it ({e}); a sweep takes it once its lease runs out",
                a.op.method,
                a.op.cluster_uuid
            );
        }
    }

    /// `e` as an event of the attempt `a`: its operation, method, node
    /// group and this conductor's host.
    pub(crate) fn event_of(&self, a: &Attempt, e: ClusterEvent) -> ClusterEvent {
        let ng = magnum_db::nodegroup_of(&a.op);
        e.method(&a.op.method)
            .operation(&a.op.uuid)
            .nodegroup(ng.as_deref())
            .host(&self.inner.settings.host)
    }

    /// Write `writes` as the attempt `a`; [`ConductorError::LeaseLost`]
    /// when it no longer holds its operation.
    async fn write(&self, a: &Attempt, writes: &[Write]) -> Result<(), ConductorError> {
        if self.inner.db.fenced(&a.fence, writes).await? {
            Ok(())
        } else {
            Err(ConductorError::LeaseLost)
        }
    }

    /// Renew the lease of the attempt `fence` every third of its length
    /// while the returned task lives. The receiver fires when the lease is
    /// lost: taken over, or not renewed for a whole lease (the database is
    /// unreachable, so another conductor may hold it by now).
    fn keep_lease(
        &self,
        fence: &Fence,
    ) -> (
        tokio::sync::oneshot::Receiver<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let (lost, signal) = tokio::sync::oneshot::channel();
        let me = self.clone();
        let fence = fence.clone();
        let renewals = async move {
            let s = &me.inner.settings;
            let lease = Duration::from_secs(s.lease as u64);
            let every = Duration::from_secs((s.lease / 3).max(1) as u64);
            // Whole seconds are stored: count a second less than asked.
            let lease = lease.saturating_sub(Duration::from_secs(1));
            let mut held_until = tokio::time::Instant::now() + lease;
            loop {
                tokio::time::sleep(every).await;
                let asked = tokio::time::Instant::now();
                let renewal = tokio::time::timeout(
                    every,
                    me.inner
                        .db
                        .operation_renew(&fence.operation, &fence.token, s.lease),
                )
                .await;
                match renewal {
                    Ok(Ok(true)) => {
                        held_until = asked + lease;
                        me.inner.attempts.renewed(&fence.operation, s.lease);
                    }
                    Ok(Ok(false)) => {
                        tracing::warn!("operation {}: lease taken over", fence.operation);
                        let _ = lost.send(());
                        return;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!("operation {}: lease renewal failed: {e}", fence.operation)
                    }
                    Err(_) => tracing::warn!(
                        "operation {}: lease renewal did not answer in time",
                        fence.operation
                    ),
                }
                // Stop before the lease can have run out unrenewed.
                if tokio::time::Instant::now() + every >= held_until {
                    tracing::warn!(
                        "operation {}: lease not renewed in time; stopping this attempt",
                        fence.operation
                    );
                    let _ = lost.send(());
                    return;
                }
            }
        }
        // In the attempt's span.
        .in_current_span();
        let task = tokio::spawn(renewals);
        (signal, task)
    }

    pub(crate) async fn template(
        &self,
        cluster: &Cluster,
    ) -> Result<ClusterTemplate, ConductorError> {
        let admin = RequestContext {
            is_admin: true,
            all_tenants: true,
            ..Default::default()
        };
        let id = cluster.cluster_template_id.clone().unwrap_or_default();
        Ok(self
            .inner
            .db
            .cluster_template_by_uuid(&admin, &id)
            .await?
            .ok_or(MagnumError::ClusterTemplateNotFound(id))?)
    }

    pub(crate) async fn spec(&self, cluster: &Cluster) -> Result<ClusterSpec, ConductorError> {
        let trust = self
            .inner
            .db
            .trust_get(&cluster.uuid)
            .await?
            .and_then(credentials);
        Ok(ClusterSpec {
            cluster: cluster.clone(),
            template: self.template(cluster).await?,
            nodegroups: self.inner.db.nodegroups_of(&cluster.uuid).await?,
            trust,
            as_service: false,
        })
    }

    pub(crate) fn driver(&self, spec: &ClusterSpec) -> Result<Arc<dyn Driver>, MagnumError> {
        self.inner.drivers.for_template(&spec.template)
    }

    /// Run a driver call, bounded in time: the driver's answer, with a
    /// call that outlasts `limit` as a failure.
    async fn call_driver<T>(
        limit: Duration,
        f: impl std::future::Future<Output = Result<T, DriverError>>,
    ) -> Result<T, DriverError> {
        match tokio::time::timeout(limit, f).await {
            Ok(r) => r,
            Err(_) => Err(DriverError::Failed(format!(
                "the driver did not answer within {} seconds",
                limit.as_secs()
            ))),
        }
    }

    /// The one rule for every driver call of an attempt: its result, the
    /// driver's or cloud's own failure as `Ok(Err(Reason))`, and a cloud
    /// that could not be asked as a retry (said on the cluster, which stays
    /// in `status`).
    async fn drive<T>(
        &self,
        a: &Attempt,
        status: &str,
        limit: Duration,
        f: impl std::future::Future<Output = Result<T, DriverError>>,
    ) -> Result<Result<T, Reason>, ConductorError> {
        match Self::call_driver(limit, f).await {
            Ok(v) => Ok(Ok(v)),
            Err(DriverError::Unreachable(reason)) => self.retry_later(a, status, reason).await,
            Err(e) => Ok(Err(Reason(e.to_string()))),
        }
    }

    /// The cloud (or storage) could not be reached: say so on the cluster
    /// (if it is still in `status`) and keep the operation for another try.
    async fn retry_later<T>(
        &self,
        a: &Attempt,
        status: &str,
        reason: String,
    ) -> Result<T, ConductorError> {
        let w = Write::Cluster {
            uuid: a.op.cluster_uuid.clone(),
            fields: fields(json!({ "status_reason": format!("{reason}; will retry") })),
            only_in: vec![status.to_string()],
        };
        match self.write(a, &[w]).await {
            Err(ConductorError::LeaseLost) => Err(ConductorError::LeaseLost),
            // The reason is a courtesy: the retry holds without it.
            _ => Err(ConductorError::Retry(reason)),
        }
    }

    /// The cluster's status outside an attempt (the status sync, which
    /// found a cluster it cannot finish now): say why on it.
    pub(crate) async fn note_retry<T>(
        &self,
        cluster_uuid: &str,
        status: &str,
        reason: String,
    ) -> Result<T, ConductorError> {
        let f = fields(json!({ "status_reason": format!("{reason}; will retry") }));
        self.inner
            .db
            .cluster_update_fields(cluster_uuid, &f, &[status])
            .await?;
        Err(ConductorError::Retry(reason))
    }

    async fn run(&self, a: &Attempt) -> Result<Done, ConductorError> {
        let op = &a.op;
        let ctx = RequestContext::from_wire(&op.context);
        let db = &self.inner.db;
        let Some(cluster) = db.cluster_get(&op.cluster_uuid).await? else {
            return Ok(Done::default());
        };
        let status = cluster.status.clone().unwrap_or_default();
        let Some(method) = Method::parse(&op.method) else {
            tracing::warn!(
                "dropping queued operation with unknown method {}",
                op.method
            );
            return Ok(Done::default());
        };
        match method {
            Method::ClusterCreate => self.run_create(&ctx, a, cluster, &status).await,
            Method::ClusterDelete => self.run_delete(&ctx, a, cluster, &status).await,
            Method::ClusterUpdate => self.run_update(&ctx, a, cluster, &status).await,
            Method::ClusterResize => self.run_resize(&ctx, a, cluster, &status).await,
            Method::ClusterUpgrade => self.run_upgrade(&ctx, a, cluster, &status).await,
            Method::NodegroupCreate | Method::NodegroupUpdate | Method::NodegroupDelete => {
                self.run_nodegroup(a, method, cluster, &status).await
            }
            Method::RotateCaCertificate => self.run_rotate_ca(&ctx, a, cluster, &status).await,
        }
    }
}

/// The attempt running an operation: the operation as claimed, and the
/// fence its writes go through.
pub(crate) struct Attempt {
    pub op: Operation,
    pub fence: Fence,
}
