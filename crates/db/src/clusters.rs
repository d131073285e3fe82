//! Clusters and their node groups.
//!
//! A cluster and its node groups are created, and destroyed, in one
//! transaction. Status changes are conditional updates (`UPDATE … WHERE
//! status IN (…)`): of two workers racing to move a cluster out of a state,
//! exactly one wins, which is what lets many conductors run at once.

use magnum_core::objects::{Cluster, Labels, NodeGroup};
use magnum_core::RequestContext;
use sea_query::{Alias, Cond, Expr, Query, SelectStatement, SimpleExpr, UpdateStatement};

use crate::cluster_templates::tenant_filter;
use crate::paginate::{self, Page};
use crate::records::{self, insert, select, Mapping};
use crate::schema::{Table, CLUSTER, CLUSTER_TEMPLATE, NODEGROUP};
use crate::{now, Database, DbError};

pub(crate) const CLUSTERS: Mapping = Mapping {
    table: &CLUSTER,
    json: &["labels", "health_status_reason"],
};

pub(crate) const NODEGROUPS: Mapping = Mapping {
    table: &NODEGROUP,
    json: &["labels", "node_addresses", "node_labels", "node_taints"],
};

/// The node group columns cluster views read.
const NODEGROUP_SUMMARY: [&str; 9] = [
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
const NODEGROUP_COUNTS: [&str; 4] = ["id", "cluster_id", "role", "node_count"];

/// The cluster columns a list's summary view reads (upstream's
/// `expand=False` fields, the row id and the owner).
const CLUSTER_SUMMARY: [&str; 15] = [
    "id",
    "uuid",
    "name",
    "project_id",
    "user_id",
    "cluster_template_id",
    "keypair",
    "docker_volume_size",
    "labels",
    "master_flavor_id",
    "flavor_id",
    "create_timeout",
    "stack_id",
    "status",
    "health_status",
];

/// Filters of a cluster listing (upstream's `_add_clusters_filters`).
#[derive(Debug, Clone, Default)]
pub struct ClusterFilter {
    pub name: Option<String>,
    pub project_id: Option<String>,
    pub cluster_template_id: Option<String>,
    /// Any of these statuses.
    pub status: Vec<String>,
}

fn c(name: &str) -> Expr {
    Expr::col(Alias::new(name))
}

/// Move the row `uuid` of `table` to status `to` if it is in one of `from`.
pub(crate) fn transition(
    table: &Table,
    uuid: &str,
    from: &[&str],
    to: &str,
    reason: Option<&str>,
) -> UpdateStatement {
    Query::update()
        .table(Alias::new(table.name))
        .value(Alias::new("status"), to)
        .value(Alias::new("status_reason"), reason.map(str::to_string))
        .value(Alias::new("updated_at"), now())
        .and_where(c("uuid").eq(uuid))
        .and_where(c("status").is_in(from.iter().copied()))
        .to_owned()
}

/// Write some fields of a cluster (by column name) if its status is one
/// of `only_in` (any status when empty).
pub(crate) fn cluster_fields(
    uuid: &str,
    fields: &serde_json::Map<String, serde_json::Value>,
    only_in: &[&str],
) -> UpdateStatement {
    let mut q = Query::update()
        .table(Alias::new(CLUSTER.name))
        .value(Alias::new("updated_at"), now())
        .and_where(c("uuid").eq(uuid))
        .to_owned();
    for (k, v) in records::some_values(&CLUSTERS, fields) {
        q.value(Alias::new(k), SimpleExpr::Value(v));
    }
    if !only_in.is_empty() {
        q.and_where(c("status").is_in(only_in.iter().copied()));
    }
    q
}

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

fn uuid_like(s: &str) -> bool {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

fn owned(ctx: &RequestContext, cond: Cond) -> Cond {
    match tenant_filter(ctx) {
        Some(t) => cond.add(t),
        None => cond,
    }
}

/// A page of `q` (a select of clusters) under the caller's tenancy and
/// `filter`.
fn cluster_page(
    mut q: SelectStatement,
    ctx: &RequestContext,
    filter: &ClusterFilter,
    page: &Page,
) -> SelectStatement {
    let mut cond = Cond::all();
    if let Some(v) = &filter.name {
        cond = cond.add(c("name").eq(v.as_str()));
    }
    if let Some(v) = &filter.project_id {
        cond = cond.add(c("project_id").eq(v.as_str()));
    }
    if let Some(v) = &filter.cluster_template_id {
        cond = cond.add(c("cluster_template_id").eq(v.as_str()));
    }
    if !filter.status.is_empty() {
        cond = cond.add(c("status").is_in(filter.status.iter().map(String::as_str)));
    }
    q.cond_where(owned(ctx, cond));
    paginate::apply(&mut q, &CLUSTER, page);
    q
}

impl Database {
    async fn clusters_where(&self, q: &SelectStatement) -> Result<Vec<Cluster>, DbError> {
        self.fetch_records(q, &CLUSTERS).await
    }

    async fn nodegroups_where(&self, q: &SelectStatement) -> Result<Vec<NodeGroup>, DbError> {
        self.fetch_records(q, &NODEGROUPS).await
    }

    /// Store a new cluster with its node groups, all or nothing.
    pub async fn cluster_create(
        &self,
        cluster: &Cluster,
        nodegroups: &[NodeGroup],
    ) -> Result<Cluster, DbError> {
        let mut tx = self.begin().await?;
        tx.execute(&insert(&CLUSTERS, &records::to_fields(cluster)))
            .await?;
        for ng in nodegroups {
            tx.execute(&insert(&NODEGROUPS, &records::to_fields(ng)))
                .await?;
        }
        tx.commit().await?;
        self.cluster_get(&cluster.uuid)
            .await?
            .ok_or(DbError::Sql(sqlx::Error::RowNotFound))
    }

    /// The cluster with this UUID, whoever owns it (for the conductor).
    pub async fn cluster_get(&self, uuid: &str) -> Result<Option<Cluster>, DbError> {
        let q = select(&CLUSTERS).and_where(c("uuid").eq(uuid)).to_owned();
        Ok(self.clusters_where(&q).await?.into_iter().next())
    }

    /// The cluster with this UUID, if the caller owns it.
    pub async fn cluster_by_uuid(
        &self,
        ctx: &RequestContext,
        uuid: &str,
    ) -> Result<Option<Cluster>, DbError> {
        let q = select(&CLUSTERS)
            .cond_where(owned(ctx, Cond::all().add(c("uuid").eq(uuid))))
            .to_owned();
        Ok(self.clusters_where(&q).await?.into_iter().next())
    }

    /// Clusters of the caller with this name (more than one: ambiguous).
    pub async fn clusters_by_name(
        &self,
        ctx: &RequestContext,
        name: &str,
    ) -> Result<Vec<Cluster>, DbError> {
        let q = select(&CLUSTERS)
            .cond_where(owned(ctx, Cond::all().add(c("name").eq(name))))
            .limit(2)
            .to_owned();
        self.clusters_where(&q).await
    }

    /// Whether `key` is a column clusters can be sorted by.
    pub fn cluster_sort_key_valid(key: &str) -> bool {
        paginate::valid_sort_key(&CLUSTER, key)
    }

    /// One page of the caller's clusters.
    pub async fn cluster_list(
        &self,
        ctx: &RequestContext,
        filter: &ClusterFilter,
        page: &Page,
    ) -> Result<Vec<Cluster>, DbError> {
        let q = cluster_page(select(&CLUSTERS), ctx, filter, page);
        self.clusters_where(&q).await
    }

    /// One page of the caller's clusters with just the fields of a list's
    /// summary view (the others left at their defaults).
    pub async fn cluster_summaries(
        &self,
        ctx: &RequestContext,
        filter: &ClusterFilter,
        page: &Page,
    ) -> Result<Vec<Cluster>, DbError> {
        let q = cluster_page(
            records::select_only(&CLUSTERS, &CLUSTER_SUMMARY),
            ctx,
            filter,
            page,
        );
        self.clusters_where(&q).await
    }

    /// The caller's cluster with this UUID (`by_name`: the caller's
    /// clusters with this name, at most two), each with the labels of its
    /// template (whoever owns it), in one statement: what a cluster's full
    /// view needs but its node groups.
    pub async fn clusters_with_template_labels(
        &self,
        ctx: &RequestContext,
        ident: &str,
        by_name: bool,
    ) -> Result<Vec<(Cluster, Option<Labels>)>, DbError> {
        let key = if by_name { "name" } else { "uuid" };
        let template_labels = Query::select()
            .column(Alias::new("labels"))
            .from(Alias::new(CLUSTER_TEMPLATE.name))
            .and_where(
                Expr::col((Alias::new(CLUSTER_TEMPLATE.name), Alias::new("uuid")))
                    .equals((Alias::new(CLUSTER.name), Alias::new("cluster_template_id"))),
            )
            .to_owned();
        let q = select(&CLUSTERS)
            .expr(SimpleExpr::SubQuery(
                None,
                Box::new(template_labels.into_sub_query_statement()),
            ))
            .cond_where(owned(ctx, Cond::all().add(c(key).eq(ident))))
            .limit(2)
            .to_owned();
        self.fetch_records_with(&q, &CLUSTERS, 1)
            .await?
            .into_iter()
            .map(|(cluster, mut extra)| {
                let labels = match extra.pop().flatten() {
                    Some(text) => serde_json::from_str::<Option<Labels>>(&text).map_err(|e| {
                        DbError::Corrupt {
                            table: CLUSTER_TEMPLATE.name,
                            column: "labels",
                            reason: e.to_string(),
                        }
                    })?,
                    None => None,
                };
                Ok((cluster, labels))
            })
            .collect()
    }

    /// Clusters in any of these statuses, whoever owns them (reconcilers).
    pub async fn clusters_in_status(&self, statuses: &[&str]) -> Result<Vec<Cluster>, DbError> {
        let q = select(&CLUSTERS)
            .and_where(c("status").is_in(statuses.iter().copied()))
            .order_by(Alias::new("id"), sea_query::Order::Asc)
            .to_owned();
        self.clusters_where(&q).await
    }

    /// Write every field of `cluster` if its stored status is still
    /// `expected_status` (optimistic concurrency). `Ok(false)`: it changed.
    pub async fn cluster_save(
        &self,
        cluster: &Cluster,
        expected_status: Option<&str>,
    ) -> Result<bool, DbError> {
        let mut q = Query::update()
            .table(Alias::new(CLUSTER.name))
            .value(Alias::new("updated_at"), now())
            .and_where(c("uuid").eq(cluster.uuid.as_str()))
            .to_owned();
        for (k, v) in records::values(&CLUSTERS, &records::to_fields(cluster)) {
            if k != "uuid" {
                q.value(Alias::new(k), SimpleExpr::Value(v));
            }
        }
        match expected_status {
            Some(s) => q.and_where(c("status").eq(s)),
            None => q.and_where(c("status").is_null()),
        };
        Ok(self.execute(&q).await? == 1)
    }

    /// Write some fields of a cluster (by column name), if its status is
    /// one of `only_in` (any status when empty). `Ok(false)`: gone, or in
    /// another state.
    pub async fn cluster_update_fields(
        &self,
        uuid: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
        only_in: &[&str],
    ) -> Result<bool, DbError> {
        let q = cluster_fields(uuid, fields, only_in);
        Ok(self.execute(&q).await? == 1)
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

    /// How many clusters a project has (quota checks).
    pub async fn cluster_count(&self, project_id: &str) -> Result<i64, DbError> {
        self.count(&Self::cluster_count_query(project_id)).await
    }

    /// `SELECT COUNT(*) AS n` of a project's clusters.
    pub(crate) fn cluster_count_query(project_id: &str) -> SelectStatement {
        Query::select()
            .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
            .from(Alias::new(CLUSTER.name))
            .and_where(c("project_id").eq(project_id))
            .to_owned()
    }

    /// Delete a cluster and its node groups. `Ok(false)`: already gone.
    pub async fn cluster_destroy(&self, uuid: &str) -> Result<bool, DbError> {
        #[derive(sqlx::FromRow)]
        struct Owner {
            project_id: Option<String>,
        }
        let mut tx = self.begin().await?;
        let owner: Option<Owner> = tx
            .fetch_optional(
                &records::select_only(&CLUSTERS, &["project_id"])
                    .and_where(c("uuid").eq(uuid))
                    .to_owned(),
            )
            .await?;
        tx.execute(
            &Query::delete()
                .from_table(Alias::new(NODEGROUP.name))
                .and_where(c("cluster_id").eq(uuid))
                .to_owned(),
        )
        .await?;
        let n = tx
            .execute(
                &Query::delete()
                    .from_table(Alias::new(CLUSTER.name))
                    .and_where(c("uuid").eq(uuid))
                    .to_owned(),
            )
            .await?;
        // Off its project's count (when this one deleted it).
        if let (1, Some(project)) = (n, owner.and_then(|o| o.project_id)) {
            tx.execute(&crate::operations::project_count_moved(&project, false))
                .await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// (clusters, nodes) of one project, or of all: upstream's stats.
    pub async fn cluster_stats(&self, project_id: Option<&str>) -> Result<(i64, i64), DbError> {
        let mut clusters = Query::select()
            .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
            .from(Alias::new(CLUSTER.name))
            .to_owned();
        // SUM is DECIMAL on MySQL and BIGINT on PostgreSQL: cast to one type.
        let sum = match self.backend() {
            crate::Backend::MySql => "CAST(COALESCE(SUM(node_count), 0) AS SIGNED)",
            crate::Backend::Postgres => "CAST(COALESCE(SUM(node_count), 0) AS BIGINT)",
            crate::Backend::Sqlite => "COALESCE(SUM(node_count), 0)",
        };
        let mut nodes = Query::select()
            .expr_as(Expr::cust(sum), Alias::new("n"))
            .from(Alias::new(NODEGROUP.name))
            .to_owned();
        if let Some(p) = project_id {
            clusters.and_where(c("project_id").eq(p));
            nodes.and_where(c("project_id").eq(p));
        }
        Ok((self.count(&clusters).await?, self.count(&nodes).await?))
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
        let q = records::select_only(&NODEGROUPS, &NODEGROUP_SUMMARY)
            .and_where(c("cluster_id").is_in(cluster_uuids.iter().copied()))
            .order_by(Alias::new("id"), sea_query::Order::Asc)
            .to_owned();
        self.nodegroups_where(&q).await
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::TestDb;
    use crate::Backend;
    use magnum_core::objects::status::*;
    use serde_json::json;

    fn cluster(uuid: &str, project: &str) -> Cluster {
        Cluster {
            uuid: uuid.into(),
            name: Some("c1".into()),
            project_id: Some(project.into()),
            user_id: Some("u".into()),
            cluster_template_id: Some("t".into()),
            status: Some(CREATE_IN_PROGRESS.into()),
            labels: json!({"a": "1"}).as_object().cloned(),
            health_status_reason: json!({"api": "ok"}).as_object().cloned(),
            create_timeout: Some(60),
            floating_ip_enabled: Some(true),
            ..Default::default()
        }
    }

    fn nodegroup(uuid: &str, cluster: &str, name: &str, role: &str) -> NodeGroup {
        NodeGroup {
            uuid: uuid.into(),
            name: name.into(),
            cluster_id: cluster.into(),
            project_id: "p".into(),
            role: Some(role.into()),
            node_count: Some(3),
            min_node_count: Some(0),
            is_default: Some(true),
            node_addresses: Some(vec!["10.0.0.1".into()]),
            node_labels: json!({"zone": "a"}).as_object().cloned(),
            node_taints: Some(vec![
                json!({"key": "k", "value": "v", "effect": "NoSchedule"}),
            ]),
            status: Some(CREATE_IN_PROGRESS.into()),
            ..Default::default()
        }
    }

    fn ctx(project: &str) -> RequestContext {
        RequestContext {
            project_id: Some(project.into()),
            ..Default::default()
        }
    }

    async fn round_trip(backend: Backend) {
        let t = TestDb::create(backend).await;
        let db = t.migrated().await;
        let id = "11111111-1111-1111-1111-111111111111";
        let ngs = [
            nodegroup(
                "21111111-1111-1111-1111-111111111111",
                id,
                "default-master",
                "master",
            ),
            nodegroup(
                "31111111-1111-1111-1111-111111111111",
                id,
                "default-worker",
                "worker",
            ),
        ];
        let stored = db.cluster_create(&cluster(id, "p"), &ngs).await.unwrap();
        assert_eq!(stored.labels, cluster(id, "p").labels);
        assert_eq!(
            stored.health_status_reason,
            cluster(id, "p").health_status_reason
        );
        assert!(stored.created_at.is_some() && stored.id > 0);
        let back = db.nodegroups_of(id).await.unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].node_taints, ngs[0].node_taints);
        assert_eq!(back[0].node_addresses, ngs[0].node_addresses);
        assert_eq!(back[1].role.as_deref(), Some("worker"));

        // Tenancy.
        assert!(db.cluster_by_uuid(&ctx("p"), id).await.unwrap().is_some());
        assert!(db.cluster_by_uuid(&ctx("q"), id).await.unwrap().is_none());
        assert_eq!(db.clusters_by_name(&ctx("p"), "c1").await.unwrap().len(), 1);
        let filter = ClusterFilter {
            status: vec![CREATE_IN_PROGRESS.into()],
            ..Default::default()
        };
        assert_eq!(
            db.cluster_list(&ctx("p"), &filter, &Page::default())
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(db
            .cluster_list(&ctx("q"), &filter, &Page::default())
            .await
            .unwrap()
            .is_empty());

        // A node group name is unique within its cluster; nothing half-made
        // stays behind when a create fails.
        let dup = nodegroup(
            "41111111-1111-1111-1111-111111111111",
            id,
            "default-worker",
            "worker",
        );
        assert!(matches!(
            db.nodegroup_create(&dup).await,
            Err(DbError::Duplicate)
        ));
        let other = "51111111-1111-1111-1111-111111111111";
        let bad = [
            nodegroup("61111111-1111-1111-1111-111111111111", other, "x", "worker"),
            nodegroup("71111111-1111-1111-1111-111111111111", other, "x", "worker"),
        ];
        assert!(db.cluster_create(&cluster(other, "p"), &bad).await.is_err());
        assert!(
            db.cluster_get(other).await.unwrap().is_none(),
            "the transaction rolled back"
        );

        // Saves are conditional on the status read.
        let mut c = db.cluster_get(id).await.unwrap().unwrap();
        c.api_address = Some("https://10.0.0.1:6443".into());
        assert!(db.cluster_save(&c, Some(CREATE_IN_PROGRESS)).await.unwrap());
        assert!(!db.cluster_save(&c, Some(UPDATE_IN_PROGRESS)).await.unwrap());
        assert_eq!(
            db.cluster_get(id).await.unwrap().unwrap().api_address,
            c.api_address
        );

        assert_eq!(db.cluster_stats(Some("p")).await.unwrap(), (1, 6));
        assert_eq!(db.cluster_stats(Some("q")).await.unwrap(), (0, 0));
        assert_eq!(db.cluster_stats(None).await.unwrap(), (1, 6));
        assert!(db.cluster_destroy(id).await.unwrap());
        assert!(!db.cluster_destroy(id).await.unwrap());
        assert!(db.nodegroups_of(id).await.unwrap().is_empty());
    }

    /// Move a cluster as the status sync does (a settled status move).
    pub(crate) async fn moved(
        db: &Database,
        id: &str,
        from: &str,
        to: &str,
        reason: Option<&str>,
        if_idle: bool,
    ) -> bool {
        let w = crate::Write::ClusterStatus {
            uuid: id.into(),
            from: vec![from.into()],
            to: to.into(),
            reason: reason.map(str::to_string),
            if_idle,
        };
        db.settle(&w, &[]).await.unwrap()
    }

    /// Many workers race to move one cluster out of CREATE_IN_PROGRESS:
    /// exactly one wins.
    async fn transitions_have_one_winner(backend: Backend) {
        let t = TestDb::create(backend).await;
        let db = t.migrated().await;
        let id = "81111111-1111-1111-1111-111111111111";
        db.cluster_create(&cluster(id, "p"), &[]).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let to = if i % 2 == 0 {
                    CREATE_COMPLETE
                } else {
                    CREATE_FAILED
                };
                moved(&db, id, CREATE_IN_PROGRESS, to, Some("done"), false).await
            }));
        }
        let mut winners = 0;
        for t in tasks {
            if t.await.unwrap() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1);
        let c = db.cluster_get(id).await.unwrap().unwrap();
        assert!(matches!(
            c.status.as_deref(),
            Some(CREATE_COMPLETE | CREATE_FAILED)
        ));
        assert_eq!(c.status_reason.as_deref(), Some("done"));
        // A transition from a state the cluster is not in changes nothing.
        assert!(!moved(&db, id, DELETE_IN_PROGRESS, DELETE_COMPLETE, None, false).await);
        let in_progress = db.clusters_in_status(&IN_PROGRESS).await.unwrap();
        assert!(in_progress.is_empty());
    }

    backends!(round_trip, transitions_have_one_winner);
}
