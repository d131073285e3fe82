//! The periodic syncs: where each cluster in progress stands in its
//! driver's orchestration (upstream's `sync_cluster_status`), and how
//! healthy the finished ones are (`sync_cluster_health_status`).
//!
//! The live conductors (heartbeat within `service_down_time`) share the
//! clusters: each asks the driver about the clusters whose uuid hashes to
//! its place among them ([`share_of`]), so each cluster is polled once per
//! interval however many conductors run (upstream polls every cluster from
//! every conductor). A conductor not yet listed, or unable to read the
//! list, syncs every cluster: each change is a conditional update from the
//! status that was read, so of several conductors seeing the same outcome
//! exactly one records it (and notifies).
//!
//! A cycle reads in bulk: the clusters, the queue, the node groups and
//! trusts of the clusters it asks about, each template once; then it asks
//! the drivers, `sync_concurrency` at a time, and writes only what changed.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::future::Future;

use magnum_core::drivers::{Action, ClusterSpec, DriverError, Observed, Progress};
use magnum_core::objects::status::*;
use magnum_core::objects::{Cluster, ClusterTemplate, NodeGroup};
use magnum_core::state::{nodegroup_moves, Status};
use magnum_core::{MagnumError, RequestContext};
use magnum_db::{ClusterEvent, EventKind, FailureClass, Write};
use serde_json::{json, Map, Value};

use crate::notify::Outcome;
use crate::{Conductor, ConductorError};

/// Statuses whose clusters get health syncs.
/// Templates by uuid as read in one sync cycle (`None`: gone).
pub(crate) type Templates = HashMap<String, Option<ClusterTemplate>>;

const HEALTH_SYNCED: [&str; 2] = [CREATE_COMPLETE, UPDATE_COMPLETE];

/// The binary name conductors heartbeat under (`magnum_service`).
pub const CONDUCTOR_BINARY: &str = "magnum-conductor";

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

/// The events of an outcome the status sync records: the driver's (each
/// failed resource, classified by its reason), then the cluster's move to
/// `to`, a failure classified by `reason`.
fn outcome_events(
    cluster: &Cluster,
    to: &str,
    reason: Option<&str>,
    observed: Option<(&Observed, &[NodeGroup])>,
    host: &str,
) -> Vec<Write> {
    let mut events = Vec::new();
    if let Some((o, _)) = observed {
        for d in &o.events {
            let text = format!("{}: {}", d.status, d.reason);
            let e = ClusterEvent::new(&cluster.uuid, EventKind::Driver, text)
                .resource(&d.resource)
                .nodegroup(d.nodegroup_uuid.as_deref())
                .class(FailureClass::classify(&d.reason))
                .host(host);
            events.push(Write::Event(e));
        }
    }
    let e = match reason {
        Some(r) if to.ends_with("_FAILED") => ClusterEvent::failure(&cluster.uuid, r),
        _ => ClusterEvent::new(
            &cluster.uuid,
            EventKind::Completed,
            format!("cluster is {to}"),
        ),
    };
    events.push(Write::Event(e.status(to).host(host)));
    events
}

/// FNV-1a (64 bits) of `bytes`: the same on every host, build and run
/// (unlike the standard library's randomly keyed hasher).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Which of `n` conductors (0-based, in sorted host order) syncs the
/// cluster `uuid`.
pub fn share_of(uuid: &str, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    (fnv1a(uuid.as_bytes()) % n as u64) as usize
}

/// The clusters this conductor syncs in a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Share {
    /// Every cluster: this conductor does not know its place.
    All,
    /// Those whose [`share_of`] among `of` conductors is `index`.
    Part { index: usize, of: usize },
}

impl Share {
    pub fn holds(&self, uuid: &str) -> bool {
        match *self {
            Share::All => true,
            Share::Part { index, of } => share_of(uuid, of) == index,
        }
    }
}

/// Run `f` on every item, at most `bound` at once.
async fn bounded<T, F, Fut>(items: impl IntoIterator<Item = T>, bound: usize, f: F)
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for item in items {
        while tasks.len() >= bound.max(1) {
            if let Some(Err(e)) = tasks.join_next().await {
                tracing::error!("sync task: {e}");
            }
        }
        tasks.spawn(f(item));
    }
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            tracing::error!("sync task: {e}");
        }
    }
}

