//! The history of clusters and node groups (`rs_cluster_event`, see
//! `magnum_core::events`): recorded in the transactions of what they
//! describe, read a page at a time, pruned by age and count.

use sea_query::{Alias, Expr, Func, Order, Query};
use serde_json::Value;

use crate::operations::Operation;
use crate::paginate::{self, Page};
use crate::records::{self, insert, select, Mapping};
use crate::schema::CLUSTER_EVENT;
use crate::{now, Database, DbError};

pub use magnum_core::events::{ClusterEvent, EventKind, FailureClass};

pub(crate) const EVENTS: Mapping = Mapping {
    table: &CLUSTER_EVENT,
    json: &[],
};

fn c(name: &str) -> Expr {
    Expr::col(Alias::new(name))
}

/// The `INSERT` of one event.
pub(crate) fn event_insert(e: &ClusterEvent) -> sea_query::InsertStatement {
    insert(&EVENTS, &records::to_fields(&storable(e)))
}

/// `e` with text that fits its columns: messages and resources from the
/// cloud can be long (they are cut, on a character boundary).
fn storable(e: &ClusterEvent) -> ClusterEvent {
    fn cut(s: &Option<String>, n: usize) -> Option<String> {
        s.as_ref().map(|s| s.chars().take(n).collect())
    }
    let mut e = e.clone();
    e.resource = cut(&e.resource, 255);
    e.host = cut(&e.host, 255);
    e.message = cut(&e.message, 8000);
    e
}

