//! The conductors' durable work queue (`rs_cluster_operation`).
//!
//! An operation is one upstream conductor RPC method with its arguments,
//! exactly as it travels on the bus (`cluster_create` with the cluster in
//! versioned-object form, …). The API stores it in the same transaction as
//! the cluster's new status, then casts it as a nudge; whichever conductor
//! claims it runs it. A claim is a lease (`owner`, `lease_until`) the runner
//! renews while it works: when a conductor dies, its lease runs out and
//! another conductor's sweep claims the operation again. Operations of one
//! cluster run in the order they were queued.

use chrono::NaiveDateTime;
use magnum_core::objects::{Cluster, NodeGroup};
use sea_query::{Alias, Cond, Expr, Query};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use magnum_core::state::Gate;

use crate::events::{ClusterEvent, EventKind};
use crate::records::{self, insert, select, Mapping};
use crate::schema::{CLUSTER, CLUSTER_OPERATION, NODEGROUP, PROJECT_QUOTA};
use crate::{now, Database, DbError};

/// The key of a cast's context naming the queued operation it is about
/// (the API sets it, conductors read it).
pub const OPERATION_KEY: &str = "magnum_rs_operation";

const OPERATIONS: Mapping = Mapping {
    table: &CLUSTER_OPERATION,
    json: &["args", "context"],
};

/// One queued cluster operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Operation {
    pub id: i64,
    pub uuid: String,
    pub cluster_uuid: String,
    /// The upstream conductor RPC method, e.g. `cluster_create`.
    pub method: String,
    /// Its keyword arguments, in wire form.
    pub args: Map<String, Value>,
    /// The request context it runs under (identities, never tokens).
    pub context: Map<String, Value>,
    pub owner: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub attempts: i64,
    pub created_at: Option<NaiveDateTime>,
    pub updated_at: Option<NaiveDateTime>,
}

impl Operation {
    /// A new operation on `cluster_uuid`, with a fresh id.
    pub fn new(
        cluster_uuid: &str,
        method: &str,
        args: Map<String, Value>,
        context: Map<String, Value>,
    ) -> Self {
        Operation {
            uuid: uuid::Uuid::new_v4().to_string(),
            cluster_uuid: cluster_uuid.to_string(),
            method: method.to_string(),
            args,
            context,
            ..Default::default()
        }
    }
}

/// What [`Database::cluster_create_queued`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The cluster, its node groups and its operation are stored.
    Queued,
    /// The project already had `clusters` clusters, as many as its limit
    /// or more; nothing was written.
    OverQuota { clusters: i64 },
}

fn c(name: &str) -> Expr {
    Expr::col(Alias::new(name))
}

/// How long a project's cluster count in `rs_project_quota` is trusted
/// before it is counted again.
const RECOUNT_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// `UPDATE` of `project`'s row of `rs_project_quota` counting a cluster
/// in (the statement that locks the row) or out (`false`; never below
/// zero). An unknown count stays unknown.
pub(crate) fn project_count_moved(project: &str, added: bool) -> sea_query::UpdateStatement {
    let mut q = Query::update()
        .table(Alias::new(PROJECT_QUOTA.name))
        .value(Alias::new("updated_at"), now())
        .and_where(c("project_id").eq(project))
        .to_owned();
    if added {
        q.value(Alias::new("clusters"), c("clusters").add(1));
    } else {
        q.value(Alias::new("clusters"), c("clusters").sub(1))
            .and_where(c("clusters").gt(0));
    }
    q
}

