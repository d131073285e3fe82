//! Node groups: their rows, the summaries cluster views read of them, a
//! cluster's page of them, and their status moves.

use magnum_core::objects::NodeGroup;
use magnum_core::RequestContext;
use sea_query::{Alias, Query, SelectStatement, SimpleExpr, UpdateStatement};

use crate::clusters::{c, transition, uuid_like};
use crate::paginate::{self, Page};
use crate::records::{self, insert, select, Mapping};
use crate::schema::NODEGROUP;
use crate::{now, Database, DbError};

pub(crate) const NODEGROUPS: Mapping = Mapping {
    table: &NODEGROUP,
    json: &["labels", "node_addresses", "node_labels", "node_taints"],
};

/// The node group columns cluster views read.
pub(crate) const NODEGROUP_SUMMARY: [&str; 9] = [
    "id",
    "uuid",
    "name",
    "cluster_id",
    "role",
    "node_count",
    "node_addresses",
    "status",
    "status_reason",
];

/// The node group columns a cluster list's summary view reads (the
/// counts by role).
pub(crate) const NODEGROUP_COUNTS: [&str; 4] = ["id", "cluster_id", "role", "node_count"];

/// Write some fields of a node group (by column name).
pub(crate) fn nodegroup_fields(
    uuid: &str,
    fields: &serde_json::Map<String, serde_json::Value>,
) -> UpdateStatement {
    let mut q = Query::update()
        .table(Alias::new(NODEGROUP.name))
        .value(Alias::new("updated_at"), now())
        .and_where(c("uuid").eq(uuid))
        .to_owned();
    for (k, v) in records::some_values(&NODEGROUPS, fields) {
        q.value(Alias::new(k), SimpleExpr::Value(v));
    }
    q
}

/// Move the node groups of a cluster that are in one of `from` to `to`.
pub(crate) fn nodegroups_transition(
    cluster_uuid: &str,
    from: &[&str],
    to: &str,
    reason: Option<&str>,
) -> UpdateStatement {
    Query::update()
        .table(Alias::new(NODEGROUP.name))
        .value(Alias::new("status"), to)
        .value(Alias::new("status_reason"), reason.map(str::to_string))
        .value(Alias::new("updated_at"), now())
        .and_where(c("cluster_id").eq(cluster_uuid))
        .and_where(c("status").is_in(from.iter().copied()))
        .to_owned()
}

impl Database {
    async fn nodegroups_where(&self, q: &SelectStatement) -> Result<Vec<NodeGroup>, DbError> {
        self.fetch_records(q, &NODEGROUPS).await
    }

    /// A node group by UUID, whoever owns it.
    pub async fn nodegroup_get(&self, uuid: &str) -> Result<Option<NodeGroup>, DbError> {
        let q = select(&NODEGROUPS).and_where(c("uuid").eq(uuid)).to_owned();
        Ok(self.nodegroups_where(&q).await?.into_iter().next())
    }

