//! `/v1/clusters`, read side: list (summary view), detail and show (full
//! view), per microversion. Counts and addresses come from the cluster's
//! node groups; label differences from its template's labels. The write
//! side is in [`crate::cluster_ops`].

use std::collections::HashMap;

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use magnum_core::objects::{Cluster, Labels, NodeGroup};
use magnum_core::MagnumError;
use magnum_db::{ClusterFilter, Database};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::error::ApiResult;
use crate::fields::canonical_uuid;
use crate::links::BaseUrl;
use crate::pagination::ListQuery;
use crate::request::json_response;
use crate::version::Feature;
use crate::{cluster_ops, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/clusters", get(list).post(cluster_ops::create))
        .route("/clusters/detail", get(detail))
        .route(
            "/clusters/{ident}",
            get(show)
                .patch(cluster_ops::update)
                .delete(cluster_ops::delete),
        )
        .route(
            "/clusters/{ident}/actions/resize",
            post(cluster_ops::resize),
        )
        .route(
            "/clusters/{ident}/actions/upgrade",
            post(cluster_ops::upgrade),
        )
}

/// Statuses upstream reports faults for.
const FAILED: [&str; 5] = [
    "CREATE_FAILED",
    "UPDATE_FAILED",
    "DELETE_FAILED",
    "ROLLBACK_FAILED",
    "RESUME_FAILED",
];

/// Upstream's `get_labels_diff`: labels that differ from the template's,
/// labels the template lacks, and template labels the cluster lacks.
pub fn labels_diff(parent: &Labels, labels: &Labels) -> (Labels, Labels, Labels) {
    let mut overridden = Map::new();
    let mut added = Map::new();
    let skipped = parent
        .iter()
        .filter(|(k, _)| !labels.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in labels {
        match parent.get(k) {
            Some(p) if p != v => {
                overridden.insert(k.clone(), p.clone());
            }
            Some(_) => {}
            None => {
                added.insert(k.clone(), v.clone());
            }
        }
    }
    (overridden, added, skipped)
}

/// One of [`labels_diff`]'s three maps, serialized straight from the two
/// label sets (nothing copied).
#[derive(Clone, Copy)]
enum Diff {
    Overridden,
    Added,
    Skipped,
}

struct LabelsDiff<'a> {
    parent: &'a Labels,
    labels: &'a Labels,
    kind: Diff,
}

impl Serialize for LabelsDiff<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (parent, labels) = (self.parent, self.labels);
        match self.kind {
            Diff::Overridden => s.collect_map(
                labels
                    .iter()
                    .filter_map(|(k, v)| parent.get(k).filter(|p| *p != v).map(|p| (k, p))),
            ),
            Diff::Added => s.collect_map(labels.iter().filter(|(k, _)| !parent.contains_key(*k))),
            Diff::Skipped => s.collect_map(parent.iter().filter(|(k, _)| !labels.contains_key(*k))),
        }
    }
}

/// A cluster as the API shows it, serialized straight into the response
/// (no intermediate JSON tree): the summary view of a list (upstream's
/// `expand=False`: the fields `openstack coe cluster list` shows) or the
/// full view of detail and show, with `cluster_id` from 1.13 on and
/// `stack_id` before. Counts and addresses come from the node groups.
/// Keys come out sorted.
struct View<'a> {
    c: &'a Cluster,
    nodegroups: &'a [&'a NodeGroup],
    template_labels: Option<&'a Labels>,
    /// Whether to report failed node groups (show only).
    faults: bool,
    base: &'a BaseUrl,
    expand: bool,
    use_cluster_id: bool,
}

/// An optional timestamp as upstream renders it (`…+00:00`).
pub(crate) struct Stamp<'a>(pub &'a Option<chrono::NaiveDateTime>);

impl Serialize for Stamp<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(t) => s.collect_str(&format_args!(
                "{}+00:00",
                magnum_core::objects::iso_seconds(t)
            )),
            None => s.serialize_none(),
        }
    }
}

fn is_master(n: &NodeGroup) -> bool {
    n.role.as_deref() == Some("master")
}

/// The addresses of the master (or the other) node groups, as one list.
struct Addresses<'a>(&'a [&'a NodeGroup], bool);

impl Serialize for Addresses<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .iter()
                .filter(|n| is_master(n) == self.1)
                .flat_map(|n| n.node_addresses.iter().flatten()),
        )
    }
}