impl Database {
    /// Store a new cluster, its node groups and the operation that builds
    /// it, all or nothing. With a `limit`, only while the cluster's project
    /// has fewer clusters than that; `OverQuota` wrote nothing.
    ///
    /// One transaction: the inserts (the node groups in one statement),
    /// then the project's row of `rs_project_quota` locked by the `UPDATE`
    /// that counts this cluster in (a row lock on PostgreSQL and MariaDB;
    /// on SQLite the transaction holds the write lock from its `BEGIN
    /// IMMEDIATE`), then the count read, then the commit: creates of one
    /// project take turns only for the lock, the read and the commit. The
    /// count is the row's, or a fresh `COUNT(*)` of the project's clusters
    /// (this one included) when the row's is unknown, stale or over the
    /// limit (see [`schema::PROJECT_QUOTA`](crate::schema::PROJECT_QUOTA)).
    /// Reads follow the lock, so they see every cluster the previous
    /// holders committed: on PostgreSQL (READ COMMITTED) each statement
    /// reads afresh, and on MariaDB (REPEATABLE READ) the snapshot is taken
    /// at the transaction's first plain read, which is the count's (inserts
    /// and updates take none). A crash leaves no lock behind: it goes with
    /// the transaction.
    pub async fn cluster_create_queued(
        &self,
        cluster: &Cluster,
        nodegroups: &[NodeGroup],
        op: &Operation,
        limit: Option<i64>,
    ) -> Result<CreateOutcome, DbError> {
        let project = cluster.project_id.as_deref().unwrap_or_default();
        // A project's first create finds no row: it adds the row outside
        // any transaction (a concurrent create may add it first) and
        // starts again. Rows are never deleted, so the second attempt
        // finds it.
        for _ in 0..2 {
            let mut tx = self.begin().await?;
            tx.execute(&insert(
                &crate::clusters::CLUSTERS,
                &records::to_fields(cluster),
            ))
            .await?;
            let rows: Vec<_> = nodegroups.iter().map(records::to_fields).collect();
            if let Some(q) = records::insert_many(&crate::nodegroups::NODEGROUPS, &rows) {
                tx.execute(&q).await?;
            }
            tx.execute(&insert(&OPERATIONS, &records::to_fields(op)))
                .await?;
            tx.execute(&crate::events::event_insert(&crate::events::queued(op)))
                .await?;
            let Some(limit) = limit else {
                tx.commit().await?;
                return Ok(CreateOutcome::Queued);
            };
            if tx.execute(&project_count_moved(project, true)).await? == 0 {
                // No row: nothing is locked (MariaDB holds a gap lock
                // until the rollback), so end the transaction before
                // adding it.
                tx.rollback().await?;
                self.add_project_quota(project).await?;
                continue;
            }
            // This cluster is counted too.
            let clusters = Self::project_count(&mut tx, project, limit).await? - 1;
            if clusters >= limit {
                tx.rollback().await?;
                return Ok(CreateOutcome::OverQuota { clusters });
            }
            tx.commit().await?;
            return Ok(CreateOutcome::Queued);
        }
        Err(DbError::Sql(sqlx::Error::RowNotFound))
    }

