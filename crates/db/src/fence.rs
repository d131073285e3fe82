//! The writes of an operation's attempt, fenced by its claim.
//!
//! Each claim of an operation writes a fresh token into its `owner` column
//! (see [`Database::operation_claim`]). An attempt writes its results as a
//! batch of [`Write`]s in one transaction whose first statement touches the
//! operation's row on the condition that it still holds that token: the
//! row lock it takes (SQLite: the write lock) keeps any other conductor
//! from claiming the operation until the batch commits, and an attempt
//! whose claim was taken over writes nothing at all. A cluster and its node
//! groups therefore change status together, and the results of an attempt
//! are recorded in the same transaction that retires its operation.

use sea_query::{Alias, Expr, Query};
use serde_json::{Map, Value};

use crate::records::{self, insert, Mapping};
use crate::schema::{CLUSTER_OPERATION, X509KEYPAIR};
use crate::{now, Database, DbError, X509KeyPair};

const KEYPAIRS: Mapping = Mapping {
    table: &X509KEYPAIR,
    json: &[],
};

/// The attempt that holds an operation: the operation and the token its
/// claim wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub operation: String,
    pub token: String,
}

/// One write of a batch.
#[derive(Debug, Clone)]
pub enum Write {
    /// Some fields of a cluster, if its status is one of `only_in` (any
    /// when empty).
    Cluster {
        uuid: String,
        fields: Map<String, Value>,
        only_in: Vec<String>,
    },
    /// Some fields of a node group.
    Nodegroup {
        uuid: String,
        fields: Map<String, Value>,
    },
    /// A cluster from one of `from` to `to`; with `if_idle`, only while no
    /// operation is queued for it.
    ClusterStatus {
        uuid: String,
        from: Vec<String>,
        to: String,
        reason: Option<String>,
        if_idle: bool,
    },
    /// The node groups of a cluster that are in one of `from`, to `to`.
    NodegroupsStatus {
        cluster_uuid: String,
        from: Vec<String>,
        to: String,
        reason: Option<String>,
    },
    /// Remove the node groups of a cluster that are in `status`.
    DropNodegroupsIn {
        cluster_uuid: String,
        status: String,
    },
    /// A certificate kept in upstream's `x509keypair` table.
    KeyPair(X509KeyPair),
    /// Certificates of upstream's `x509keypair` table, by uuid, no longer
    /// named by their cluster (those already gone are fine).
    DropKeyPairs(Vec<String>),
    /// Record an event of the cluster's history (it happened only if the
    /// batch commits).
    Event(magnum_core::events::ClusterEvent),
    /// Retire the fenced operation (done: it leaves the queue).
    Finish,
}

impl Write {
    /// Some fields of a cluster, whatever its status.
    pub fn cluster(uuid: &str, fields: Map<String, Value>) -> Write {
        Write::Cluster {
            uuid: uuid.into(),
            fields,
            only_in: Vec::new(),
        }
    }

    /// Some fields of a node group.
    pub fn nodegroup(uuid: &str, fields: Map<String, Value>) -> Write {
        Write::Nodegroup {
            uuid: uuid.into(),
            fields,
        }
    }
}