/// The node group an operation is about, if its arguments name one (the
/// node group operations, resize and upgrade).
pub fn nodegroup_of(op: &Operation) -> Option<String> {
    let ng = op.args.get("nodegroup")?;
    ng.get("magnum_object.data")
        .and_then(|d| d.get("uuid"))
        .or_else(|| ng.get("uuid"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The `queued` event of an operation.
pub(crate) fn queued(op: &Operation) -> ClusterEvent {
    ClusterEvent::new(
        &op.cluster_uuid,
        EventKind::Queued,
        format!("{} queued", op.method),
    )
    .method(&op.method)
    .operation(&op.uuid)
    .nodegroup(nodegroup_of(op).as_deref())
}

impl Database {
    /// Record one event on its own (what has no transaction of its own to
    /// go in: an attempt's retry, the status sync's notes).
    pub async fn event_record(&self, e: &ClusterEvent) -> Result<(), DbError> {
        self.execute(&event_insert(e)).await?;
        Ok(())
    }

    /// The row id of the event `uuid` of `cluster_uuid` (a page's marker).
    pub async fn event_id(&self, cluster_uuid: &str, uuid: &str) -> Result<Option<i64>, DbError> {
        let q = select(&EVENTS)
            .and_where(c("cluster_uuid").eq(cluster_uuid))
            .and_where(c("uuid").eq(uuid))
            .to_owned();
        Ok(self
            .events_where(&q)
            .await?
            .into_iter()
            .next()
            .map(|e| e.id))
    }

    /// The newest event of `kind` and `method` of a cluster.
    pub async fn event_latest(
        &self,
        cluster_uuid: &str,
        kind: EventKind,
        method: &str,
    ) -> Result<Option<ClusterEvent>, DbError> {
        let q = select(&EVENTS)
            .and_where(c("cluster_uuid").eq(cluster_uuid))
            .and_where(c("kind").eq(kind.as_str()))
            .and_where(c("method").eq(method))
            .order_by(Alias::new("id"), Order::Desc)
            .limit(1)
            .to_owned();
        Ok(self.events_where(&q).await?.into_iter().next())
    }

    /// Whether a failure of the cluster to `status` was recorded before
    /// the event `id`.
    pub async fn event_failed_before(
        &self,
        cluster_uuid: &str,
        status: &str,
        id: i64,
    ) -> Result<bool, DbError> {
        let q = select(&EVENTS)
            .and_where(c("cluster_uuid").eq(cluster_uuid))
            .and_where(c("kind").eq(EventKind::Failed.as_str()))
            .and_where(c("status").eq(status))
            .and_where(c("id").lt(id))
            .limit(1)
            .to_owned();
        Ok(!self.events_where(&q).await?.is_empty())
    }

    /// A page of a cluster's events (of one of its node groups, with
    /// `nodegroup`), in id order.
    pub async fn events_of(
        &self,
        cluster_uuid: &str,
        nodegroup: Option<&str>,
        page: &Page,
    ) -> Result<Vec<ClusterEvent>, DbError> {
        let mut q = select(&EVENTS)
            .and_where(c("cluster_uuid").eq(cluster_uuid))
            .to_owned();
        if let Some(ng) = nodegroup {
            q.and_where(c("nodegroup_uuid").eq(ng));
        }
        paginate::apply(&mut q, &CLUSTER_EVENT, page);
        self.events_where(&q).await
    }

    async fn events_where(
        &self,
        q: &sea_query::SelectStatement,
    ) -> Result<Vec<ClusterEvent>, DbError> {
        self.fetch_maps(q, &EVENTS)
            .await?
            .into_iter()
            .map(|m| records::from_fields(&EVENTS, m))
            .collect()
    }

    /// Remove events older than `max_age` seconds (when positive), then
    /// the oldest of each cluster beyond its newest `max_per_cluster`
    /// (when positive). The number of events removed.
    pub async fn events_prune(&self, max_age: i64, max_per_cluster: i64) -> Result<u64, DbError> {
        let mut removed = 0;
        if max_age > 0 {
            let before = now() - chrono::Duration::seconds(max_age);
            removed += self
                .execute(
                    &Query::delete()
                        .from_table(Alias::new(CLUSTER_EVENT.name))
                        .and_where(c("created_at").lt(before))
                        .to_owned(),
                )
                .await?;
        }
        if max_per_cluster > 0 {
            #[derive(sqlx::FromRow)]
            struct Over {
                cluster_uuid: String,
            }
            let over: Vec<Over> = self
                .fetch_all(
                    &Query::select()
                        .column(Alias::new("cluster_uuid"))
                        .from(Alias::new(CLUSTER_EVENT.name))
                        .group_by_col(Alias::new("cluster_uuid"))
                        .and_having(Expr::expr(Func::count(c("id"))).gt(max_per_cluster))
                        .to_owned(),
                )
                .await?;
            #[derive(sqlx::FromRow)]
            struct Id {
                id: i32,
            }
            for o in over {
                // The oldest event kept: the max_per_cluster-th newest.
                let keep: Option<Id> = self
                    .fetch_optional(
                        &Query::select()
                            .column(Alias::new("id"))
                            .from(Alias::new(CLUSTER_EVENT.name))
                            .and_where(c("cluster_uuid").eq(o.cluster_uuid.as_str()))
                            .order_by(Alias::new("id"), Order::Desc)
                            .limit(1)
                            .offset((max_per_cluster - 1) as u64)
                            .to_owned(),
                    )
                    .await?;
                let Some(keep) = keep else { continue };
                removed += self
                    .execute(
                        &Query::delete()
                            .from_table(Alias::new(CLUSTER_EVENT.name))
                            .and_where(c("cluster_uuid").eq(o.cluster_uuid.as_str()))
                            .and_where(c("id").lt(keep.id))
                            .to_owned(),
                    )
                    .await?;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paginate::SortDir;
    use crate::testing::TestDb;
    use crate::Backend;

    /// Events page in id order either way, by cluster and by node group,
    /// and pruning keeps each cluster's newest.
    async fn page_and_prune(backend: Backend) {
        let t = TestDb::create_migrated(backend).await;
        let db = t.migrated().await;
        for i in 0..5 {
            let ng = (i % 2 == 0).then_some("ng-a");
            let e = ClusterEvent::new("c1", EventKind::Driver, format!("e{i}")).nodegroup(ng);
            db.event_record(&e).await.unwrap();
        }
        db.event_record(&ClusterEvent::failure("c2", "Quota exceeded for cores"))
            .await
            .unwrap();
        let page = |limit, marker_id, sort_dir| Page {
            limit: Some(limit),
            marker_id,
            sort_key: None,
            sort_dir,
        };
        let first = db
            .events_of("c1", None, &page(2, None, SortDir::Asc))
            .await
            .unwrap();
        let msgs = |v: &[ClusterEvent]| -> Vec<String> {
            v.iter().map(|e| e.message.clone().unwrap()).collect()
        };
        assert_eq!(msgs(&first), ["e0", "e1"]);
        let marker = db.event_id("c1", &first[1].uuid).await.unwrap();
        let next = db
            .events_of("c1", None, &page(10, marker, SortDir::Asc))
            .await
            .unwrap();
        assert_eq!(msgs(&next), ["e2", "e3", "e4"]);
        let desc = db
            .events_of("c1", Some("ng-a"), &page(10, None, SortDir::Desc))
            .await
            .unwrap();
        assert_eq!(msgs(&desc), ["e4", "e2", "e0"]);
        // Another cluster's marker is no marker here.
        let c2 = db
            .events_of("c2", None, &page(10, None, SortDir::Asc))
            .await
            .unwrap();
        assert_eq!(c2[0].reason_class.as_deref(), Some("quota"));
        assert_eq!(db.event_id("c1", &c2[0].uuid).await.unwrap(), None);
        // Keep the newest two of each cluster; none is old enough for age.
        assert_eq!(db.events_prune(3600, 2).await.unwrap(), 3);
        let left = db
            .events_of("c1", None, &page(10, None, SortDir::Asc))
            .await
            .unwrap();
        assert_eq!(msgs(&left), ["e3", "e4"]);
        // Two seconds on (times are whole seconds), an age of one takes the rest.
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        assert_eq!(db.events_prune(1, 0).await.unwrap(), 3);
        db.close().await;
    }

    backends!(page_and_prune);
}