impl Serialize for View<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.c;
        let count = |master: bool| -> i64 {
            self.nodegroups
                .iter()
                .filter(|n| is_master(n) == master)
                .map(|n| n.node_count.unwrap_or(0))
                .sum()
        };
        let full = self.expand;
        let mut m = s.serialize_map(None)?;
        if full {
            m.serialize_entry("api_address", &c.api_address)?;
        }
        if self.use_cluster_id {
            m.serialize_entry("cluster_id", &c.stack_id)?;
        }
        m.serialize_entry("cluster_template_id", &c.cluster_template_id)?;
        if full {
            m.serialize_entry("coe_version", &c.coe_version)?;
            m.serialize_entry("container_version", &c.container_version)?;
        }
        m.serialize_entry("create_timeout", &c.create_timeout)?;
        if full {
            m.serialize_entry("created_at", &Stamp(&c.created_at))?;
            m.serialize_entry("discovery_url", &c.discovery_url)?;
        }
        m.serialize_entry("docker_volume_size", &c.docker_volume_size)?;
        if full && self.faults && c.status.as_deref().is_some_and(|s| FAILED.contains(&s)) {
            let faults: Map<String, Value> = self
                .nodegroups
                .iter()
                .filter(|n| n.status.as_deref().is_some_and(|s| s.ends_with("FAILED")))
                .map(|n| (n.name.clone(), json!(n.status_reason)))
                .collect();
            m.serialize_entry("faults", &faults)?;
        }
        if full {
            m.serialize_entry("fixed_network", &c.fixed_network)?;
            m.serialize_entry("fixed_subnet", &c.fixed_subnet)?;
        }
        m.serialize_entry("flavor_id", &c.flavor_id)?;
        if full {
            m.serialize_entry("floating_ip_enabled", &c.floating_ip_enabled)?;
        }
        m.serialize_entry("health_status", &c.health_status)?;
        if full {
            m.serialize_entry("health_status_reason", &c.health_status_reason)?;
        }
        m.serialize_entry("keypair", &c.keypair)?;
        m.serialize_entry("labels", &c.labels)?;
        if full {
            let empty = Map::new();
            let diff = |kind| LabelsDiff {
                parent: self.template_labels.unwrap_or(&empty),
                labels: c.labels.as_ref().unwrap_or(&empty),
                kind,
            };
            m.serialize_entry("labels_added", &diff(Diff::Added))?;
            m.serialize_entry("labels_overridden", &diff(Diff::Overridden))?;
            m.serialize_entry("labels_skipped", &diff(Diff::Skipped))?;
        }
        m.serialize_entry("links", &self.base.links("clusters", &c.uuid))?;
        if full {
            m.serialize_entry("master_addresses", &Addresses(self.nodegroups, true))?;
        }
        m.serialize_entry("master_count", &count(true))?;
        m.serialize_entry("master_flavor_id", &c.master_flavor_id)?;
        if full {
            m.serialize_entry("master_lb_enabled", &c.master_lb_enabled)?;
        }
        // Upstream's API-only attribute, never stored: its WSME default.
        m.serialize_entry("merge_labels", &false)?;
        m.serialize_entry("name", &c.name)?;
        if full {
            m.serialize_entry("node_addresses", &Addresses(self.nodegroups, false))?;
        }
        m.serialize_entry("node_count", &count(false))?;
        if full {
            m.serialize_entry("project_id", &c.project_id)?;
        }
        if !self.use_cluster_id {
            m.serialize_entry("stack_id", &c.stack_id)?;
        }
        m.serialize_entry("status", &c.status)?;
        if full {
            m.serialize_entry("status_reason", &c.status_reason)?;
            m.serialize_entry("updated_at", &Stamp(&c.updated_at))?;
            m.serialize_entry("user_id", &c.user_id)?;
        }
        m.serialize_entry("uuid", &c.uuid)?;
        m.end()
    }
}

/// Find a cluster by UUID or name among the caller's.
pub async fn find(db: &Database, ctx: &Ctx, ident: &str) -> ApiResult<Cluster> {
    crate::find::by_ident(
        ident,
        &CLUSTER,
        |uuid| async move { db.cluster_by_uuid(&ctx.context, &uuid).await },
        || db.clusters_by_name(&ctx.context, ident),
    )
    .await
}

const CLUSTER: crate::find::Kind = crate::find::Kind {
    not_found: |ident| MagnumError::ClusterNotFound(ident.to_string()).into(),
    plural: "clusters",
    singular: "cluster",
};

