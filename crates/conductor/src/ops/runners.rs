//! The runner of each operation method: what a create, delete, update,
//! resize, upgrade, CA rotation or node group change asks of the driver,
//! and what its outcome writes. Each re-reads what an earlier attempt did
//! and skips it, so it can run again after a crash.

use super::*;

impl Conductor {
    /// A create that cannot run now is kept, unless it has waited longer
    /// than the create timeout its user set: then it fails with the last
    /// reason.
    pub(super) fn create_waited_too_long(a: &Attempt, cluster: &Cluster) -> bool {
        let timeout = arg_i64(&a.op.args, "create_timeout")
            .or(cluster.create_timeout)
            .unwrap_or(60);
        match a.op.created_at {
            Some(at) if timeout > 0 => magnum_db::now() - at > chrono::Duration::minutes(timeout),
            _ => false,
        }
    }

    pub(super) async fn run_create(
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

    pub(super) async fn try_create(
        &self,
        ctx: &RequestContext,
        a: &Attempt,
        cluster: &Cluster,
        status: &str,
    ) -> Result<Done, ConductorError> {
        // A create retried from CREATE_FAILED (`actions/retry`) drives the
        // build it started before again.
        let retry = a.op.args.get("retry").and_then(Value::as_bool) == Some(true)
            && cluster.stack_id.is_some();
        if status != CREATE_IN_PROGRESS || (cluster.stack_id.is_some() && !retry) {
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
        let call = if retry {
            driver.retry_create(&spec, timeout)
        } else {
            driver.create(&spec, timeout)
        };
        match self.drive(a, CREATE_IN_PROGRESS, limit, call).await? {
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
    /// attempt `a`. `Ok(Err(Reason))`: they cannot be made (a definitive
    /// failure); storage that cannot be reached is a retry. With upstream's
    /// `x509keypair` table, the keys and the cluster's references to them
    /// are written in one transaction, so a crash leaves none behind; in
    /// Barbican or files, what was stored is removed again when the
    /// references cannot be recorded.
    pub(super) async fn make_certificates(
        &self,
        a: &Attempt,
        cluster: &Cluster,
        status: &str,
    ) -> Result<Result<(), Reason>, ConductorError> {
        let certs = &self.inner.certs;
        let made = match certs.make(cluster).await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!("cluster {}: certificates: {e}", cluster.uuid);
                return Ok(Err(Reason(format!(
                    "Failed to create certificates for Cluster: {}",
                    cluster.uuid
                ))));
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
        // Certificates it had (a rotation) leave the table with their names.
        writes.push(Write::DropKeyPairs(certs.rows_of(cluster)));
        match self.write(a, &writes).await {
            Ok(()) => Ok(Ok(())),
            Err(e) => {
                certs.forget(db, &kept).await;
                Err(e)
            }
        }
    }

    pub(super) async fn run_delete(
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
        let mut outcome = self
            .drive(
                a,
                DELETE_IN_PROGRESS,
                DRIVER_CALL_LIMIT,
                driver.delete(&spec),
            )
            .await?;
        let mut writes = Vec::new();
        if let Err(reason) = &outcome {
            if let Some(service) = as_service(&spec, reason) {
                // The owner, their trust or their project is gone: a
                // delete still completes, with the service's credentials,
                // and says so in the cluster's events.
                tracing::warn!(
                    "cluster {}: the owner's trust was refused ({reason}); deleting with the service's own credentials",
                    cluster.uuid
                );
                let e = ClusterEvent::new(
                    &cluster.uuid,
                    EventKind::ServiceCredentials,
                    format!(
                        "the owner's trust was refused ({reason}); deleting with the service's own credentials"
                    ),
                )
                .class(FailureClass::CredentialsRefused);
                writes.push(Write::Event(self.event_of(a, e)));
                outcome = self
                    .drive(
                        a,
                        DELETE_IN_PROGRESS,
                        DRIVER_CALL_LIMIT,
                        driver.delete(&service),
                    )
                    .await?;
            }
        }
        match outcome {
            Ok(()) => Ok(Done::writing(writes)),
            Err(reason) => {
                let mut f = failure(&cluster.uuid, DELETE_IN_PROGRESS, DELETE_FAILED, &reason);
                writes.append(&mut f.writes);
                f.writes = writes;
                Ok(f)
            }
        }
    }

    pub(super) async fn run_update(
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

    pub(super) async fn run_resize(
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

    pub(super) async fn run_upgrade(
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
            Err(e) => Err(Reason(e.to_string())),
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
                    fields(json!({ "status": UPDATE_FAILED, "status_reason": reason.0 })),
                ));
                Ok(done)
            }
        }
    }

    /// New CAs and client certificate, then the driver hands them to the
    /// nodes; the old ones are deleted once the new ones are recorded.
    pub(super) async fn run_rotate_ca(
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
        // The old certificates go; the cluster row now names the new ones
        // (those of the x509keypair table went in the same transaction).
        self.inner.certs.delete_external(db, &cluster).await;
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
            Err(e) => Err(Reason(e.to_string())),
        };
        match outcome {
            Ok(()) => Ok(Done::default()),
            Err(reason) => Ok(update_failure(Done::default(), &cluster.uuid, &reason)),
        }
    }

    pub(super) async fn run_nodegroup(
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
            Err(e) => Err(Reason(e.to_string())),
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

/// The spec to retry a delete with when its driver's failure says the
/// owner's trust was refused (Keystone's 401/403/404 for the trustee, the
/// trust or the project): the same cluster, acted on with the service's
/// own credentials. `None` when the failure is another, or the trust was
/// not what the driver used.
pub(crate) fn as_service(spec: &ClusterSpec, reason: &str) -> Option<ClusterSpec> {
    if spec.as_service
        || spec.trust.is_none()
        || FailureClass::classify(reason) != FailureClass::CredentialsRefused
    {
        return None;
    }
    let mut s = spec.clone();
    s.as_service = true;
    Some(s)
}
