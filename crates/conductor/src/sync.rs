//! The periodic syncs: where each cluster in progress stands in its
//! driver's orchestration (upstream's `sync_cluster_status`), and how
//! healthy the finished ones are (`sync_cluster_health_status`).
//!
//! Every conductor syncs every cluster: each change is a conditional
//! update from the status that was read, so of several conductors seeing
//! the same outcome exactly one records it (and notifies).

use magnum_core::drivers::{Action, DriverError, Observed, Progress};
use magnum_core::objects::status::*;
use magnum_core::objects::Cluster;
use magnum_core::RequestContext;
use serde_json::{json, Map, Value};

use crate::notify::Outcome;
use crate::{Conductor, ConductorError};

/// Statuses whose clusters get health syncs.
const HEALTH_SYNCED: [&str; 2] = [CREATE_COMPLETE, UPDATE_COMPLETE];

fn action_of(status: &str) -> Option<Action> {
    match status {
        CREATE_IN_PROGRESS => Some(Action::Create),
        UPDATE_IN_PROGRESS => Some(Action::Update),
        DELETE_IN_PROGRESS => Some(Action::Delete),
        ROLLBACK_IN_PROGRESS => Some(Action::Rollback),
        _ => None,
    }
}

fn verb(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Delete => "delete",
        Action::Update | Action::Rollback => "update",
    }
}

