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
use magnum_core::{MagnumError, RequestContext};
use magnum_db::{Gate, Operation};
use serde_json::{json, Map, Value};

use crate::notify::Outcome;
use crate::{Conductor, ConductorError};

/// The longest a driver call other than create may take.
const DRIVER_CALL_LIMIT: Duration = Duration::from_secs(600);

/// Where a cluster must be, and where it moves, for `method` to be queued.
/// `health_only`: a `cluster_update` that changes no node count.
pub fn gate_for(method: &str, health_only: bool) -> Gate<'static> {
    match method {
        "cluster_delete" => Gate {
            from: &ALL,
            to: Some(DELETE_IN_PROGRESS),
        },
        "cluster_update" if health_only => Gate {
            from: &ALL,
            to: None,
        },
        "cluster_resize" => Gate {
            from: &RESIZABLE,
            to: Some(UPDATE_IN_PROGRESS),
        },
        _ => Gate {
            from: &UPDATABLE,
            to: Some(UPDATE_IN_PROGRESS),
        },
    }
}

/// The refusal for a cluster in a status that forbids `method`.
pub fn refusal(method: &str, status: &str) -> MagnumError {
    let what = match method {
        "cluster_resize" => "Resizing a cluster",
        "cluster_upgrade" => "Upgrading a cluster",
        "nodegroup_create" => "Creating a nodegroup",
        "nodegroup_update" => "Updating a nodegroup",
        "nodegroup_delete" => "Deleting a nodegroup",
        _ => "Updating a cluster",
    };
    MagnumError::NotSupported(format!("{what} when status is \"{status}\""))
}

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
            db.cluster_create_queued(&cluster, &ngs, &op).await?;
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
        let gate = gate_for(method, health_only);
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
            return Err(refusal(method, &status).into());
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
            Ok(Err(DriverError::Failed(reason) | DriverError::Unreachable(reason))) => {
                Err(MagnumError::Invalid(reason).into())
            }
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
            tracing::info!("running {} of cluster {}", op.method, op.cluster_uuid);
            let keeper = self.keep_lease(&op.uuid);
            let outcome = self.run(&op).await;
            keeper.abort();
            if let Err(ConductorError::Retry(reason)) = &outcome {
                // Keep it: the sweep of any conductor runs it again once
                // this hold runs out.
                tracing::warn!(
                    "{} of cluster {}: {reason}; again in {} s",
                    op.method,
                    op.cluster_uuid,
                    s.retry_delay
                );
                db.operation_renew(&op.uuid, &s.host, s.retry_delay).await?;
                break;
            }
            if !db.operation_finish(&op.uuid, &s.host).await? {
                tracing::warn!(
                    "{} of cluster {}: lease lost while running",
                    op.method,
                    op.cluster_uuid
                );
            }
            if let Err(e) = outcome {
                tracing::warn!("{} of cluster {} failed: {e}", op.method, op.cluster_uuid);
                first_error.get_or_insert(e);
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

    /// Renew the lease on `uuid` every third of its length while the
    /// returned task lives.
    fn keep_lease(&self, uuid: &str) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let uuid = uuid.to_string();
        tokio::spawn(async move {
            let s = &me.inner.settings;
            let every = Duration::from_secs((s.lease / 3).max(1) as u64);
            loop {
                tokio::time::sleep(every).await;
                match me.inner.db.operation_renew(&uuid, &s.host, s.lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!("operation {uuid}: lease lost");
                        return;
                    }
                    Err(e) => tracing::warn!("operation {uuid}: lease renewal failed: {e}"),
                }
            }
        })
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

    /// Run a driver call, bounded in time.
    async fn call<T>(
        limit: Duration,
        f: impl std::future::Future<Output = Result<T, DriverError>>,
    ) -> Result<T, String> {
        Self::call_driver(limit, f).await.map_err(|e| e.to_string())
    }

    /// [`Self::call`], keeping the driver's kind of failure.
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

    /// The cloud could not be reached: say so on the cluster (still in
    /// `status`) and keep the operation queued (or the cluster in
    /// progress, for the status sync) for another try.
    pub(crate) async fn retry_later<T>(
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

    /// Mark the cluster (moving from `from`) and its node groups in
    /// progress as failed, and tell the bus.
    async fn fail(
        &self,
        ctx: &RequestContext,
        cluster_uuid: &str,
        from: &str,
        to: &str,
        reason: &str,
    ) -> Result<(), ConductorError> {
        let db = &self.inner.db;
        db.cluster_transition(cluster_uuid, &[from], to, Some(reason))
            .await?;
        let ng_to = if to == CREATE_FAILED {
            CREATE_FAILED
        } else {
            UPDATE_FAILED
        };
        db.nodegroups_transition(cluster_uuid, &[CREATE_IN_PROGRESS], ng_to, Some(reason))
            .await?;
        db.nodegroups_transition(
            cluster_uuid,
            &[UPDATE_IN_PROGRESS],
            UPDATE_FAILED,
            Some(reason),
        )
        .await?;
        db.nodegroups_transition(
            cluster_uuid,
            &[DELETE_IN_PROGRESS],
            DELETE_FAILED,
            Some(reason),
        )
        .await?;
        if let Some(c) = db.cluster_get(cluster_uuid).await? {
            let action = match to {
                CREATE_FAILED => "create",
                DELETE_FAILED => "delete",
                _ => "update",
            };
            self.inner
                .notifier
                .cluster(ctx, action, Outcome::Failure, &c)
                .await;
        }
        Ok(())
    }

    async fn run(&self, op: &Operation) -> Result<(), ConductorError> {
        let ctx = RequestContext::from_wire(&op.context);
        let db = &self.inner.db;
        let Some(cluster) = db.cluster_get(&op.cluster_uuid).await? else {
            return Ok(());
        };
        let status = cluster.status.clone().unwrap_or_default();
        match op.method.as_str() {
            "cluster_create" => self.run_create(&ctx, op, cluster, &status).await,
            "cluster_delete" => self.run_delete(&ctx, cluster, &status).await,
            "cluster_update" => self.run_update(&ctx, op, cluster, &status).await,
            "cluster_resize" => self.run_resize(&ctx, op, cluster, &status).await,
            "cluster_upgrade" => self.run_upgrade(&ctx, op, cluster, &status).await,
            "nodegroup_create" | "nodegroup_update" | "nodegroup_delete" => {
                self.run_nodegroup(&ctx, op, cluster, &status).await
            }
            "rotate_ca_certificate" => self.run_rotate_ca(&ctx, cluster, &status).await,
            other => {
                tracing::warn!("dropping queued operation with unknown method {other}");
                Ok(())
            }
        }
    }

    async fn run_create(
        &self,
        ctx: &RequestContext,
        op: &Operation,
        cluster: Cluster,
        status: &str,
    ) -> Result<(), ConductorError> {
        if status != CREATE_IN_PROGRESS || cluster.stack_id.is_some() {
            // Superseded (deleted meanwhile) or already started.
            return Ok(());
        }
        let notifier = &self.inner.notifier;
        notifier
            .cluster(ctx, "create", Outcome::Pending, &cluster)
            .await;
        let mut spec = self.spec(&cluster).await?;
        let driver = match self.driver(&spec) {
            Ok(d) => d,
            Err(e) => {
                let reason = e.to_string();
                return self
                    .fail(
                        ctx,
                        &cluster.uuid,
                        CREATE_IN_PROGRESS,
                        CREATE_FAILED,
                        &reason,
                    )
                    .await;
            }
        };
        // The cluster's CAs and Magnum's client certificate, unless the
        // template turns TLS off (kept when a takeover runs this again).
        if spec.template.tls_disabled != Some(true) && cluster.ca_cert_ref.is_none() {
            match self.inner.certs.generate(&self.inner.db, &cluster).await {
                Ok(refs) => {
                    self.inner
                        .db
                        .cluster_update_fields(&cluster.uuid, &refs, &[])
                        .await?;
                    // The driver sees the cluster with its certificates.
                    if let Some(now) = self.inner.db.cluster_get(&cluster.uuid).await? {
                        spec = self.spec(&now).await?;
                    }
                }
                Err(e) => {
                    tracing::error!("cluster {}: certificates: {e}", cluster.uuid);
                    let reason = format!(
                        "Failed to create certificates for Cluster: {}",
                        cluster.uuid
                    );
                    return self
                        .fail(
                            ctx,
                            &cluster.uuid,
                            CREATE_IN_PROGRESS,
                            CREATE_FAILED,
                            &reason,
                        )
                        .await;
                }
            }
        }
        let timeout = arg_i64(&op.args, "create_timeout")
            .or(cluster.create_timeout)
            .unwrap_or(60);
        let limit = if timeout > 0 {
            Duration::from_secs(timeout as u64 * 60)
        } else {
            DRIVER_CALL_LIMIT
        };
        match Self::call_driver(limit, driver.create(&spec, timeout)).await {
            // Nothing was made: say so on the cluster and try again.
            Err(DriverError::Unreachable(reason)) => {
                self.retry_later(&cluster.uuid, CREATE_IN_PROGRESS, reason)
                    .await
            }
            Ok(stack_id) => {
                let f = fields(json!({ "stack_id": stack_id }));
                self.inner
                    .db
                    .cluster_update_fields(&cluster.uuid, &f, &[])
                    .await?;
                for ng in &spec.nodegroups {
                    self.inner.db.nodegroup_update_fields(&ng.uuid, &f).await?;
                }
                Ok(())
            }
            Err(e) => {
                self.fail(
                    ctx,
                    &cluster.uuid,
                    CREATE_IN_PROGRESS,
                    CREATE_FAILED,
                    &e.to_string(),
                )
                .await
            }
        }
    }

    async fn run_delete(
        &self,
        ctx: &RequestContext,
        cluster: Cluster,
        status: &str,
    ) -> Result<(), ConductorError> {
        if status != DELETE_IN_PROGRESS {
            return Ok(());
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
            return Ok(());
        }
        let spec = self.spec(&cluster).await?;
        let outcome = match self.driver(&spec) {
            Ok(driver) => Self::call_driver(DRIVER_CALL_LIMIT, driver.delete(&spec)).await,
            Err(e) => Err(DriverError::Failed(e.to_string())),
        };
        match outcome {
            Ok(()) => Ok(()),
            // Deleting again is safe: say why it waits, and retry.
            Err(DriverError::Unreachable(reason)) => {
                self.retry_later(&cluster.uuid, DELETE_IN_PROGRESS, reason)
                    .await
            }
            Err(e) => {
                self.fail(
                    ctx,
                    &cluster.uuid,
                    DELETE_IN_PROGRESS,
                    DELETE_FAILED,
                    &e.to_string(),
                )
                .await
            }
        }
    }

    async fn run_update(
        &self,
        ctx: &RequestContext,
        op: &Operation,
        cluster: Cluster,
        status: &str,
    ) -> Result<(), ConductorError> {
        let db = &self.inner.db;
        let mut health = Map::new();
        if let Some(h) = op.args.get("health_status") {
            health.insert("health_status".into(), h.clone());
        }
        if let Some(h) = op.args.get("health_status_reason") {
            health.insert("health_status_reason".into(), h.clone());
        }
        if !health.is_empty() {
            db.cluster_update_fields(&cluster.uuid, &health, &[])
                .await?;
        }
        if status != UPDATE_IN_PROGRESS {
            // A health-only update: nothing for the driver.
            return Ok(());
        }
        let spec = self.spec(&cluster).await?;
        let Some(worker) = spec.default_group("worker").cloned() else {
            return Ok(());
        };
        let Some(node_count) = arg_i64(&op.args, "node_count") else {
            return Ok(());
        };
        // The count before the update (equal to the new one when a
        // conductor takes a half-run update over: nothing to restore then).
        let old = worker.node_count;
        self.inner
            .notifier
            .cluster(ctx, "update", Outcome::Pending, &cluster)
            .await;
        db.nodegroup_update_fields(&worker.uuid, &fields(json!({ "node_count": node_count })))
            .await?;
        let spec = self.spec(&cluster).await?;
        let rollback = op
            .args
            .get("rollback")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let outcome = match self.driver(&spec) {
            Ok(d) => Self::call(DRIVER_CALL_LIMIT, d.update(&spec, rollback)).await,
            Err(e) => Err(e.to_string()),
        };
        if let Err(reason) = outcome {
            if let Some(old) = old.filter(|o| *o != node_count) {
                db.nodegroup_update_fields(&worker.uuid, &fields(json!({ "node_count": old })))
                    .await?;
            }
            self.fail(
                ctx,
                &cluster.uuid,
                UPDATE_IN_PROGRESS,
                UPDATE_FAILED,
                &reason,
            )
            .await?;
        }
        Ok(())
    }

    async fn run_resize(
        &self,
        ctx: &RequestContext,
        op: &Operation,
        cluster: Cluster,
        status: &str,
    ) -> Result<(), ConductorError> {
        if status != UPDATE_IN_PROGRESS {
            return Ok(());
        }
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
        db.nodegroup_update_fields(
            &ng.uuid,
            &fields(json!({ "node_count": node_count, "status": UPDATE_IN_PROGRESS, "status_reason": null })),
        )
        .await?;
        let spec = self.spec(&cluster).await?;
        let ng = db.nodegroup_get(&ng.uuid).await?.unwrap_or(ng);
        let outcome = match self.driver(&spec) {
            Ok(d) => Self::call(DRIVER_CALL_LIMIT, d.resize(&spec, &ng, node_count, &remove)).await,
            Err(e) => Err(e.to_string()),
        };
        if let Err(reason) = outcome {
            db.nodegroup_update_fields(
                &ng.uuid,
                &fields(json!({ "node_count": sent.node_count, "status": UPDATE_FAILED, "status_reason": reason })),
            )
            .await?;
            self.fail(
                ctx,
                &cluster.uuid,
                UPDATE_IN_PROGRESS,
                UPDATE_FAILED,
                &reason,
            )
            .await?;
        }
        Ok(())
    }

    async fn run_upgrade(
        &self,
        ctx: &RequestContext,
        op: &Operation,
        cluster: Cluster,
        status: &str,
    ) -> Result<(), ConductorError> {
        if status != UPDATE_IN_PROGRESS {
            return Ok(());
        }
        let db = &self.inner.db;
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
                Self::call(
                    DRIVER_CALL_LIMIT,
                    d.upgrade(&spec, &template, max_batch, &ng),
                )
                .await
            }
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => {
                db.nodegroup_update_fields(
                    &ng.uuid,
                    &fields(json!({ "status": UPDATE_IN_PROGRESS, "status_reason": null, "image_id": template.image_id })),
                )
                .await?;
                if ng.is_default == Some(true) {
                    db.cluster_update_fields(
                        &cluster.uuid,
                        &fields(json!({ "cluster_template_id": template.uuid })),
                        &[],
                    )
                    .await?;
                }
            }
            Err(reason) => {
                db.nodegroup_update_fields(
                    &ng.uuid,
                    &fields(json!({ "status": UPDATE_FAILED, "status_reason": reason })),
                )
                .await?;
                self.fail(
                    ctx,
                    &cluster.uuid,
                    UPDATE_IN_PROGRESS,
                    UPDATE_FAILED,
                    &reason,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// New CAs and client certificate, then the driver hands them to the
    /// nodes; the old ones are deleted once the new ones are recorded.
    async fn run_rotate_ca(
        &self,
        ctx: &RequestContext,
        cluster: Cluster,
        status: &str,
    ) -> Result<(), ConductorError> {
        if status != UPDATE_IN_PROGRESS {
            return Ok(());
        }
        let db = &self.inner.db;
        self.inner
            .notifier
            .cluster(ctx, "update", Outcome::Pending, &cluster)
            .await;
        let refs = match self.inner.certs.generate(db, &cluster).await {
            Ok(r) => r,
            Err(e) => {
                let reason = format!(
                    "Failed to create certificates for Cluster: {}",
                    cluster.uuid
                );
                tracing::error!("cluster {}: {e}", cluster.uuid);
                return self
                    .fail(
                        ctx,
                        &cluster.uuid,
                        UPDATE_IN_PROGRESS,
                        UPDATE_FAILED,
                        &reason,
                    )
                    .await;
            }
        };
        db.cluster_update_fields(&cluster.uuid, &refs, &[]).await?;
        // The old certificates go; the cluster row now names the new ones.
        self.inner.certs.delete(db, &cluster).await;
        let spec = self
            .spec(
                &db.cluster_get(&cluster.uuid)
                    .await?
                    .unwrap_or(cluster.clone()),
            )
            .await?;
        let outcome = match self.driver(&spec) {
            Ok(d) => Self::call(DRIVER_CALL_LIMIT, d.rotate_ca_certificate(&spec)).await,
            Err(e) => Err(e.to_string()),
        };
        if let Err(reason) = outcome {
            self.fail(
                ctx,
                &cluster.uuid,
                UPDATE_IN_PROGRESS,
                UPDATE_FAILED,
                &reason,
            )
            .await?;
        }
        Ok(())
    }

    async fn run_nodegroup(
        &self,
        ctx: &RequestContext,
        op: &Operation,
        cluster: Cluster,
        status: &str,
    ) -> Result<(), ConductorError> {
        if status != UPDATE_IN_PROGRESS {
            return Ok(());
        }
        let db = &self.inner.db;
        let sent: NodeGroup = decode(&op.args, "nodegroup")?;
        if op.method == "nodegroup_update" {
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
            db.nodegroup_update_fields(&sent.uuid, &f).await?;
        }
        let spec = self.spec(&cluster).await?;
        let Some(ng) = spec
            .nodegroups
            .iter()
            .find(|n| n.uuid == sent.uuid)
            .cloned()
        else {
            return Ok(());
        };
        let outcome = match self.driver(&spec) {
            Ok(d) => {
                let call = match op.method.as_str() {
                    "nodegroup_create" => d.create_nodegroup(&spec, &ng),
                    "nodegroup_update" => d.update_nodegroup(&spec, &ng),
                    _ => d.delete_nodegroup(&spec, &ng),
                };
                Self::call(DRIVER_CALL_LIMIT, call).await
            }
            Err(e) => Err(e.to_string()),
        };
        if let Err(reason) = outcome {
            self.fail(
                ctx,
                &cluster.uuid,
                UPDATE_IN_PROGRESS,
                UPDATE_FAILED,
                &reason,
            )
            .await?;
        }
        Ok(())
    }
}
