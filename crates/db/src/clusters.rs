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
use crate::nodegroups::{NODEGROUPS, NODEGROUP_SUMMARY};
use crate::paginate::{self, Page};
use crate::records::{self, insert, select, Mapping};
use crate::schema::{Table, CLUSTER, CLUSTER_TEMPLATE, NODEGROUP};
use crate::{now, Database, DbError};

pub(crate) const CLUSTERS: Mapping = Mapping {
    table: &CLUSTER,
    json: &["labels", "health_status_reason"],
};

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

pub(crate) fn c(name: &str) -> Expr {
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

pub(crate) fn uuid_like(s: &str) -> bool {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

fn owned(ctx: &RequestContext, cond: Cond) -> Cond {
    match tenant_filter(ctx) {
        Some(t) => cond.add(t),
        None => cond,
    }
}

/// A template's labels column, as read by a cluster's select.
fn template_labels(text: Option<String>) -> Result<Option<Labels>, DbError> {
    match text {
        Some(text) => serde_json::from_str(&text).map_err(|e| DbError::Corrupt {
            table: CLUSTER_TEMPLATE.name,
            column: "labels",
            reason: e.to_string(),
        }),
        None => Ok(None),
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
        let (tenancy, tenancy_values) = crate::shapes::tenancy(ctx);
        let mut values = vec![ident.into()];
        values.extend(tenancy_values);
        values.push(2u64.into());
        let shape = (
            "clusters_with_template_labels",
            tenancy << 1 | by_name as u32,
        );
        let sql = self.shaped(shape, values, || {
            let template_labels = Query::select()
                .column(Alias::new("labels"))
                .from(Alias::new(CLUSTER_TEMPLATE.name))
                .and_where(
                    Expr::col((Alias::new(CLUSTER_TEMPLATE.name), Alias::new("uuid")))
                        .equals((Alias::new(CLUSTER.name), Alias::new("cluster_template_id"))),
                )
                .to_owned();
            select(&CLUSTERS)
                .expr(SimpleExpr::SubQuery(
                    None,
                    Box::new(template_labels.into_sub_query_statement()),
                ))
                .cond_where(owned(ctx, Cond::all().add(c(key).eq(ident))))
                .limit(2)
                .to_owned()
        });
        self.fetch_sql_records(sql, &CLUSTERS, 1)
            .await?
            .into_iter()
            .map(|(cluster, mut extra)| Ok((cluster, template_labels(extra.pop().flatten())?)))
            .collect()
    }

    /// The caller's cluster with this UUID, the labels of its template
    /// (whoever owns it) and the summaries of its node groups (as
    /// [`Database::nodegroup_summaries_of`]), in one statement: everything
    /// a cluster's full view shows.
    pub async fn cluster_view(
        &self,
        ctx: &RequestContext,
        uuid: &str,
    ) -> Result<Option<(Cluster, Option<Labels>, Vec<NodeGroup>)>, DbError> {
        let (tenancy, tenancy_values) = crate::shapes::tenancy(ctx);
        let mut values = vec![uuid.into()];
        values.extend(tenancy_values);
        let sql = self.shaped(("cluster_view", tenancy), values, || {
            let cl = || Alias::new(CLUSTER.name);
            let ng = || Alias::new(NODEGROUP.name);
            let col = |t: Alias, c: &str| Expr::col((t, Alias::new(c)));
            let template_labels = Query::select()
                .column(Alias::new("labels"))
                .from(Alias::new(CLUSTER_TEMPLATE.name))
                .and_where(
                    Expr::col((Alias::new(CLUSTER_TEMPLATE.name), Alias::new("uuid")))
                        .equals((cl(), Alias::new("cluster_template_id"))),
                )
                .to_owned();
            let mut q = Query::select();
            q.columns(CLUSTER.columns.iter().map(|c| (cl(), Alias::new(c.name))))
                .expr(SimpleExpr::SubQuery(
                    None,
                    Box::new(template_labels.into_sub_query_statement()),
                ))
                .columns(NODEGROUP_SUMMARY.iter().map(|c| (ng(), Alias::new(*c))))
                .from(cl())
                .left_join(
                    ng(),
                    Expr::col((ng(), Alias::new("cluster_id"))).equals((cl(), Alias::new("uuid"))),
                )
                .and_where(col(cl(), "uuid").eq(uuid));
            // The tenancy filter of `tenant_filter`, on the cluster's columns.
            match (tenancy, &ctx.project_id, &ctx.user_id) {
                (0, _, _) => {}
                (1, Some(project), _) => {
                    q.and_where(col(cl(), "project_id").eq(project.as_str()));
                }
                (2, _, Some(user)) => {
                    q.and_where(col(cl(), "user_id").eq(user.as_str()));
                }
                _ => {
                    q.and_where(col(cl(), "user_id").is_null());
                }
            }
            // Not ORDER BY: MariaDB sorts such a join in a temporary table,
            // which tripled the statement's time; the few rows are sorted
            // here.
            q
        });
        let Some((cluster, mut extra, mut nodegroups)) = self
            .fetch_with_children(sql, &CLUSTERS, 1, &NODEGROUPS, &NODEGROUP_SUMMARY)
            .await?
        else {
            return Ok(None);
        };
        nodegroups.sort_by_key(|ng: &NodeGroup| ng.id);
        let labels = template_labels(extra.pop().flatten())?;
        Ok(Some((cluster, labels, nodegroups)))
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

    /// Delete a cluster and its node groups, and the rows of upstream's
    /// `x509keypair` table named in `keypairs` (its certificates, when kept
    /// there: gone in the same transaction, so no outage between the two
    /// leaves them behind). `Ok(false)`: already gone.
    pub async fn cluster_destroy(&self, uuid: &str, keypairs: &[String]) -> Result<bool, DbError> {
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
        if !keypairs.is_empty() {
            tx.execute(
                &Query::delete()
                    .from_table(Alias::new(crate::schema::X509KEYPAIR.name))
                    .and_where(c("uuid").is_in(keypairs.iter().map(String::as_str)))
                    .to_owned(),
            )
            .await?;
        }
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
}

#[cfg(test)]
pub(crate) mod tests;