/// [`find`], with the labels of the cluster's template, in one statement.
async fn find_with_template_labels(
    db: &Database,
    ctx: &Ctx,
    ident: &str,
) -> ApiResult<(Cluster, Option<Labels>)> {
    let (key, by_name) = match canonical_uuid(ident) {
        Some(uuid) => (uuid, false),
        None => (ident.to_string(), true),
    };
    let found = db
        .clusters_with_template_labels(&ctx.context, &key, by_name)
        .await?;
    crate::find::one(found, ident, &CLUSTER)
}

/// The template a cluster was built from.
pub async fn template_of(
    db: &Database,
    c: &Cluster,
) -> ApiResult<magnum_core::objects::ClusterTemplate> {
    let admin = magnum_core::RequestContext {
        is_admin: true,
        all_tenants: true,
        ..Default::default()
    };
    let id = c.cluster_template_id.clone().unwrap_or_default();
    db.cluster_template_by_uuid(&admin, &id)
        .await?
        .ok_or_else(|| MagnumError::ClusterTemplateNotFound(id).into())
}

/// The labels of these templates (whoever owns them: a cluster shows how
/// its labels differ from its template's), in one statement.
async fn templates_labels(
    db: &Database,
    ctx: &Ctx,
    uuids: &[&str],
) -> ApiResult<HashMap<String, Labels>> {
    let mut admin = ctx.context.clone();
    admin.is_admin = true;
    admin.all_tenants = true;
    Ok(db
        .cluster_templates_by_uuids(&admin, uuids)
        .await?
        .into_iter()
        .filter_map(|t| Some((t.uuid, t.labels?)))
        .collect())
}

async fn list(
    State(state): State<AppState>,
    mut ctx: Ctx,
    base: BaseUrl,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    collection(&state, &mut ctx, &base, q.as_deref(), false).await
}

async fn detail(
    State(state): State<AppState>,
    mut ctx: Ctx,
    base: BaseUrl,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    collection(&state, &mut ctx, &base, q.as_deref(), true).await
}

/// A page of clusters with what its views need, read in a fixed number
/// of statements whatever its length: the page, the node groups of all
/// its clusters (for the summary view only their counts), and for the
/// full view the labels of their templates.
struct Listing {
    clusters: Vec<Cluster>,
    nodegroups: Vec<NodeGroup>,
    labels: HashMap<String, Labels>,
}

impl Listing {
    async fn read(
        state: &AppState,
        ctx: &Ctx,
        page: &magnum_db::Page,
        expand: bool,
    ) -> ApiResult<Listing> {
        let db = &state.db;
        let filter = ClusterFilter::default();
        let clusters = if expand {
            db.cluster_list(&ctx.context, &filter, page).await?
        } else {
            db.cluster_summaries(&ctx.context, &filter, page).await?
        };
        let uuids: Vec<&str> = clusters.iter().map(|c| c.uuid.as_str()).collect();
        let nodegroups = if expand {
            db.nodegroup_summaries_of(&uuids).await?
        } else {
            db.nodegroup_counts_of(&uuids).await?
        };
        let labels = if expand {
            let mut templates: Vec<&str> = clusters
                .iter()
                .filter_map(|c| c.cluster_template_id.as_deref())
                .collect();
            templates.sort_unstable();
            templates.dedup();
            templates_labels(db, ctx, &templates).await?
        } else {
            HashMap::new()
        };
        Ok(Listing {
            clusters,
            nodegroups,
            labels,
        })
    }

    /// The node groups of each cluster of the page, by cluster uuid.
    fn by_cluster(&self) -> HashMap<&str, Vec<&NodeGroup>> {
        let mut by: HashMap<&str, Vec<&NodeGroup>> = HashMap::with_capacity(self.clusters.len());
        for ng in &self.nodegroups {
            by.entry(ng.cluster_id.as_str()).or_default().push(ng);
        }
        by
    }
}