fn admin() -> RequestContext {
    RequestContext {
        is_admin: true,
        all_tenants: true,
        ..Default::default()
    }
}

impl Conductor {
    /// This conductor's place among the live ones.
    pub(crate) async fn share(&self) -> Share {
        let s = &self.inner.settings;
        match self.inner.db.hosts_up(CONDUCTOR_BINARY, s.down_after).await {
            Ok(hosts) => match hosts.iter().position(|h| *h == s.host) {
                Some(index) => Share::Part {
                    index,
                    of: hosts.len(),
                },
                None => Share::All,
            },
            Err(e) => {
                tracing::warn!("cannot list live conductors, syncing every cluster: {e}");
                Share::All
            }
        }
    }

    /// The specs of `clusters` (keyed by uuid) in a few statements: their
    /// node groups and trusts in bulk, each template once (none of those
    /// already in `templates`, by uuid). A cluster whose template is gone
    /// gets that error.
    pub(crate) async fn specs(
        &self,
        clusters: &[&Cluster],
        mut templates: Templates,
    ) -> Result<HashMap<String, Result<ClusterSpec, MagnumError>>, ConductorError> {
        let db = &self.inner.db;
        let uuids: Vec<&str> = clusters.iter().map(|c| c.uuid.as_str()).collect();
        let mut groups = db.nodegroups_by_cluster(&uuids).await?;
        let mut trusts = db.trusts_of_clusters(&uuids).await?;
        for c in clusters {
            self.template_once(&mut templates, c).await?;
        }
        Ok(clusters
            .iter()
            .map(|c| {
                let id = c.cluster_template_id.clone().unwrap_or_default();
                let spec = match templates.get(&id).cloned().flatten() {
                    Some(template) => Ok(ClusterSpec {
                        cluster: (*c).clone(),
                        template,
                        nodegroups: groups.remove(&c.uuid).unwrap_or_default(),
                        trust: trusts.remove(&c.uuid).and_then(crate::ops::credentials),
                        as_service: false,
                    }),
                    None => Err(MagnumError::ClusterTemplateNotFound(id)),
                };
                (c.uuid.clone(), spec)
            })
            .collect())
    }