    /// Write some fields of a node group (by column name).
    pub async fn nodegroup_update_fields(
        &self,
        uuid: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<bool, DbError> {
        Ok(self.execute(&nodegroup_fields(uuid, fields)).await? == 1)
    }

    /// Delete one node group. `Ok(false)`: already gone.
    pub async fn nodegroup_destroy(&self, uuid: &str) -> Result<bool, DbError> {
        let q = Query::delete()
            .from_table(Alias::new(NODEGROUP.name))
            .and_where(c("uuid").eq(uuid))
            .to_owned();
        Ok(self.execute(&q).await? == 1)
    }

    /// The node groups of a cluster, by id.
    pub async fn nodegroups_of(&self, cluster_uuid: &str) -> Result<Vec<NodeGroup>, DbError> {
        let q = select(&NODEGROUPS)
            .and_where(c("cluster_id").eq(cluster_uuid))
            .order_by(Alias::new("id"), sea_query::Order::Asc)
            .to_owned();
        self.nodegroups_where(&q).await
    }

    /// What cluster views show of the node groups of several clusters
    /// (uuid, name, cluster, role, counts, addresses, status and reason;
    /// other fields are left at their defaults), in one statement, by id:
    /// a page of clusters costs one query for all their node groups.
    pub async fn nodegroup_summaries_of(
        &self,
        cluster_uuids: &[&str],
    ) -> Result<Vec<NodeGroup>, DbError> {
        if cluster_uuids.is_empty() {
            return Ok(Vec::new());
        }
        let n = u32::try_from(cluster_uuids.len()).unwrap_or(u32::MAX);
        let values = cluster_uuids.iter().map(|&u| u.into()).collect();
        let sql = self.shaped(("nodegroup_summaries_of", n), values, || {
            records::select_only(&NODEGROUPS, &NODEGROUP_SUMMARY)
                .and_where(c("cluster_id").is_in(cluster_uuids.iter().copied()))
                .order_by(Alias::new("id"), sea_query::Order::Asc)
                .to_owned()
        });
        Ok(self
            .fetch_sql_records(sql, &NODEGROUPS, 0)
            .await?
            .into_iter()
            .map(|(ng, _)| ng)
            .collect())
    }

    /// The counts of the node groups of several clusters (id, cluster,
    /// role and node count; other fields left at their defaults), in one
    /// statement: what a list's summary view shows of them.
    pub async fn nodegroup_counts_of(
        &self,
        cluster_uuids: &[&str],
    ) -> Result<Vec<NodeGroup>, DbError> {
        if cluster_uuids.is_empty() {
            return Ok(Vec::new());
        }
        let q = records::select_only(&NODEGROUPS, &NODEGROUP_COUNTS)
            .and_where(c("cluster_id").is_in(cluster_uuids.iter().copied()))
            .to_owned();
        self.nodegroups_where(&q).await
    }

    /// Whether `key` is a column node groups can be sorted by.
    pub fn nodegroup_sort_key_valid(key: &str) -> bool {
        paginate::valid_sort_key(&NODEGROUP, key)
    }

    /// One page of a cluster's node groups; non-admins see their
    /// project's only (upstream's rule), optionally of one role.
    pub async fn nodegroup_list(
        &self,
        ctx: &RequestContext,
        cluster_uuid: &str,
        role: Option<&str>,
        page: &Page,
    ) -> Result<Vec<NodeGroup>, DbError> {
        let mut q = select(&NODEGROUPS)
            .and_where(c("cluster_id").eq(cluster_uuid))
            .to_owned();
        if !ctx.is_admin {
            q.and_where(c("project_id").eq(ctx.project_id.clone().unwrap_or_default()));
        }
        if let Some(r) = role {
            q.and_where(c("role").eq(r));
        }
        paginate::apply(&mut q, &NODEGROUP, page);
        self.nodegroups_where(&q).await
    }

    /// A cluster's node group by id, UUID or name (as upstream's
    /// `NodeGroup.get`); several with the name answer all of them.
    pub async fn nodegroup_find(
        &self,
        ctx: &RequestContext,
        cluster_uuid: &str,
        ident: &str,
    ) -> Result<Vec<NodeGroup>, DbError> {
        let key = if ident.parse::<i64>().is_ok() {
            c("id").eq(ident.parse::<i64>().unwrap_or_default())
        } else if uuid_like(ident) {
            c("uuid").eq(ident.to_lowercase())
        } else {
            c("name").eq(ident)
        };
        let mut q = select(&NODEGROUPS)
            .and_where(c("cluster_id").eq(cluster_uuid))
            .and_where(key)
            .limit(2)
            .to_owned();
        if !ctx.is_admin {
            q.and_where(c("project_id").eq(ctx.project_id.clone().unwrap_or_default()));
        }
        self.nodegroups_where(&q).await
    }

    /// Add a node group; a name already used in the cluster is `Duplicate`.
    pub async fn nodegroup_create(&self, ng: &NodeGroup) -> Result<NodeGroup, DbError> {
        self.execute(&insert(&NODEGROUPS, &records::to_fields(ng)))
            .await?;
        let q = select(&NODEGROUPS)
            .and_where(c("uuid").eq(ng.uuid.as_str()))
            .to_owned();
        self.nodegroups_where(&q)
            .await?
            .into_iter()
            .next()
            .ok_or(DbError::Sql(sqlx::Error::RowNotFound))
    }

    /// Move a node group to `to` if it is in one of `from`.
    pub async fn nodegroup_transition(
        &self,
        uuid: &str,
        from: &[&str],
        to: &str,
        reason: Option<&str>,
    ) -> Result<bool, DbError> {
        let q = transition(&NODEGROUP, uuid, from, to, reason);
        Ok(self.execute(&q).await? == 1)
    }
}