fn c(name: &str) -> Expr {
    Expr::col(Alias::new(name))
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

impl Database {
    /// Apply `writes` in one transaction if `fence` still holds its
    /// operation. `Ok(false)`: the claim was lost and nothing was written.
    pub async fn fenced(&self, fence: &Fence, writes: &[Write]) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
        let hold = Query::update()
            .table(Alias::new(CLUSTER_OPERATION.name))
            .value(Alias::new("updated_at"), now())
            .and_where(c("uuid").eq(fence.operation.as_str()))
            .and_where(c("owner").eq(fence.token.as_str()))
            .to_owned();
        if tx.execute(&hold).await? != 1 {
            return Ok(false);
        }
        for w in writes {
            write(&mut tx, w, Some(fence)).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Apply `first` and, only if it changed a row, `then`, in one
    /// transaction (a status move and what goes with it: the status sync's
    /// conclusions, which hold no operation). `Ok(false)`: `first` changed
    /// nothing, and neither did the rest.
    pub async fn settle(&self, first: &Write, then: &[Write]) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
        if write(&mut tx, first, None).await? == 0 {
            return Ok(false);
        }
        for w in then {
            write(&mut tx, w, None).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// Run one write; the rows it touched.
/// `w` with every character upstream's narrow tables cannot hold (beyond
/// U+FFFF) in its text replaced by U+FFFD: what an attempt records comes
/// from the cloud (reasons, addresses, versions), and a character none of
/// it needs must not keep the attempt from being recorded (the API refuses
/// such characters in what users send instead).
fn storable(w: &Write) -> std::borrow::Cow<'_, Write> {
    fn lossy(s: &str) -> String {
        s.chars()
            .map(|c| if u32::from(c) > 0xFFFF { '\u{FFFD}' } else { c })
            .collect()
    }
    fn fields(m: &Map<String, Value>) -> Map<String, Value> {
        m.iter()
            .map(|(k, v)| match v {
                Value::String(s) => (k.clone(), Value::String(lossy(s))),
                other => (k.clone(), other.clone()),
            })
            .collect()
    }
    let wide = |s: &str| crate::narrow::beyond_bmp(s).is_some();
    let needed = match w {
        Write::Cluster { fields: f, .. } | Write::Nodegroup { fields: f, .. } => {
            f.values().any(|v| v.as_str().is_some_and(wide))
        }
        Write::ClusterStatus { reason, .. } | Write::NodegroupsStatus { reason, .. } => {
            reason.as_deref().is_some_and(wide)
        }
        _ => false,
    };
    if !needed {
        return std::borrow::Cow::Borrowed(w);
    }
    let mut w = w.clone();
    match &mut w {
        Write::Cluster { fields: f, .. } | Write::Nodegroup { fields: f, .. } => *f = fields(f),
        Write::ClusterStatus { reason, .. } | Write::NodegroupsStatus { reason, .. } => {
            *reason = reason.as_deref().map(lossy);
        }
        _ => {}
    }
    std::borrow::Cow::Owned(w)
}

async fn write(tx: &mut crate::Tx, w: &Write, fence: Option<&Fence>) -> Result<u64, DbError> {
    let w = &*storable(w);
    let n = match w {
        Write::Cluster {
            uuid,
            fields,
            only_in,
        } => {
            tx.execute(&crate::clusters::cluster_fields(
                uuid,
                fields,
                &strs(only_in),
            ))
            .await?
        }
        Write::Nodegroup { uuid, fields } => {
            tx.execute(&crate::nodegroups::nodegroup_fields(uuid, fields))
                .await?
        }
        Write::ClusterStatus {
            uuid,
            from,
            to,
            reason,
            if_idle,
        } => {
            let mut q = crate::clusters::transition(
                &crate::schema::CLUSTER,
                uuid,
                &strs(from),
                to,
                reason.as_deref(),
            );
            if *if_idle {
                q.and_where(Expr::exists(crate::sync::queued_for(uuid)).not());
            }
            tx.execute(&q).await?
        }
        Write::NodegroupsStatus {
            cluster_uuid,
            from,
            to,
            reason,
        } => {
            tx.execute(&crate::nodegroups::nodegroups_transition(
                cluster_uuid,
                &strs(from),
                to,
                reason.as_deref(),
            ))
            .await?
        }
        Write::DropNodegroupsIn {
            cluster_uuid,
            status,
        } => {
            tx.execute(
                &Query::delete()
                    .from_table(Alias::new(crate::schema::NODEGROUP.name))
                    .and_where(c("cluster_id").eq(cluster_uuid.as_str()))
                    .and_where(c("status").eq(status.as_str()))
                    .to_owned(),
            )
            .await?
        }
        Write::KeyPair(k) => {
            tx.execute(&insert(&KEYPAIRS, &records::to_fields(k)))
                .await?
        }
        Write::DropKeyPairs(uuids) if uuids.is_empty() => 0,
        Write::DropKeyPairs(uuids) => {
            tx.execute(
                &Query::delete()
                    .from_table(Alias::new(X509KEYPAIR.name))
                    .and_where(c("uuid").is_in(strs(uuids)))
                    .to_owned(),
            )
            .await?
        }
        Write::Event(e) => tx.execute(&crate::events::event_insert(e)).await?,
        Write::Finish => {
            // Only a fenced batch retires an operation.
            let Some(f) = fence else {
                debug_assert!(false, "an unfenced batch cannot retire an operation");
                return Ok(0);
            };
            tx.execute(
                &Query::delete()
                    .from_table(Alias::new(CLUSTER_OPERATION.name))
                    .and_where(c("uuid").eq(f.operation.as_str()))
                    .and_where(c("owner").eq(f.token.as_str()))
                    .to_owned(),
            )
            .await?
        }
    };
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;
    use crate::Backend;
    use magnum_core::objects::status::*;
    use magnum_core::objects::{Cluster, NodeGroup};

    fn group(uuid: &str, cluster: &str, status: &str) -> NodeGroup {
        NodeGroup {
            uuid: uuid.into(),
            name: uuid[..8].into(),
            cluster_id: cluster.into(),
            status: Some(status.into()),
            ..Default::default()
        }
    }

    /// A cluster and its node groups move together or not at all.
    async fn status_moves_are_whole(backend: Backend) {
        let t = TestDb::create_migrated(backend).await;
        let db = t.migrated().await;
        let id = "c3333333-3333-3333-3333-333333333333";
        let cluster = Cluster {
            uuid: id.into(),
            status: Some(UPDATE_IN_PROGRESS.into()),
            ..Default::default()
        };
        let ngs = [
            group(
                "a3333333-3333-3333-3333-333333333333",
                id,
                UPDATE_IN_PROGRESS,
            ),
            group(
                "b3333333-3333-3333-3333-333333333333",
                id,
                DELETE_IN_PROGRESS,
            ),
        ];
        db.cluster_create(&cluster, &ngs).await.unwrap();
        let first = |from: &str| Write::ClusterStatus {
            uuid: id.into(),
            from: vec![from.into()],
            to: UPDATE_COMPLETE.into(),
            reason: None,
            if_idle: true,
        };
        let then = [
            Write::NodegroupsStatus {
                cluster_uuid: id.into(),
                from: vec![UPDATE_IN_PROGRESS.into()],
                to: UPDATE_COMPLETE.into(),
                reason: None,
            },
            Write::DropNodegroupsIn {
                cluster_uuid: id.into(),
                status: DELETE_IN_PROGRESS.into(),
            },
        ];
        // From a status the cluster is not in: nothing moves.
        assert!(!db.settle(&first(CREATE_IN_PROGRESS), &then).await.unwrap());
        assert_eq!(db.nodegroups_of(id).await.unwrap().len(), 2);
        assert!(db.settle(&first(UPDATE_IN_PROGRESS), &then).await.unwrap());
        let left = db.nodegroups_of(id).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].status.as_deref(), Some(UPDATE_COMPLETE));
        assert_eq!(
            db.cluster_get(id).await.unwrap().unwrap().status.as_deref(),
            Some(UPDATE_COMPLETE)
        );
    }

    /// What the cloud says is recorded even with characters upstream's
    /// narrow tables cannot hold (MariaDB's utf8mb3): they become U+FFFD,
    /// on every backend, rather than keeping the attempt from being
    /// recorded.
    async fn wide_characters_from_the_cloud_are_recorded(backend: Backend) {
        let t = TestDb::create_migrated(backend).await;
        let db = t.migrated().await;
        let id = "c4444444-4444-4444-4444-444444444444";
        let cluster = Cluster {
            uuid: id.into(),
            status: Some(UPDATE_IN_PROGRESS.into()),
            ..Default::default()
        };
        db.cluster_create(&cluster, &[]).await.unwrap();
        let mut fields = Map::new();
        fields.insert("coe_version".into(), Value::from("v1.30 \u{1F680}"));
        let writes = [
            Write::cluster(id, fields),
            Write::ClusterStatus {
                uuid: id.into(),
                from: vec![UPDATE_IN_PROGRESS.into()],
                to: UPDATE_COMPLETE.into(),
                reason: Some("done \u{1F600}!".into()),
                if_idle: false,
            },
        ];
        assert!(db.settle(&writes[1], &writes[..1]).await.unwrap());
        let got = db.cluster_get(id).await.unwrap().unwrap();
        assert_eq!(got.status.as_deref(), Some(UPDATE_COMPLETE));
        assert_eq!(got.status_reason.as_deref(), Some("done \u{FFFD}!"));
        assert_eq!(got.coe_version.as_deref(), Some("v1.30 \u{FFFD}"));
        db.close().await;
    }

    backends!(
        status_moves_are_whole,
        wide_characters_from_the_cloud_are_recorded
    );
}
