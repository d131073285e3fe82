//! ClusterTemplate rows: lookups with upstream's visibility rules, listing,
//! creation, conditional update and delete.
//!
//! A template is visible to a request when it belongs to the caller's
//! project (or, with no project, to the caller), when it is public and not
//! hidden, or — for admins — when it is public and hidden. Admins acting on
//! all projects see every template.

use chrono::NaiveDateTime;
use magnum_core::objects::{ClusterTemplate, Labels};
use magnum_core::RequestContext;
use sea_query::{Alias, Cond, Expr, Query, SelectStatement, SimpleExpr, Value};

use crate::paginate::{self, Page};
use crate::schema::{CLUSTER, CLUSTER_TEMPLATE};
use crate::{now, Database, DbError};

#[derive(Debug, sqlx::FromRow)]
struct Row {
    created_at: Option<NaiveDateTime>,
    updated_at: Option<NaiveDateTime>,
    id: i32,
    uuid: Option<String>,
    name: Option<String>,
    flavor_id: Option<String>,
    keypair_id: Option<String>,
    image_id: Option<String>,
    external_network_id: Option<String>,
    dns_nameserver: Option<String>,
    apiserver_port: Option<i32>,
    project_id: Option<String>,
    user_id: Option<String>,
    docker_volume_size: Option<i32>,
    fixed_network: Option<String>,
    master_flavor_id: Option<String>,
    cluster_distro: Option<String>,
    coe: Option<String>,
    http_proxy: Option<String>,
    https_proxy: Option<String>,
    no_proxy: Option<String>,
    registry_enabled: Option<bool>,
    network_driver: Option<String>,
    labels: Option<String>,
    tls_disabled: Option<bool>,
    public: Option<bool>,
    server_type: Option<String>,
    volume_driver: Option<String>,
    insecure_registry: Option<String>,
    docker_storage_driver: Option<String>,
    master_lb_enabled: Option<bool>,
    fixed_subnet: Option<String>,
    floating_ip_enabled: Option<bool>,
    hidden: Option<bool>,
    tags: Option<String>,
    driver: Option<String>,
}