    /// The project's cluster count, in a transaction that holds its row of
    /// `rs_project_quota`: the row's when known, counted within the last
    /// [`RECOUNT_AFTER`] and under `limit`; else (the create would take the
    /// last slot, or more) counted from `cluster` and written back.
    async fn project_count(tx: &mut crate::Tx, project: &str, limit: i64) -> Result<i64, DbError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            clusters: Option<i32>,
            counted_at: Option<chrono::NaiveDateTime>,
        }
        let q = Query::select()
            .columns(["clusters", "counted_at"].map(Alias::new))
            .from(Alias::new(PROJECT_QUOTA.name))
            .and_where(c("project_id").eq(project))
            .to_owned();
        let row: Option<Row> = tx.fetch_optional(&q).await?;
        let at = now();
        if let Some(Row {
            clusters: Some(n),
            counted_at: Some(t),
        }) = row
        {
            // The project's last slot is always counted afresh.
            if i64::from(n) < limit && at - t < RECOUNT_AFTER {
                return Ok(n.into());
            }
        }
        let n = tx.count(&Self::cluster_count_query(project)).await?;
        let fix = Query::update()
            .table(Alias::new(PROJECT_QUOTA.name))
            .value(Alias::new("clusters"), n)
            .value(Alias::new("counted_at"), at)
            .and_where(c("project_id").eq(project))
            .to_owned();
        tx.execute(&fix).await?;
        Ok(n)
    }

    /// Add `project`'s row of `rs_project_quota`, its count unknown
    /// (already there: fine).
    async fn add_project_quota(&self, project: &str) -> Result<(), DbError> {
        let add = Query::insert()
            .into_table(Alias::new(PROJECT_QUOTA.name))
            .columns(["project_id", "created_at"].map(Alias::new))
            .values_panic([project.into(), now().into()])
            .to_owned();
        match self.execute(&add).await {
            Ok(_) | Err(DbError::Duplicate) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Queue `op` if the cluster passes `gate`, moving it to the gate's
    /// status in the same transaction. `Ok(false)`: the cluster is gone or
    /// in another state, and nothing changed. A queued delete cancels the
    /// cluster's operations no conductor has claimed yet.
    pub async fn operation_enqueue(&self, op: &Operation, gate: Gate<'_>) -> Result<bool, DbError> {
        self.nodegroup_enqueue(op, gate, None).await
    }

    /// Queue `op` and move a node group's status with it (node group
    /// operations also move their cluster through `gate`): a new group is
    /// inserted (`true`), an existing one takes the group's status.
    pub async fn nodegroup_enqueue(
        &self,
        op: &Operation,
        gate: Gate<'_>,
        nodegroup: Option<(&NodeGroup, bool)>,
    ) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
        let mut q = Query::update()
            .table(Alias::new(CLUSTER.name))
            .value(Alias::new("updated_at"), now())
            .and_where(c("uuid").eq(op.cluster_uuid.as_str()))
            .and_where(c("status").is_in(gate.from.iter().copied()))
            .to_owned();
        if let Some(to) = gate.to {
            q.value(Alias::new("status"), to);
            q.value(Alias::new("status_reason"), Option::<String>::None);
        }
        if tx.execute(&q).await? != 1 {
            return Ok(false);
        }
        if let Some(to) = gate.to.filter(|_| {
            matches!(
                op.method.as_str(),
                "cluster_create" | "cluster_update" | "cluster_resize"
            )
        }) {
            // A retry from failure (a failed create driven again, a
            // failed update updated or resized): the node groups that
            // failed with the cluster go into progress with it.
            let failed = to.replace("_IN_PROGRESS", "_FAILED");
            tx.execute(
                &Query::update()
                    .table(Alias::new(NODEGROUP.name))
                    .value(Alias::new("status"), to)
                    .value(Alias::new("updated_at"), now())
                    .and_where(c("cluster_id").eq(op.cluster_uuid.as_str()))
                    .and_where(c("status").eq(failed.as_str()))
                    .to_owned(),
            )
            .await?;
        }
        if op.method == "cluster_delete" {
            tx.execute(
                &Query::delete()
                    .from_table(Alias::new(CLUSTER_OPERATION.name))
                    .and_where(c("cluster_uuid").eq(op.cluster_uuid.as_str()))
                    .and_where(c("owner").is_null())
                    .to_owned(),
            )
            .await?;
        }
        match nodegroup {
            Some((ng, true)) => {
                tx.execute(&insert(
                    &crate::nodegroups::NODEGROUPS,
                    &records::to_fields(ng),
                ))
                .await?;
            }
            Some((ng, false)) => {
                let q = Query::update()
                    .table(Alias::new(NODEGROUP.name))
                    .value(Alias::new("status"), ng.status.clone())
                    .value(Alias::new("status_reason"), Option::<String>::None)
                    .value(Alias::new("updated_at"), now())
                    .and_where(c("uuid").eq(ng.uuid.as_str()))
                    .to_owned();
                tx.execute(&q).await?;
            }
            None => {}
        }
        tx.execute(&insert(&OPERATIONS, &records::to_fields(op)))
            .await?;
        tx.execute(&crate::events::event_insert(&crate::events::queued(op)))
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Queue `op` with no status change (operations that arrive from
    /// upstream's API, which casts without writing).
    pub async fn operation_insert(&self, op: &Operation) -> Result<(), DbError> {
        let mut tx = self.begin().await?;
        tx.execute(&insert(&OPERATIONS, &records::to_fields(op)))
            .await?;
        tx.execute(&crate::events::event_insert(&crate::events::queued(op)))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn operation_get(&self, uuid: &str) -> Result<Option<Operation>, DbError> {
        let q = select(&OPERATIONS).and_where(c("uuid").eq(uuid)).to_owned();
        Ok(self.operations_where(&q).await?.into_iter().next())
    }

    async fn operations_where(
        &self,
        q: &sea_query::SelectStatement,
    ) -> Result<Vec<Operation>, DbError> {
        self.fetch_maps(q, &OPERATIONS)
            .await?
            .into_iter()
            .map(|m| records::from_fields(&OPERATIONS, m))
            .collect()
    }

    /// The operations queued for a cluster, oldest first.
    pub async fn operations_of(&self, cluster_uuid: &str) -> Result<Vec<Operation>, DbError> {
        let q = select(&OPERATIONS)
            .and_where(c("cluster_uuid").eq(cluster_uuid))
            .order_by(Alias::new("id"), sea_query::Order::Asc)
            .to_owned();
        self.operations_where(&q).await
    }

    /// Operations a sweep should claim: never claimed and older than
    /// `grace` seconds (their cast was lost), or whose lease ran out (their
    /// conductor died). Oldest first.
    pub async fn operations_due(&self, grace: i64) -> Result<Vec<Operation>, DbError> {
        let at = now();
        let unclaimed_since = at - chrono::Duration::seconds(grace);
        let q = select(&OPERATIONS)
            .cond_where(
                Cond::any()
                    .add(
                        Cond::all()
                            .add(c("owner").is_null())
                            .add(c("created_at").lte(unclaimed_since)),
                    )
                    .add(c("lease_until").lt(at)),
            )
            .order_by(Alias::new("id"), sea_query::Order::Asc)
            .to_owned();
        self.operations_where(&q).await
    }

    /// Claim `uuid` for `host` for `lease` seconds if it is the oldest
    /// operation of its cluster and free (unclaimed, or its lease ran out).
    /// The claim's `owner` is a token of this attempt alone (the host name
    /// and a fresh uuid), which renewals, fenced writes ([`Database::fenced`])
    /// and the finish must present: an attempt whose lease lapsed and was
    /// claimed again, even by the same host, can write nothing.
    /// `Ok(None)`: someone else has it, it is done, or it must wait.
    pub async fn operation_claim(
        &self,
        uuid: &str,
        host: &str,
        lease: i64,
    ) -> Result<Option<Operation>, DbError> {
        let owner = format!("{host} {}", uuid::Uuid::new_v4().simple());
        let owner = owner.as_str();
        let Some(op) = self.operation_get(uuid).await? else {
            return Ok(None);
        };
        let first = self.operations_of(&op.cluster_uuid).await?;
        if first.first().map(|o| o.uuid.as_str()) != Some(uuid) {
            return Ok(None);
        }
        let at = now();
        let q = Query::update()
            .table(Alias::new(CLUSTER_OPERATION.name))
            .value(Alias::new("owner"), owner)
            .value(
                Alias::new("lease_until"),
                at + chrono::Duration::seconds(lease),
            )
            .value(Alias::new("attempts"), c("attempts").add(1))
            .value(Alias::new("updated_at"), at)
            .and_where(c("uuid").eq(uuid))
            .cond_where(
                Cond::any()
                    .add(c("owner").is_null())
                    .add(c("lease_until").lt(at)),
            )
            .to_owned();
        // The claim and its event, together.
        let mut tx = self.begin().await?;
        if tx.execute(&q).await? != 1 {
            return Ok(None);
        }
        let claimed = ClusterEvent::new(
            &op.cluster_uuid,
            EventKind::Claimed,
            format!(
                "{} claimed by {host} (attempt {})",
                op.method,
                op.attempts + 1
            ),
        )
        .method(&op.method)
        .operation(&op.uuid)
        .nodegroup(crate::events::nodegroup_of(&op).as_deref())
        .host(host);
        tx.execute(&crate::events::event_insert(&claimed)).await?;
        tx.commit().await?;
        self.operation_get(uuid).await
    }

    /// Extend the lease of the attempt whose token is `owner` on `uuid`
    /// to `lease` seconds from now. `Ok(false)`: the lease was lost.
    pub async fn operation_renew(
        &self,
        uuid: &str,
        owner: &str,
        lease: i64,
    ) -> Result<bool, DbError> {
        let at = now();
        let q = Query::update()
            .table(Alias::new(CLUSTER_OPERATION.name))
            .value(
                Alias::new("lease_until"),
                at + chrono::Duration::seconds(lease),
            )
            .value(Alias::new("updated_at"), at)
            .and_where(c("uuid").eq(uuid))
            .and_where(c("owner").eq(owner))
            .to_owned();
        Ok(self.execute(&q).await? == 1)
    }

    /// Remove a finished operation `owner` holds. `Ok(false)`: it was not
    /// (or no longer) theirs.
    pub async fn operation_finish(&self, uuid: &str, owner: &str) -> Result<bool, DbError> {
        let q = Query::delete()
            .from_table(Alias::new(CLUSTER_OPERATION.name))
            .and_where(c("uuid").eq(uuid))
            .and_where(c("owner").eq(owner))
            .to_owned();
        Ok(self.execute(&q).await? == 1)
    }
}

#[cfg(test)]
mod tests;