    /// Sync the clusters in progress of this conductor's share whose
    /// operation has been started.
    pub async fn sync_status(&self) {
        let began = std::time::Instant::now();
        let db = &self.inner.db;
        let clusters = match db.clusters_in_status(&IN_PROGRESS).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("status sync: cannot list clusters: {e}");
                return;
            }
        };
        let share = self.share().await;
        let listed = clusters.len();
        let clusters: Vec<Cluster> = clusters
            .into_iter()
            .filter(|c| share.holds(&c.uuid))
            .collect();
        let (clusters, templates) = match self.only_ours(clusters).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("status sync: {e}");
                return;
            }
        };
        let mine = clusters.len();
        if clusters.is_empty() {
            tracing::debug!(
                "status sync: 0 of {listed} clusters in progress are this conductor's ({share:?})"
            );
            return;
        }
        // Read after the clusters: an operation queued since shows here.
        let busy = match db.clusters_with_operations().await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("status sync: cannot read queued operations: {e}");
                return;
            }
        };
        let asked: Vec<&Cluster> = clusters
            .iter()
            .filter(|c| c.stack_id.is_some() && !busy.contains(&c.uuid))
            .collect();
        let mut specs = match self.specs(&asked, templates).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("status sync: {e}");
                return;
            }
        };
        let work: Vec<_> = clusters
            .into_iter()
            .map(|c| {
                let queued = busy.contains(&c.uuid);
                let spec = specs.remove(&c.uuid);
                (c, queued, spec)
            })
            .collect();
        bounded(
            work,
            self.inner.settings.sync_concurrency,
            |(c, queued, spec)| {
                let me = self.clone();
                async move {
                    if let Err(e) = me.sync_one(&c, queued, spec).await {
                        tracing::warn!("status sync of cluster {}: {e}", c.uuid);
                    }
                }
            },
        )
        .await;
        tracing::debug!(
            "status sync: {mine} of {listed} clusters in progress synced ({share:?}) in {} ms",
            began.elapsed().as_millis()
        );
    }

    /// `clusters` without those of drivers this conductor does not run:
    /// external drivers (`[drivers] external_drivers`), which other
    /// conductors run and sync, and drivers it does not know at all (a
    /// cluster of another deployment's driver is left as it is, as
    /// upstream's conductor leaves one, rather than failed for a
    /// configuration this conductor lacks). A cluster whose template is
    /// gone stays, for `sync_one` to judge. The templates read (each once)
    /// come back, for [`Conductor::specs`].
    async fn only_ours(
        &self,
        clusters: Vec<Cluster>,
    ) -> Result<(Vec<Cluster>, Templates), ConductorError> {
        let mut templates = Templates::new();
        let mut kept = Vec::with_capacity(clusters.len());
        for c in clusters {
            let ours = match self.template_once(&mut templates, &c).await? {
                None => true,
                Some(t) => match self.inner.drivers.for_template(t) {
                    Ok(d) => !d.external(),
                    Err(e) => {
                        tracing::warn!("status sync: cluster {} is left alone: {e}", c.uuid);
                        false
                    }
                },
            };
            if ours {
                kept.push(c);
            }
        }
        Ok((kept, templates))
    }

    /// The template of `c`, read once into `templates`.
    async fn template_once<'a>(
        &self,
        templates: &'a mut Templates,
        c: &Cluster,
    ) -> Result<Option<&'a ClusterTemplate>, ConductorError> {
        let id = c.cluster_template_id.clone().unwrap_or_default();
        let slot = match templates.entry(id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(slot) => {
                let t = self
                    .inner
                    .db
                    .cluster_template_by_uuid(&admin(), slot.key())
                    .await?;
                slot.insert(t)
            }
        };
        Ok(slot.as_ref())
    }

    /// Sync one cluster as listed. `queued`: it had an operation queued
    /// when the queue was read; `spec`: read in bulk with the others.
    async fn sync_one(
        &self,
        cluster: &Cluster,
        queued: bool,
        spec: Option<Result<ClusterSpec, MagnumError>>,
    ) -> Result<(), ConductorError> {
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
                if minutes > 0
                    && magnum_db::now() > deadline
                    && !self.retried_within(&cluster.uuid, minutes).await?
                {
                    let reason = format!("Cluster creation timed out after {minutes} minutes");
                    let failed = Progress::Failed(reason);
                    return self
                        .finish(&ctx, cluster, Action::Create, failed, None, false)
                        .await;
                }
            }
        }
        // Not started yet: the queue has it.
        if queued {
            return Ok(());
        }
        let Some(action) = action_of(&status) else {
            return Ok(());
        };
        let mut spec = spec;
        let fresh;
        let mut cluster = cluster;
        if cluster.stack_id.is_none() {
            // Judge by the row as it is now: the operation that was
            // running when the list was read may just have finished.
            let Some(now) = db.cluster_get(&cluster.uuid).await? else {
                return Ok(());
            };
            if now.status != cluster.status {
                return Ok(());
            }
            fresh = now;
            cluster = &fresh;
            spec = None;
        }
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
            let reason =
                "The operation was lost before it started; delete the cluster and create it again"
                    .to_string();
            return self
                .finish(&ctx, cluster, action, Progress::Failed(reason), None, true)
                .await;
        }
        let spec = match spec {
            Some(spec) => spec?,
            None => self.spec(cluster).await?,
        };
        let driver = match self.driver(&spec) {
            Ok(d) => d,
            Err(e) => {
                let failed = Progress::Failed(e.to_string());
                return self.finish(&ctx, cluster, action, failed, None, true).await;
            }
        };
        let mut observed = driver.status(&spec).await;
        if status == DELETE_IN_PROGRESS {
            // A delete whose owner's trust is refused is followed with the
            // service's own credentials, as its operation deleted it.
            if let Err(DriverError::Failed(reason)) = &observed {
                if let Some(service) = crate::ops::as_service(&spec, reason) {
                    observed = driver.status(&service).await;
                }
            }
        }
        let observed = match observed {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!("status sync of cluster {}: {e}", cluster.uuid);
                if let DriverError::Unreachable(reason) = e {
                    // Say why nothing moves; the next sync asks again and
                    // create_timeout still bounds a create.
                    let why = format!("{reason}; retrying");
                    if cluster.status_reason.as_deref() != Some(why.as_str()) {
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
        let seen = Some((&observed, spec.nodegroups.as_slice()));
        self.finish(&ctx, cluster, observed.action, progress, seen, true)
            .await
    }

    /// Whether the create of `cluster_uuid` was queued again (retried from
    /// CREATE_FAILED: a create queued after a failed one) within the last
    /// `minutes`: its create timeout counts from then. Read only for
    /// creates past their first deadline.
    async fn retried_within(
        &self,
        cluster_uuid: &str,
        minutes: i64,
    ) -> Result<bool, ConductorError> {
        let db = &self.inner.db;
        let since = magnum_db::now() - chrono::Duration::minutes(minutes);
        let Some(queued) = db
            .event_latest(cluster_uuid, EventKind::Queued, "cluster_create")
            .await?
        else {
            return Ok(false);
        };
        let failed_before = db
            .event_failed_before(cluster_uuid, CREATE_FAILED, queued.id)
            .await?;
        Ok(failed_before && queued.created_at.is_some_and(|at| at > since))
    }

    /// Record what the orchestration reports for `cluster`: the addresses
    /// and versions `observed` gives that differ from what is stored (with
    /// the node groups as read), then the outcome. `idle`: the outcome is
    /// the driver's, so it is recorded only while no operation is queued.
    async fn finish(
        &self,
        ctx: &RequestContext,
        cluster: &Cluster,
        action: Action,
        progress: Progress,
        observed: Option<(&Observed, &[NodeGroup])>,
        idle: bool,
    ) -> Result<(), ConductorError> {
        let db = &self.inner.db;
        let from = cluster.status.clone().unwrap_or_default();
        if let Some((o, groups)) = observed {
            let mut f = Map::new();
            for (k, v, stored) in [
                ("api_address", &o.api_address, &cluster.api_address),
                ("coe_version", &o.coe_version, &cluster.coe_version),
                (
                    "container_version",
                    &o.container_version,
                    &cluster.container_version,
                ),
            ] {
                if v.is_some() && v != stored {
                    f.insert(k.into(), json!(v));
                }
            }
            if !f.is_empty() {
                db.cluster_update_fields(&cluster.uuid, &f, &[from.as_str()])
                    .await?;
            }
            for (ng, addresses) in &o.node_addresses {
                let stored = groups.iter().find(|g| g.uuid == *ng);
                if stored.is_some_and(|g| g.node_addresses.as_ref() == Some(addresses)) {
                    continue;
                }
                let f: Map<String, Value> = [("node_addresses".to_string(), json!(addresses))]
                    .into_iter()
                    .collect();
                db.nodegroup_update_fields(ng, &f).await?;
            }
        }
        let (to, reason) = match &progress {
            Progress::InProgress => return Ok(()),
            Progress::Complete => (Status::settled(action.stem(), false), None),
            Progress::Failed(r) => (Status::settled(action.stem(), true), Some(r.as_str())),
        };
        let Some(to) = to.map(|s| s.as_str().to_string()) else {
            return Ok(());
        };
        if action == Action::Delete && matches!(progress, Progress::Complete) {
            // No DELETE_COMPLETE row is left behind to get stuck: the
            // cluster stays DELETE_IN_PROGRESS until its rows are gone.
            if self.retire(cluster).await? {
                tracing::info!("cluster {} is {to}", cluster.uuid);
                // After the rows it describes are gone: kept until pruned.
                let e = ClusterEvent::new(
                    &cluster.uuid,
                    EventKind::Completed,
                    format!("cluster is {to}"),
                )
                .status(&to)
                .host(&self.inner.settings.host);
                if let Err(e) = db.event_record(&e).await {
                    tracing::warn!(
                        "cluster {}: its deletion is not in its events: {e}",
                        cluster.uuid
                    );
                }
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
        // The cluster and its node groups move together, or not at all
        // (another conductor recorded it first, or an operation was queued
        // since the queue was read: it goes first).
        let failed = matches!(progress, Progress::Failed(_));
        let reason = reason.map(str::to_string);
        let mut then: Vec<Write> = Status::parse(&to)
            .map(nodegroup_moves)
            .unwrap_or_default()
            .into_iter()
            .map(|(ng_from, ng_to)| Write::NodegroupsStatus {
                cluster_uuid: cluster.uuid.clone(),
                from: vec![ng_from.as_str().into()],
                to: ng_to.as_str().into(),
                reason: reason.clone(),
            })
            .collect();
        if !failed {
            then.push(Write::DropNodegroupsIn {
                cluster_uuid: cluster.uuid.clone(),
                status: DELETE_IN_PROGRESS.into(),
            });
        }
        // The outcome and the driver's own account of it are recorded with
        // the move, so only by the conductor that made it.
        then.extend(outcome_events(
            cluster,
            &to,
            reason.as_deref(),
            observed,
            &self.inner.settings.host,
        ));
        let first = Write::ClusterStatus {
            uuid: cluster.uuid.clone(),
            from: vec![from.clone()],
            to: to.clone(),
            reason: reason.clone(),
            if_idle: idle,
        };
        if !db.settle(&first, &then).await? {
            return Ok(());
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

    /// Ask drivers how healthy the finished clusters of this conductor's
    /// share are (specs read in bulk, `sync_concurrency` at a time).
    pub async fn sync_health(&self) {
        let clusters = match self.inner.db.clusters_in_status(&HEALTH_SYNCED).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("health sync: cannot list clusters: {e}");
                return;
            }
        };
        let share = self.share().await;
        let clusters: Vec<&Cluster> = clusters.iter().filter(|c| share.holds(&c.uuid)).collect();
        let specs = match self.specs(&clusters, Templates::new()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("health sync: {e}");
                return;
            }
        };
        let specs = specs.into_values().filter_map(Result::ok);
        bounded(specs, self.inner.settings.sync_concurrency, |spec| {
            let me = self.clone();
            async move { me.health_one(&spec).await }
        })
        .await;
    }

    async fn health_one(&self, spec: &ClusterSpec) {
        let c = &spec.cluster;
        let Ok(driver) = self.driver(spec) else {
            return;
        };
        if driver.external() {
            return;
        }
        match driver.health(spec).await {
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
                    if let Err(e) = self.inner.db.cluster_update_fields(&c.uuid, &f, &[]).await {
                        tracing::warn!("health sync of cluster {}: {e}", c.uuid);
                    }
                }
            }
            Ok(None) => {}
            Err(e) => tracing::debug!("health sync of cluster {}: {e}", c.uuid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uuid(i: u32) -> String {
        format!("{i:08x}-1111-4111-8111-111111111111")
    }

    #[test]
    fn fnv1a_is_the_published_function() {
        // Test vectors of FNV-1a 64.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn every_cluster_has_exactly_one_conductor() {
        for n in 1..=5 {
            let shares: Vec<Share> = (0..n).map(|index| Share::Part { index, of: n }).collect();
            let mut per = vec![0usize; n];
            for i in 0..3000 {
                let u = uuid(i);
                let holders: Vec<usize> = (0..n).filter(|k| shares[*k].holds(&u)).collect();
                assert_eq!(holders.len(), 1, "{u} among {n}");
                assert_eq!(holders[0], share_of(&u, n), "stable");
                per[holders[0]] += 1;
            }
            // Roughly even: no conductor gets under half its fair part.
            for k in per {
                assert!(k * n * 2 > 3000, "{n} conductors: {k} of 3000");
            }
        }
        assert!(Share::All.holds(&uuid(7)));
        assert_eq!(share_of(&uuid(7), 0), 0);
    }
}
