//! What the conductors' status sync reads in bulk, and its one
//! conditional write: a sync cycle costs a few statements whatever the
//! number of clusters, not several per cluster.

use std::collections::{HashMap, HashSet};

use magnum_core::objects::NodeGroup;
use sea_query::{Alias, Expr, Query};

use crate::nodegroups::NODEGROUPS;
use crate::records::{self, select, Mapping};
use crate::schema::{CLUSTER_OPERATION, CLUSTER_TRUST};
use crate::{ClusterTrust, Database, DbError};

const TRUSTS: Mapping = Mapping {
    table: &CLUSTER_TRUST,
    json: &[],
};

/// How many keys one `IN (…)` list holds at most (SQLite's bound on
/// parameters is far above it).
const CHUNK: usize = 1000;

fn c(name: &str) -> Expr {
    Expr::col(Alias::new(name))
}

/// The operations queued for a cluster (for `EXISTS`).
pub(crate) fn queued_for(cluster_uuid: &str) -> sea_query::SelectStatement {
    Query::select()
        .expr(Expr::val(1))
        .from(Alias::new(CLUSTER_OPERATION.name))
        .and_where(c("cluster_uuid").eq(cluster_uuid))
        .to_owned()
}

impl Database {
    /// The clusters that have an operation queued or running, in one
    /// statement (the queue holds only unfinished work).
    pub async fn clusters_with_operations(&self) -> Result<HashSet<String>, DbError> {
        let q = Query::select()
            .distinct()
            .column(Alias::new("cluster_uuid"))
            .from(Alias::new(CLUSTER_OPERATION.name))
            .to_owned();
        let rows: Vec<(String,)> = self.fetch_all(&q).await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    /// The node groups of these clusters, by cluster (each cluster's by
    /// id), one statement per thousand clusters.
    pub async fn nodegroups_by_cluster(
        &self,
        cluster_uuids: &[&str],
    ) -> Result<HashMap<String, Vec<NodeGroup>>, DbError> {
        let mut out: HashMap<String, Vec<NodeGroup>> = HashMap::new();
        for chunk in cluster_uuids.chunks(CHUNK) {
            let q = select(&NODEGROUPS)
                .and_where(c("cluster_id").is_in(chunk.iter().copied()))
                .order_by(Alias::new("id"), sea_query::Order::Asc)
                .to_owned();
            for ng in self.fetch_records::<NodeGroup>(&q, &NODEGROUPS).await? {
                out.entry(ng.cluster_id.clone()).or_default().push(ng);
            }
        }
        Ok(out)
    }

    /// The trusts of these clusters, by cluster, one statement per
    /// thousand clusters.
    pub async fn trusts_of_clusters(
        &self,
        cluster_uuids: &[&str],
    ) -> Result<HashMap<String, ClusterTrust>, DbError> {
        let mut out = HashMap::new();
        for chunk in cluster_uuids.chunks(CHUNK) {
            let q = select(&TRUSTS)
                .and_where(c("cluster_uuid").is_in(chunk.iter().copied()))
                .to_owned();
            for m in self.fetch_maps(&q, &TRUSTS).await? {
                let t: ClusterTrust = records::from_fields(&TRUSTS, m)?;
                out.insert(t.cluster_uuid.clone(), t);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;
    use crate::{Backend, Gate, Operation};
    use magnum_core::objects::status::*;
    use magnum_core::objects::Cluster;
    use serde_json::Map;

    async fn bulk_reads_and_idle_transition(backend: Backend) {
        let t = TestDb::create_migrated(backend).await;
        let db = t.migrated().await;
        let a = "a2222222-2222-2222-2222-222222222222";
        let b = "b2222222-2222-2222-2222-222222222222";
        for id in [a, b] {
            let cluster = Cluster {
                uuid: id.into(),
                status: Some(UPDATE_IN_PROGRESS.into()),
                ..Default::default()
            };
            db.cluster_create(&cluster, &[]).await.unwrap();
        }
        let op = Operation::new(a, "cluster_resize", Map::new(), Map::new());
        let gate = Gate {
            from: &[UPDATE_IN_PROGRESS],
            to: None,
        };
        assert!(db.operation_enqueue(&op, gate).await.unwrap());
        let busy = db.clusters_with_operations().await.unwrap();
        assert_eq!(busy, [a.to_string()].into_iter().collect());

        // A queued operation holds the cluster where it is.
        use crate::clusters::tests::moved;
        assert!(!moved(&db, a, UPDATE_IN_PROGRESS, UPDATE_COMPLETE, None, true).await);
        assert!(moved(&db, b, UPDATE_IN_PROGRESS, UPDATE_COMPLETE, None, true).await);
        assert!(!moved(&db, b, UPDATE_IN_PROGRESS, UPDATE_FAILED, None, true).await);
        let status = |c: Option<Cluster>| c.and_then(|c| c.status);
        assert_eq!(
            status(db.cluster_get(a).await.unwrap()).as_deref(),
            Some(UPDATE_IN_PROGRESS)
        );
        assert_eq!(
            status(db.cluster_get(b).await.unwrap()).as_deref(),
            Some(UPDATE_COMPLETE)
        );

        db.trust_save(&ClusterTrust {
            cluster_uuid: b.into(),
            trust_id: Some("t".into()),
            ..Default::default()
        })
        .await
        .unwrap();
        let ng = |cluster: &str, name: &str| NodeGroup {
            uuid: uuid::Uuid::new_v4().to_string(),
            name: name.into(),
            cluster_id: cluster.into(),
            project_id: "p".into(),
            ..Default::default()
        };
        for (cluster, name) in [(a, "m"), (b, "m"), (a, "w")] {
            db.nodegroup_create(&ng(cluster, name)).await.unwrap();
        }
        let groups = db.nodegroups_by_cluster(&[a, b]).await.unwrap();
        let names = |u: &str| groups[u].iter().map(|g| g.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(a), ["m", "w"]);
        assert_eq!(names(b), ["m"]);

        let trusts = db.trusts_of_clusters(&[a, b]).await.unwrap();
        assert_eq!(trusts.len(), 1);
        assert_eq!(trusts[b].trust_id.as_deref(), Some("t"));
        assert!(db.trusts_of_clusters(&[]).await.unwrap().is_empty());
    }

    backends!(bulk_reads_and_idle_transition);
}