impl Row {
    fn into_object(self) -> Result<ClusterTemplate, DbError> {
        let labels = match self.labels.as_deref() {
            None => None,
            Some(text) => {
                Some(
                    serde_json::from_str::<Labels>(text).map_err(|e| DbError::Corrupt {
                        table: "cluster_template",
                        column: "labels",
                        reason: e.to_string(),
                    })?,
                )
            }
        };
        Ok(ClusterTemplate {
            id: self.id.into(),
            uuid: self.uuid.unwrap_or_default(),
            name: self.name,
            project_id: self.project_id,
            user_id: self.user_id,
            coe: self.coe,
            image_id: self.image_id,
            flavor_id: self.flavor_id,
            master_flavor_id: self.master_flavor_id,
            keypair_id: self.keypair_id,
            external_network_id: self.external_network_id,
            fixed_network: self.fixed_network,
            fixed_subnet: self.fixed_subnet,
            network_driver: self.network_driver,
            volume_driver: self.volume_driver,
            dns_nameserver: self.dns_nameserver,
            apiserver_port: self.apiserver_port.map(i64::from),
            docker_volume_size: self.docker_volume_size.map(i64::from),
            docker_storage_driver: self.docker_storage_driver,
            cluster_distro: self.cluster_distro,
            http_proxy: self.http_proxy,
            https_proxy: self.https_proxy,
            no_proxy: self.no_proxy,
            registry_enabled: self.registry_enabled,
            tls_disabled: self.tls_disabled,
            public: self.public,
            hidden: self.hidden,
            server_type: self.server_type,
            insecure_registry: self.insecure_registry,
            master_lb_enabled: self.master_lb_enabled,
            floating_ip_enabled: self.floating_ip_enabled,
            labels,
            tags: self.tags,
            driver: self.driver,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn int(v: Option<i64>) -> Value {
    Value::Int(v.and_then(|v| i32::try_from(v).ok()))
}

/// The stored value of every writable column of a template.
fn column_values(ct: &ClusterTemplate) -> Vec<(&'static str, Value)> {
    let s = |v: &Option<String>| Value::String(v.clone().map(Box::new));
    let b = |v: Option<bool>| Value::Bool(v);
    let labels = ct
        .labels
        .as_ref()
        .map(|l| serde_json::Value::Object(l.clone()).to_string());
    vec![
        ("uuid", Value::String(Some(Box::new(ct.uuid.clone())))),
        ("name", s(&ct.name)),
        ("flavor_id", s(&ct.flavor_id)),
        ("keypair_id", s(&ct.keypair_id)),
        ("image_id", s(&ct.image_id)),
        ("external_network_id", s(&ct.external_network_id)),
        ("dns_nameserver", s(&ct.dns_nameserver)),
        ("apiserver_port", int(ct.apiserver_port)),
        ("project_id", s(&ct.project_id)),
        ("user_id", s(&ct.user_id)),
        ("docker_volume_size", int(ct.docker_volume_size)),
        ("fixed_network", s(&ct.fixed_network)),
        ("master_flavor_id", s(&ct.master_flavor_id)),
        ("cluster_distro", s(&ct.cluster_distro)),
        ("coe", s(&ct.coe)),
        ("http_proxy", s(&ct.http_proxy)),
        ("https_proxy", s(&ct.https_proxy)),
        ("no_proxy", s(&ct.no_proxy)),
        ("registry_enabled", b(ct.registry_enabled)),
        ("network_driver", s(&ct.network_driver)),
        ("labels", s(&labels)),
        ("tls_disabled", b(ct.tls_disabled)),
        ("public", b(ct.public)),
        ("server_type", s(&ct.server_type)),
        ("volume_driver", s(&ct.volume_driver)),
        ("insecure_registry", s(&ct.insecure_registry)),
        ("docker_storage_driver", s(&ct.docker_storage_driver)),
        ("master_lb_enabled", b(ct.master_lb_enabled)),
        ("fixed_subnet", s(&ct.fixed_subnet)),
        ("floating_ip_enabled", b(ct.floating_ip_enabled)),
        ("hidden", b(ct.hidden)),
        ("tags", s(&ct.tags)),
        ("driver", s(&ct.driver)),
    ]
}

/// Filters a listing may apply (upstream's `_add_cluster_template_filters`).
#[derive(Debug, Clone, Default)]
pub struct ClusterTemplateFilter {
    pub name: Option<String>,
    pub project_id: Option<String>,
}

fn table() -> Alias {
    Alias::new(CLUSTER_TEMPLATE.name)
}

fn c(name: &str) -> Expr {
    Expr::col(Alias::new(name))
}

/// Rows owned by the caller (upstream's `_add_tenant_filters`).
pub(crate) fn tenant_filter(ctx: &RequestContext) -> Option<SimpleExpr> {
    if ctx.is_admin && ctx.all_tenants {
        return None;
    }
    Some(match (&ctx.project_id, &ctx.user_id) {
        (Some(project), _) => c("project_id").eq(project.as_str()),
        (None, Some(user)) => c("user_id").eq(user.as_str()),
        (None, None) => c("user_id").is_null(),
    })
}

/// Rows the caller may see: its own, public ones, and public hidden ones
/// for admins.
fn visible(ctx: &RequestContext, own: Cond) -> Cond {
    let own = match tenant_filter(ctx) {
        None => return own,
        Some(t) => own.add(t),
    };
    let mut any = Cond::any().add(own).add(
        Cond::all()
            .add(c("public").eq(true))
            .add(c("hidden").eq(false)),
    );
    if ctx.is_admin {
        any = any.add(
            Cond::all()
                .add(c("public").eq(true))
                .add(c("hidden").eq(true)),
        );
    }
    any
}

fn select_all() -> SelectStatement {
    let cols: Vec<Alias> = CLUSTER_TEMPLATE
        .columns
        .iter()
        .map(|c| Alias::new(c.name))
        .collect();
    Query::select().columns(cols).from(table()).to_owned()
}

impl Database {
    async fn one_template(&self, q: &SelectStatement) -> Result<Vec<ClusterTemplate>, DbError> {
        let rows: Vec<Row> = self.fetch_all(q).await?;
        rows.into_iter().map(Row::into_object).collect()
    }

    /// The template with this UUID, if the caller may see it.
    pub async fn cluster_template_by_uuid(
        &self,
        ctx: &RequestContext,
        uuid: &str,
    ) -> Result<Option<ClusterTemplate>, DbError> {
        let q = select_all()
            .cond_where(
                Cond::all()
                    .add(c("uuid").eq(uuid))
                    .add(visible(ctx, Cond::all())),
            )
            .to_owned();
        Ok(self.one_template(&q).await?.into_iter().next())
    }

    /// Every template with this name the caller may see (callers answer
    /// 409 when there is more than one).
    pub async fn cluster_templates_by_name(
        &self,
        ctx: &RequestContext,
        name: &str,
    ) -> Result<Vec<ClusterTemplate>, DbError> {
        let q = select_all()
            .cond_where(
                Cond::all()
                    .add(c("name").eq(name))
                    .add(visible(ctx, Cond::all())),
            )
            .limit(2)
            .to_owned();
        self.one_template(&q).await
    }

    /// Whether `key` is a column templates can be sorted by.
    pub fn cluster_template_sort_key_valid(key: &str) -> bool {
        paginate::valid_sort_key(&CLUSTER_TEMPLATE, key)
    }

    /// One page of the templates the caller may see.
    pub async fn cluster_template_list(
        &self,
        ctx: &RequestContext,
        filter: &ClusterTemplateFilter,
        page: &Page,
    ) -> Result<Vec<ClusterTemplate>, DbError> {
        let mut own = Cond::all();
        if let Some(name) = &filter.name {
            own = own.add(c("name").eq(name.as_str()));
        }
        if let Some(project) = &filter.project_id {
            own = own.add(c("project_id").eq(project.as_str()));
        }
        let mut q = select_all().cond_where(visible(ctx, own)).to_owned();
        paginate::apply(&mut q, &CLUSTER_TEMPLATE, page);
        self.one_template(&q).await
    }

    /// Store a new template; the stored row (with its id) comes back.
    pub async fn cluster_template_create(
        &self,
        ct: &ClusterTemplate,
    ) -> Result<ClusterTemplate, DbError> {
        let mut values = column_values(ct);
        values.push(("created_at", Value::ChronoDateTime(Some(Box::new(now())))));
        let (cols, vals): (Vec<_>, Vec<_>) = values.into_iter().unzip();
        let q = Query::insert()
            .into_table(table())
            .columns(cols.into_iter().map(Alias::new))
            .values_panic(vals.into_iter().map(SimpleExpr::Value))
            .to_owned();
        self.execute(&q).await?;
        let q = select_all()
            .and_where(c("uuid").eq(ct.uuid.as_str()))
            .to_owned();
        self.one_template(&q)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| DbError::Sql(sqlx::Error::RowNotFound))
    }

    /// Whether any cluster is built from the template with this UUID.
    pub async fn cluster_template_in_use(&self, uuid: &str) -> Result<bool, DbError> {
        let q = Query::select()
            .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
            .from(Alias::new(CLUSTER.name))
            .and_where(c("cluster_template_id").eq(uuid))
            .to_owned();
        Ok(self.count(&q).await? > 0)
    }

    fn unreferenced(uuid: &str) -> SimpleExpr {
        Expr::exists(
            Query::select()
                .expr(Expr::cust("1"))
                .from(Alias::new(CLUSTER.name))
                .and_where(c("cluster_template_id").eq(uuid))
                .to_owned(),
        )
        .not()
    }

    /// Write the fields of `new` that differ from `old`. When a cluster uses
    /// the template only renaming and publishing (public, hidden, tags) are
    /// allowed, as upstream; the check and the write are one statement, so a
    /// cluster created meanwhile cannot slip between them.
    /// `Ok(None)`: the template is gone.
    pub async fn cluster_template_update(
        &self,
        old: &ClusterTemplate,
        new: &ClusterTemplate,
    ) -> Result<Result<Option<ClusterTemplate>, TemplateInUse>, DbError> {
        let before = column_values(old);
        let changed: Vec<(&'static str, Value)> = column_values(new)
            .into_iter()
            .filter(|(k, v)| !before.iter().any(|(bk, bv)| bk == k && bv == v))
            .collect();
        let names: Vec<&str> = changed.iter().map(|(k, _)| *k).collect();
        let publishing = names.len() == 1
            && ((names[0] == "public" && new.public == Some(true))
                || names[0] == "hidden"
                || (names[0] == "tags" && new.tags.is_some()));
        let harmless = names.is_empty() || names == ["name"] || publishing;
        let mut q = Query::update()
            .table(table())
            .value(
                Alias::new("updated_at"),
                Value::ChronoDateTime(Some(Box::new(now()))),
            )
            .and_where(c("id").eq(old.id))
            .to_owned();
        for (k, v) in changed {
            q.value(Alias::new(k), SimpleExpr::Value(v));
        }
        if !harmless {
            q.and_where(Self::unreferenced(&old.uuid));
        }
        // Nothing written: either a cluster uses the template, or the row
        // is gone, or (MySQL counts rows changed, not matched) nothing
        // differed. The re-read below tells the last two apart.
        if self.execute(&q).await? == 0
            && !harmless
            && self.cluster_template_in_use(&old.uuid).await?
        {
            return Ok(Err(TemplateInUse));
        }
        let q = select_all().and_where(c("id").eq(old.id)).to_owned();
        Ok(Ok(self.one_template(&q).await?.into_iter().next()))
    }

    /// Delete a template no cluster uses. `Ok(false)`: it was already gone.
    pub async fn cluster_template_destroy(
        &self,
        ct: &ClusterTemplate,
    ) -> Result<Result<bool, TemplateInUse>, DbError> {
        let q = Query::delete()
            .from_table(table())
            .and_where(c("id").eq(ct.id))
            .and_where(Self::unreferenced(&ct.uuid))
            .to_owned();
        if self.execute(&q).await? == 1 {
            return Ok(Ok(true));
        }
        if self.cluster_template_in_use(&ct.uuid).await? {
            return Ok(Err(TemplateInUse));
        }
        Ok(Ok(false))
    }
}

/// A cluster is built from this template, so the change is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateInUse;
