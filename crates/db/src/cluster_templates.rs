//! ClusterTemplate rows: lookups with upstream's visibility rules, listing,
//! creation, conditional update and delete.
//!
//! A template is visible to a request when it belongs to the caller's
//! project (or, with no project, to the caller), when it is public and not
//! hidden, or — for admins — when it is public and hidden. Admins acting on
//! all projects see every template.

use magnum_core::objects::ClusterTemplate;
use magnum_core::RequestContext;
use sea_query::{Alias, Cond, Expr, Query, SelectStatement, SimpleExpr, Value};

use crate::paginate::{self, Page};
use crate::records::{self, Mapping};
use crate::schema::{CLUSTER, CLUSTER_TEMPLATE};
use crate::{now, Database, DbError};

const MAP: Mapping = Mapping {
    table: &CLUSTER_TEMPLATE,
    json: &["labels"],
};

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
    records::select(&MAP)
}

impl Database {
    async fn one_template(&self, q: &SelectStatement) -> Result<Vec<ClusterTemplate>, DbError> {
        self.fetch_records(q, &MAP).await
    }

    /// The templates with these UUIDs that the caller may see, in one
    /// statement.
    pub async fn cluster_templates_by_uuids(
        &self,
        ctx: &RequestContext,
        uuids: &[&str],
    ) -> Result<Vec<ClusterTemplate>, DbError> {
        if uuids.is_empty() {
            return Ok(Vec::new());
        }
        let q = select_all()
            .cond_where(
                Cond::all()
                    .add(c("uuid").is_in(uuids.iter().copied()))
                    .add(visible(ctx, Cond::all())),
            )
            .to_owned();
        self.one_template(&q).await
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
        let q = records::insert(&MAP, &records::to_fields(ct));
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
        let before = records::values(&MAP, &records::to_fields(old));
        let changed: Vec<(&'static str, Value)> = records::values(&MAP, &records::to_fields(new))
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