/// `GET /v1/clusters` (summary view) or `/v1/clusters/detail` (full
/// view): the caller's policy, the page's bounds, then the page rendered.
async fn collection(
    state: &AppState,
    ctx: &mut Ctx,
    base: &BaseUrl,
    query: Option<&str>,
    expand: bool,
) -> ApiResult<Response> {
    let q = ListQuery::parse(query, &[])?;
    let (rule, all_rule, resource) = if expand {
        (
            "cluster:detail",
            "cluster:detail_all_projects",
            "clusters/detail",
        )
    } else {
        (
            "cluster:get_all",
            "cluster:get_all_all_projects",
            "clusters",
        )
    };
    ctx.enforce(state, rule, &ctx.own_target())?;
    ctx.all_projects_if_admin(state, all_rule)?;
    let ctx = &*ctx;
    let (page, limit) = q
        .resolve(
            state.max_limit,
            Database::cluster_sort_key_valid,
            |m| async move {
                let found = state.db.cluster_by_uuid(&ctx.context, &m).await?;
                Ok(found.ok_or(MagnumError::ClusterNotFound(m))?.id)
            },
        )
        .await?;
    let _permit = state.page_permit(limit).await;
    let read = Listing::read(state, ctx, &page, expand).await?;
    let by_cluster = read.by_cluster();
    let none: Vec<&NodeGroup> = Vec::new();
    let views: Vec<View> = read
        .clusters
        .iter()
        .map(|c| View {
            c,
            nodegroups: by_cluster.get(c.uuid.as_str()).unwrap_or(&none),
            template_labels: c
                .cluster_template_id
                .as_deref()
                .and_then(|t| read.labels.get(t)),
            faults: false,
            base,
            expand,
            use_cluster_id: ctx.has(Feature::ClusterIdField),
        })
        .collect();
    let last = read.clusters.last().map(|c| c.uuid.as_str());
    let next = q.next_link(base, resource, read.clusters.len(), limit, last);
    #[derive(Serialize)]
    struct Body<'a> {
        clusters: Vec<View<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    }
    let size = views.len() * if expand { 2048 } else { 1024 };
    json_response(
        &Body {
            clusters: views,
            next,
        },
        size,
    )
}

async fn show(
    State(state): State<AppState>,
    mut ctx: Ctx,
    base: BaseUrl,
    Path(ident): Path<String>,
) -> ApiResult<Response> {
    ctx.all_projects_if_admin(&state, "cluster:get_one_all_projects")?;
    // By uuid (what clients send), one statement; by name, two.
    let (c, template_labels, nodegroups) = match canonical_uuid(&ident) {
        Some(uuid) => state
            .db
            .cluster_view(&ctx.context, &uuid)
            .await?
            .ok_or_else(|| MagnumError::ClusterNotFound(ident.clone()))?,
        None => {
            let (c, labels) = find_with_template_labels(&state.db, &ctx, &ident).await?;
            let nodegroups = state.db.nodegroup_summaries_of(&[&c.uuid]).await?;
            (c, labels, nodegroups)
        }
    };
    ctx.enforce(
        &state,
        "cluster:get",
        &json!({"project_id": c.project_id, "user_id": c.user_id}),
    )?;
    let nodegroups: Vec<&NodeGroup> = nodegroups.iter().collect();
    json_response(
        &View {
            c: &c,
            nodegroups: &nodegroups,
            template_labels: template_labels.as_ref(),
            faults: true,
            base: &base,
            expand: true,
            use_cluster_id: ctx.has(Feature::ClusterIdField),
        },
        4096,
    )
}

#[cfg(test)]
mod tests {
    use super::{labels_diff, Diff, LabelsDiff};
    use serde_json::json;

    /// The views' streamed differences are `labels_diff`'s maps.
    #[test]
    fn streamed_label_differences_match() {
        let cases = [
            (
                json!({"a": "1", "b": "2", "c": "3"}),
                json!({"a": "1", "b": "9", "d": "4"}),
            ),
            (json!({}), json!({"x": "1"})),
            (json!({"x": "1"}), json!({})),
            (json!({"k": "v"}), json!({"k": "v"})),
        ];
        for (parent, labels) in cases {
            let (parent, labels) = (parent.as_object().unwrap(), labels.as_object().unwrap());
            let (o, a, s) = labels_diff(parent, labels);
            for (kind, want) in [(Diff::Overridden, o), (Diff::Added, a), (Diff::Skipped, s)] {
                let got = serde_json::to_value(LabelsDiff {
                    parent,
                    labels,
                    kind,
                })
                .unwrap();
                assert_eq!(got, serde_json::Value::Object(want));
            }
        }
    }

    #[test]
    fn label_differences_like_upstream() {
        let parent = json!({"a": "1", "b": "2", "c": "3"})
            .as_object()
            .cloned()
            .unwrap();
        let labels = json!({"a": "1", "b": "9", "d": "4"})
            .as_object()
            .cloned()
            .unwrap();
        let (o, a, s) = labels_diff(&parent, &labels);
        assert_eq!(serde_json::Value::Object(o), json!({"b": "2"}));
        assert_eq!(serde_json::Value::Object(a), json!({"d": "4"}));
        assert_eq!(serde_json::Value::Object(s), json!({"c": "3"}));
    }
}