impl Conductor {
    /// Sync every cluster in progress whose operation has been started.
    pub async fn sync_status(&self) {
        let clusters = match self.inner.db.clusters_in_status(&IN_PROGRESS).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("status sync: cannot list clusters: {e}");
                return;
            }
        };
        for c in clusters {
            if let Err(e) = self.sync_one(&c).await {
                tracing::warn!("status sync of cluster {}: {e}", c.uuid);
            }
        }
    }

    async fn sync_one(&self, cluster: &Cluster) -> Result<(), ConductorError> {
        let db = &self.inner.db;
        let status = cluster.status.clone().unwrap_or_default();
        let ctx = RequestContext {
            project_id: cluster.project_id.clone(),
            user_id: cluster.user_id.clone(),
            ..Default::default()
        };
        // create_timeout holds whatever the operation is doing.
        if status == CREATE_IN_PROGRESS {
            let minutes = cluster.create_timeout.unwrap_or(60);
            if let Some(created) = cluster.created_at {
                let deadline = created + chrono::Duration::minutes(minutes);
                if minutes > 0 && magnum_db::now() > deadline {
                    let reason = format!("Cluster creation timed out after {minutes} minutes");
                    return self
                        .finish(
                            &ctx,
                            cluster,
                            Action::Create,
                            Progress::Failed(reason),
                            None,
                        )
                        .await;
                }
            }
        }
        // Not started yet: the queue has it.
        if !db.operations_of(&cluster.uuid).await?.is_empty() {
            return Ok(());
        }
        // Judge by the row as it is now: the operation that was running
        // when the list was read may just have finished.
        let Some(fresh) = db.cluster_get(&cluster.uuid).await? else {
            return Ok(());
        };
        if fresh.status != cluster.status {
            return Ok(());
        }
        let cluster = &fresh;
        let Some(action) = action_of(&status) else {
            return Ok(());
        };
        if cluster.stack_id.is_none() {
            // Nothing was built and nothing is queued: the work was lost
            // before it reached the orchestration, if the row has been
            // quiet for longer than a claim could take to show.
            let s = &self.inner.settings;
            let quiet = cluster
                .updated_at
                .or(cluster.created_at)
                .map(|t| magnum_db::now() - t)
                .unwrap_or_default();
            if quiet < chrono::Duration::seconds(s.lease + s.grace)
                || !db.operations_of(&cluster.uuid).await?.is_empty()
            {
                return Ok(());
            }
            let reason = "The operation was lost before it started; it can be retried".to_string();
            return self
                .finish(&ctx, cluster, action, Progress::Failed(reason), None)
                .await;
        }
        let spec = self.spec(cluster).await?;
        let driver = match self.driver(&spec) {
            Ok(d) => d,
            Err(e) => {
                return self
                    .finish(&ctx, cluster, action, Progress::Failed(e.to_string()), None)
                    .await
            }
        };
        let observed = match driver.status(&spec).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!("status sync of cluster {}: {e}", cluster.uuid);
                if let DriverError::Unreachable(reason) = e {
                    // Say why nothing moves; the next sync asks again and
                    // create_timeout still bounds a create.
                    let why = format!("{reason}; retrying");
                    if cluster.status_reason.as_deref() != Some(why.as_str()) {
                        let status = cluster.status.clone().unwrap_or_default();
                        let mut f = Map::new();
                        f.insert("status_reason".into(), json!(why));
                        self.inner
                            .db
                            .cluster_update_fields(&cluster.uuid, &f, &[status.as_str()])
                            .await?;
                    }
                }
                return Ok(());
            }
        };
        if observed.action != action
            && !(action == Action::Update && observed.action == Action::Rollback)
        {
            // The orchestration has not caught up with the operation yet.
            return Ok(());
        }
        let progress = observed.progress.clone();
        self.finish(&ctx, cluster, observed.action, progress, Some(&observed))
            .await
    }

    /// Record what the orchestration reports for `cluster`.
    async fn finish(
        &self,
        ctx: &RequestContext,
        cluster: &Cluster,
        action: Action,
        progress: Progress,
        observed: Option<&Observed>,
    ) -> Result<(), ConductorError> {
        let db = &self.inner.db;
        let from = cluster.status.clone().unwrap_or_default();
        if let Some(o) = observed {
            let mut f = Map::new();
            for (k, v) in [
                ("api_address", &o.api_address),
                ("coe_version", &o.coe_version),
                ("container_version", &o.container_version),
            ] {
                if v.is_some() {
                    f.insert(k.into(), json!(v));
                }
            }
            if !f.is_empty() {
                db.cluster_update_fields(&cluster.uuid, &f, &[from.as_str()])
                    .await?;
            }
            for (ng, addresses) in &o.node_addresses {
                let f: Map<String, Value> = [("node_addresses".to_string(), json!(addresses))]
                    .into_iter()
                    .collect();
                db.nodegroup_update_fields(ng, &f).await?;
            }
        }
        let (to, reason) = match &progress {
            Progress::InProgress => return Ok(()),
            Progress::Complete => (format!("{}_COMPLETE", action.stem()), None),
            Progress::Failed(r) => (format!("{}_FAILED", action.stem()), Some(r.as_str())),
        };
        if action == Action::Delete && matches!(progress, Progress::Complete) {
            // No DELETE_COMPLETE row is left behind to get stuck: the
            // cluster stays DELETE_IN_PROGRESS until its rows are gone.
            if self.retire(cluster).await? {
                tracing::info!("cluster {} is {to}", cluster.uuid);
                let mut gone = cluster.clone();
                gone.status = Some(to);
                gone.status_reason = None;
                self.inner
                    .notifier
                    .cluster(ctx, verb(action), Outcome::Success, &gone)
                    .await;
            }
            return Ok(());
        }
        if !db
            .cluster_transition(&cluster.uuid, &[from.as_str()], &to, reason)
            .await?
        {
            // Another conductor recorded it first.
            return Ok(());
        }
        let failed = matches!(progress, Progress::Failed(_));
        for (ng_from, done, bad) in [
            (CREATE_IN_PROGRESS, CREATE_COMPLETE, CREATE_FAILED),
            (UPDATE_IN_PROGRESS, UPDATE_COMPLETE, UPDATE_FAILED),
        ] {
            let ng_to = if failed { bad } else { done };
            db.nodegroups_transition(&cluster.uuid, &[ng_from], ng_to, reason)
                .await?;
        }
        if !failed {
            for ng in db.nodegroups_of(&cluster.uuid).await? {
                if ng.status.as_deref() == Some(DELETE_IN_PROGRESS) {
                    db.nodegroup_destroy(&ng.uuid).await?;
                }
            }
        } else {
            db.nodegroups_transition(&cluster.uuid, &[DELETE_IN_PROGRESS], DELETE_FAILED, reason)
                .await?;
        }
        let outcome = if failed {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        let now = db
            .cluster_get(&cluster.uuid)
            .await?
            .unwrap_or_else(|| cluster.clone());
        tracing::info!("cluster {} is {to}", cluster.uuid);
        self.inner
            .notifier
            .cluster(ctx, verb(action), outcome, &now)
            .await;
        Ok(())
    }

    /// Ask drivers how healthy the finished clusters are.
    pub async fn sync_health(&self) {
        let clusters = match self.inner.db.clusters_in_status(&HEALTH_SYNCED).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("health sync: cannot list clusters: {e}");
                return;
            }
        };
        for c in clusters {
            let Ok(spec) = self.spec(&c).await else {
                continue;
            };
            let Ok(driver) = self.driver(&spec) else {
                continue;
            };
            match driver.health(&spec).await {
                Ok(Some(h)) => {
                    let reason = Some(h.reason.clone());
                    if c.health_status.as_deref() != Some(h.status.as_str())
                        || c.health_status_reason != reason
                    {
                        let f: Map<String, Value> = [
                            ("health_status".to_string(), json!(h.status)),
                            ("health_status_reason".to_string(), Value::Object(h.reason)),
                        ]
                        .into_iter()
                        .collect();
                        if let Err(e) = self.inner.db.cluster_update_fields(&c.uuid, &f, &[]).await
                        {
                            tracing::warn!("health sync of cluster {}: {e}", c.uuid);
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::debug!("health sync of cluster {}: {e}", c.uuid),
            }
        }
    }
}
