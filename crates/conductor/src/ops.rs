//! Running queued operations: claim, call the driver, record the outcome.
//!
//! Each runner is written to be run again by another conductor after a
//! crash: it re-reads the cluster, skips what is already done (a create
//! that has its `stack_id`) and relies on drivers' operations being safe to
//! repeat.

use std::sync::Arc;
use std::time::Duration;

use magnum_core::drivers::{ClusterSpec, Driver, DriverError};
use magnum_core::objects::status::*;
use magnum_core::objects::{default_nodegroup, Cluster, ClusterTemplate, NodeGroup};
use magnum_core::ovo;
use magnum_core::state::{nodegroup_moves, Method, Status};
use magnum_core::{MagnumError, RequestContext};
use magnum_db::{Fence, Operation, Write};
use serde_json::{json, Map, Value};

use crate::notify::Outcome;
use crate::{Conductor, ConductorError};

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
        let kind = crate::certs::CaType::parse(cert.ca_cert_type.as_deref());
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
        let kind = crate::certs::CaType::parse(args.get("ca_cert_type").and_then(Value::as_str));
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
            tracing::info!(
                "running {} of cluster {} (attempt {})",
                op.method,
                op.cluster_uuid,
                op.attempts
            );
            let (lost, keeper) = self.keep_lease(&attempt.fence);
            let outcome = tokio::select! {
                r = self.run(&attempt) => r,
                _ = lost => Err(ConductorError::LeaseLost),
            };
            keeper.abort();
            let outcome = match outcome {
                Ok(done) => self.record(&attempt, done).await,
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
                    break;
                }
                Err(e @ (ConductorError::Retry(_) | ConductorError::Db(_))) => {
                    self.again_later(&attempt, &e).await;
                    break;
                }
                Err(e @ ConductorError::Magnum(_)) => {
                    tracing::warn!("{} of cluster {} failed: {e}", op.method, op.cluster_uuid);
                    match db.fenced(&attempt.fence, &[Write::Finish]).await {
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

    /// Write what an attempt concluded with its operation's retirement,
    /// then tell the bus about a failure.
    async fn record(&self, a: &Attempt, done: Done) -> Result<(), ConductorError> {
        let mut writes = done.writes;
        writes.push(Write::Finish);
        self.write(a, &writes).await?;
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
        tracing::warn!(
            "{} of cluster {}: {why}; again in {delay} s",
            a.op.method,
            a.op.cluster_uuid
        );
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
        let task = tokio::spawn(async move {
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
                    Ok(Ok(true)) => held_until = asked + lease,
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
        });
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
    /// driver's or cloud's own failure as `Ok(Err(reason))`, and a cloud
    /// that could not be asked as a retry (said on the cluster, which stays
    /// in `status`).
    async fn drive<T>(
        &self,
        a: &Attempt,
        status: &str,
        limit: Duration,
        f: impl std::future::Future<Output = Result<T, DriverError>>,
    ) -> Result<Result<T, String>, ConductorError> {
        match Self::call_driver(limit, f).await {
            Ok(v) => Ok(Ok(v)),
            Err(DriverError::Unreachable(reason)) => self.retry_later(a, status, reason).await,
            Err(e) => Ok(Err(e.to_string())),
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

    /// A create that cannot run now is kept, unless it has waited longer
    /// than the create timeout its user set: then it fails with the last
    /// reason.
    fn create_waited_too_long(a: &Attempt, cluster: &Cluster) -> bool {
        let timeout = arg_i64(&a.op.args, "create_timeout")
            .or(cluster.create_timeout)
            .unwrap_or(60);
        match a.op.created_at {
            Some(at) if timeout > 0 => magnum_db::now() - at > chrono::Duration::minutes(timeout),
            _ => false,
        }
    }

    async fn run_create(
        &self,
        ctx: &RequestContext,
        a: &Attempt,
        cluster: Cluster,
        status: &str,
    ) -> Result<Done, ConductorError> {
        match self.try_create(ctx, a, &cluster, status).await {
            Err(ConductorError::Retry(reason)) if Self::create_waited_too_long(a, &cluster) => {
                let reason = format!("Timed out before the cluster could be created: {reason}");
                Ok(failure(
                    &cluster.uuid,
                    CREATE_IN_PROGRESS,
                    CREATE_FAILED,
                    &reason,
                ))
            }
            other => other,
        }
    }

    async fn try_create(
        &self,
        ctx: &RequestContext,
        a: &Attempt,
        cluster: &Cluster,
        status: &str,
    ) -> Result<Done, ConductorError> {
        if status != CREATE_IN_PROGRESS || cluster.stack_id.is_some() {
            // Superseded (deleted meanwhile) or already started.
            return Ok(Done::default());
        }
        let notifier = &self.inner.notifier;
        notifier
            .cluster(ctx, "create", Outcome::Pending, cluster)
            .await;
        let mut spec = self.spec(cluster).await?;
        let driver = match self.driver(&spec) {
            Ok(d) => d,
            Err(e) => {
                return Ok(failure(
                    &cluster.uuid,
                    CREATE_IN_PROGRESS,
                    CREATE_FAILED,
                    &e.to_string(),
                ))
            }
        };
        // The cluster's CAs and Magnum's client certificate, unless the
        // template turns TLS off (kept when a takeover runs this again).
        if spec.template.tls_disabled != Some(true) && cluster.ca_cert_ref.is_none() {
            if let Err(reason) = self
                .make_certificates(a, cluster, CREATE_IN_PROGRESS)
                .await?
            {
                return Ok(failure(
                    &cluster.uuid,
                    CREATE_IN_PROGRESS,
                    CREATE_FAILED,
                    &reason,
                ));
            }
            // The driver sees the cluster with its certificates.
            if let Some(now) = self.inner.db.cluster_get(&cluster.uuid).await? {
                spec = self.spec(&now).await?;
            }
        }
        let timeout = arg_i64(&a.op.args, "create_timeout")
            .or(cluster.create_timeout)
            .unwrap_or(60);
        let limit = if timeout > 0 {
            Duration::from_secs(timeout as u64 * 60)
        } else {
            DRIVER_CALL_LIMIT
        };
        // A driver asked again adopts what an earlier attempt started.
        match self
            .drive(a, CREATE_IN_PROGRESS, limit, driver.create(&spec, timeout))
            .await?
        {
            Ok(stack_id) => {
                let f = fields(json!({ "stack_id": stack_id }));
                let mut writes = vec![Write::Cluster {
                    uuid: cluster.uuid.clone(),
                    fields: f.clone(),
                    only_in: vec![CREATE_IN_PROGRESS.into()],
                }];
                for ng in &spec.nodegroups {
                    writes.push(Write::nodegroup(&ng.uuid, f.clone()));
                }
                Ok(Done::writing(writes))
            }
            Err(reason) => Ok(failure(
                &cluster.uuid,
                CREATE_IN_PROGRESS,
                CREATE_FAILED,
                &reason,
            )),
        }
    }

    /// Make the cluster's certificates and record them on it, as the
    /// attempt `a`. `Ok(Err(reason))`: they cannot be made (a definitive
    /// failure); storage that cannot be reached is a retry. With upstream's
    /// `x509keypair` table, the keys and the cluster's references to them
    /// are written in one transaction, so a crash leaves none behind; in
    /// Barbican or files, what was stored is removed again when the
    /// references cannot be recorded.
    async fn make_certificates(
        &self,
        a: &Attempt,
        cluster: &Cluster,
        status: &str,
    ) -> Result<Result<(), String>, ConductorError> {
        let certs = &self.inner.certs;
        let made = match certs.make(cluster).await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!("cluster {}: certificates: {e}", cluster.uuid);
                return Ok(Err(format!(
                    "Failed to create certificates for Cluster: {}",
                    cluster.uuid
                )));
            }
        };
        let db = &self.inner.db;
        let kept = match certs.keep(db, made).await {
            Ok(k) => k,
            Err(e) => {
                return self
                    .retry_later(
                        a,
                        status,
                        format!("Cannot store the cluster's certificates: {e}"),
                    )
                    .await
            }
        };
        let mut writes = kept.writes.clone();
        writes.push(Write::cluster(&cluster.uuid, kept.refs.clone()));
        match self.write(a, &writes).await {
            Ok(()) => Ok(Ok(())),
            Err(e) => {
                certs.forget(db, &kept).await;
                Err(e)
            }
        }
    }

    async fn run_delete(
        &self,
        ctx: &RequestContext,
        a: &Attempt,
        cluster: Cluster,
        status: &str,
    ) -> Result<Done, ConductorError> {
        if status != DELETE_IN_PROGRESS {
            return Ok(Done::default());
        }
        let notifier = &self.inner.notifier;
        notifier
            .cluster(ctx, "delete", Outcome::Pending, &cluster)
            .await;
        if cluster.stack_id.is_none() {
            // Nothing was ever built; its trust and certificates (made
            // before the driver was called) go with its rows.
            if self.retire(&cluster).await? {
                notifier
                    .cluster(ctx, "delete", Outcome::Success, &cluster)
                    .await;
            }
            return Ok(Done::default());
        }
        let spec = self.spec(&cluster).await?;
        let driver = match self.driver(&spec) {
            Ok(d) => d,
            Err(e) => {
                return Ok(failure(
                    &cluster.uuid,
                    DELETE_IN_PROGRESS,
                    DELETE_FAILED,
                    &e.to_string(),
                ))
            }
        };
        // Deleting again is safe: an unreachable cloud is retried.
        match self
            .drive(
                a,
                DELETE_IN_PROGRESS,
                DRIVER_CALL_LIMIT,
                driver.delete(&spec),
            )
            .await?
        {
            Ok(()) => Ok(Done::default()),
            Err(reason) => Ok(failure(
                &cluster.uuid,
                DELETE_IN_PROGRESS,
                DELETE_FAILED,
                &reason,
            )),
        }
    }

    async fn run_update(
        &self,
        ctx: &RequestContext,
        a: &Attempt,
        cluster: Cluster,
        status: &str,
    ) -> Result<Done, ConductorError> {
        let op = &a.op;
        let mut health = Map::new();
        if let Some(h) = op.args.get("health_status") {
            health.insert("health_status".into(), h.clone());
        }
        if let Some(h) = op.args.get("health_status_reason") {
            health.insert("health_status_reason".into(), h.clone());
        }
        let mut done = Done::default();
        if !health.is_empty() {
            done.writes.push(Write::cluster(&cluster.uuid, health));
        }
        if status != UPDATE_IN_PROGRESS {
            // A health-only update: nothing for the driver.
            return Ok(done);
        }
        let spec = self.spec(&cluster).await?;
        let Some(worker) = spec.default_group("worker").cloned() else {
            return Ok(done);
        };
        let Some(node_count) = arg_i64(&op.args, "node_count") else {
            return Ok(done);
        };
        // The count before the update (equal to the new one when an
        // attempt runs again: nothing to restore then).
        let old = worker.node_count;
        self.inner
            .notifier
            .cluster(ctx, "update", Outcome::Pending, &cluster)
            .await;
        self.write(
            a,
            &[Write::nodegroup(
                &worker.uuid,
                fields(json!({ "node_count": node_count })),
            )],
        )
        .await?;
        let spec = self.spec(&cluster).await?;
        let rollback = op
            .args
            .get("rollback")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let driver = match self.driver(&spec) {
            Ok(d) => d,
            Err(e) => return Ok(update_failure(done, &cluster.uuid, &e.to_string())),
        };
        match self
            .drive(
                a,
                UPDATE_IN_PROGRESS,
                DRIVER_CALL_LIMIT,
                driver.update(&spec, rollback),
            )
            .await?
        {
            Ok(()) => Ok(done),
            Err(reason) => {
                if let Some(old) = old.filter(|o| *o != node_count) {
                    done.writes.push(Write::nodegroup(
                        &worker.uuid,
                        fields(json!({ "node_count": old })),
                    ));
                }
                Ok(update_failure(done, &cluster.uuid, &reason))
            }
        }
    }

    async fn run_resize(
        &self,
        ctx: &RequestContext,
        a: &Attempt,
        cluster: Cluster,
        status: &str,
    ) -> Result<Done, ConductorError> {
        if status != UPDATE_IN_PROGRESS {
            return Ok(Done::default());
        }
        let op = &a.op;
        let db = &self.inner.db;
        let sent: NodeGroup = decode(&op.args, "nodegroup")?;
        let Some(ng) = db.nodegroup_get(&sent.uuid).await? else {
            return Err(MagnumError::NotFound(format!(
                "Nodegroup {} could not be found.",
                sent.uuid
            ))
            .into());
        };
        let node_count = arg_i64(&op.args, "node_count").unwrap_or(0);
        let remove: Vec<String> = op
            .args
            .get("nodes_to_remove")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        self.inner
            .notifier
            .cluster(ctx, "update", Outcome::Pending, &cluster)
            .await;
        self.write(
            a,
            &[Write::nodegroup(
                &ng.uuid,
                fields(json!({ "node_count": node_count, "status": UPDATE_IN_PROGRESS, "status_reason": null })),
            )],
        )
        .await?;
        let spec = self.spec(&cluster).await?;
        let ng = db.nodegroup_get(&ng.uuid).await?.unwrap_or(ng);
        let driver = match self.driver(&spec) {
            Ok(d) => d,
            Err(e) => {
                return Ok(resize_failure(
                    &cluster.uuid,
                    &ng.uuid,
                    sent.node_count,
                    &e.to_string(),
                ))
            }
        };
        match self
            .drive(
                a,
                UPDATE_IN_PROGRESS,
                DRIVER_CALL_LIMIT,
                driver.resize(&spec, &ng, node_count, &remove),
            )
            .await?
        {
            Ok(()) => Ok(Done::default()),
            Err(reason) => Ok(resize_failure(
                &cluster.uuid,
                &ng.uuid,
                sent.node_count,
                &reason,
            )),
        }
    }

    async fn run_upgrade(
        &self,
        ctx: &RequestContext,
        a: &Attempt,
        cluster: Cluster,
        status: &str,
    ) -> Result<Done, ConductorError> {
        if status != UPDATE_IN_PROGRESS {
            return Ok(Done::default());
        }
        let op = &a.op;
        let template: ClusterTemplate = decode(&op.args, "cluster_template")?;
        let sent: NodeGroup = decode(&op.args, "nodegroup")?;
        let max_batch = arg_i64(&op.args, "max_batch_size").unwrap_or(1);
        let spec = self.spec(&cluster).await?;
        let Some(ng) = spec
            .nodegroups
            .iter()
            .find(|n| n.uuid == sent.uuid)
            .cloned()
        else {
            return Err(MagnumError::NotFound(format!(
                "Nodegroup {} could not be found.",
                sent.uuid
            ))
            .into());
        };
        self.inner
            .notifier
            .cluster(ctx, "update", Outcome::Pending, &cluster)
            .await;
        let outcome = match self.driver(&spec) {
            Ok(d) => {
                self.drive(
                    a,
                    UPDATE_IN_PROGRESS,
                    DRIVER_CALL_LIMIT,
                    d.upgrade(&spec, &template, max_batch, &ng),
                )
                .await?
            }
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => {
                let mut writes = vec![Write::nodegroup(
                    &ng.uuid,
                    fields(
                        json!({ "status": UPDATE_IN_PROGRESS, "status_reason": null, "image_id": template.image_id }),
                    ),
                )];
                if ng.is_default == Some(true) {
                    writes.push(Write::cluster(
                        &cluster.uuid,
                        fields(json!({ "cluster_template_id": template.uuid })),
                    ));
                }
                Ok(Done::writing(writes))
            }
            Err(reason) => {
                let mut done = update_failure(Done::default(), &cluster.uuid, &reason);
                // The upgraded group says why, after the cluster-wide move.
                done.writes.push(Write::nodegroup(
                    &ng.uuid,
                    fields(json!({ "status": UPDATE_FAILED, "status_reason": reason })),
                ));
                Ok(done)
            }
        }
    }

    /// New CAs and client certificate, then the driver hands them to the
    /// nodes; the old ones are deleted once the new ones are recorded.
    async fn run_rotate_ca(
        &self,
        ctx: &RequestContext,
        a: &Attempt,
        cluster: Cluster,
        status: &str,
    ) -> Result<Done, ConductorError> {
        if status != UPDATE_IN_PROGRESS {
            return Ok(Done::default());
        }
        let db = &self.inner.db;
        self.inner
            .notifier
            .cluster(ctx, "update", Outcome::Pending, &cluster)
            .await;
        // (An attempt run again rotates again: the nodes get the newest.)
        if let Err(reason) = self
            .make_certificates(a, &cluster, UPDATE_IN_PROGRESS)
            .await?
        {
            return Ok(update_failure(Done::default(), &cluster.uuid, &reason));
        }
        // The old certificates go; the cluster row now names the new ones.
        self.inner.certs.delete(db, &cluster).await;
        let now = db
            .cluster_get(&cluster.uuid)
            .await?
            .unwrap_or(cluster.clone());
        let spec = self.spec(&now).await?;
        let outcome = match self.driver(&spec) {
            Ok(d) => {
                self.drive(
                    a,
                    UPDATE_IN_PROGRESS,
                    DRIVER_CALL_LIMIT,
                    d.rotate_ca_certificate(&spec),
                )
                .await?
            }
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => Ok(Done::default()),
            Err(reason) => Ok(update_failure(Done::default(), &cluster.uuid, &reason)),
        }
    }

    async fn run_nodegroup(
        &self,
        a: &Attempt,
        method: Method,
        cluster: Cluster,
        status: &str,
    ) -> Result<Done, ConductorError> {
        if status != UPDATE_IN_PROGRESS {
            return Ok(Done::default());
        }
        let op = &a.op;
        let sent: NodeGroup = decode(&op.args, "nodegroup")?;
        if method == Method::NodegroupUpdate {
            // The new settings travel in the message; store them first.
            let f = fields(json!({
                "node_count": sent.node_count,
                "min_node_count": sent.min_node_count,
                "max_node_count": sent.max_node_count,
                "node_labels": sent.node_labels,
                "node_taints": sent.node_taints,
                "status": UPDATE_IN_PROGRESS,
                "status_reason": null,
            }));
            self.write(a, &[Write::nodegroup(&sent.uuid, f)]).await?;
        }
        let spec = self.spec(&cluster).await?;
        let Some(ng) = spec
            .nodegroups
            .iter()
            .find(|n| n.uuid == sent.uuid)
            .cloned()
        else {
            return Ok(Done::default());
        };
        let outcome = match self.driver(&spec) {
            Ok(d) => {
                let call: magnum_core::drivers::DriverFuture<'_, Option<String>> = match method {
                    Method::NodegroupCreate => d.create_nodegroup(&spec, &ng),
                    Method::NodegroupUpdate => {
                        let f = d.update_nodegroup(&spec, &ng);
                        Box::pin(async move { f.await.map(|()| None) })
                    }
                    _ => {
                        let f = d.delete_nodegroup(&spec, &ng);
                        Box::pin(async move { f.await.map(|()| None) })
                    }
                };
                self.drive(a, UPDATE_IN_PROGRESS, DRIVER_CALL_LIMIT, call)
                    .await?
            }
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            // The stack a new group got is recorded with the operation's
            // retirement (upstream's Heat driver sets the group's stack_id).
            Ok(Some(stack_id)) => Ok(Done::writing(vec![Write::nodegroup(
                &ng.uuid,
                fields(json!({ "stack_id": stack_id })),
            )])),
            Ok(None) => Ok(Done::default()),
            Err(reason) => Ok(update_failure(Done::default(), &cluster.uuid, &reason)),
        }
    }
}

/// The attempt running an operation: the operation as claimed, and the
/// fence its writes go through.
pub(crate) struct Attempt {
    pub op: Operation,
    pub fence: Fence,
}

/// What an attempt concluded: the writes recorded with its operation's
/// retirement and, for a failure, the action the bus hears failed.
#[derive(Debug, Default)]
pub(crate) struct Done {
    pub writes: Vec<Write>,
    pub failed: Option<&'static str>,
}

impl Done {
    fn writing(writes: Vec<Write>) -> Done {
        Done {
            writes,
            failed: None,
        }
    }
}

/// The cluster from `from` to `to` (a failure) and its node groups in
/// progress with it, as one set of writes.
pub(crate) fn failure(cluster_uuid: &str, from: &str, to: &str, reason: &str) -> Done {
    let to = Status::parse(to).unwrap_or(Status::UpdateFailed);
    let mut writes = vec![Write::ClusterStatus {
        uuid: cluster_uuid.into(),
        from: vec![from.into()],
        to: to.as_str().into(),
        reason: Some(reason.into()),
        if_idle: false,
    }];
    for (ng_from, ng_to) in nodegroup_moves(to) {
        writes.push(Write::NodegroupsStatus {
            cluster_uuid: cluster_uuid.into(),
            from: vec![ng_from.as_str().into()],
            to: ng_to.as_str().into(),
            reason: Some(reason.into()),
        });
    }
    Done {
        writes,
        failed: Some(match to {
            Status::CreateFailed => "create",
            Status::DeleteFailed => "delete",
            _ => "update",
        }),
    }
}

/// An update that failed: `done`'s writes, then the cluster and its node
/// groups in progress to UPDATE_FAILED.
fn update_failure(done: Done, cluster_uuid: &str, reason: &str) -> Done {
    let mut f = failure(cluster_uuid, UPDATE_IN_PROGRESS, UPDATE_FAILED, reason);
    let mut writes = done.writes;
    writes.append(&mut f.writes);
    Done { writes, ..f }
}

/// A resize that failed: the group's count restored and its failure said,
/// then the cluster's.
fn resize_failure(cluster_uuid: &str, ng_uuid: &str, count: Option<i64>, reason: &str) -> Done {
    let restore = Write::nodegroup(
        ng_uuid,
        fields(json!({ "node_count": count, "status": UPDATE_FAILED, "status_reason": reason })),
    );
    update_failure(Done::writing(vec![restore]), cluster_uuid, reason)
}
