//! Quotas: a hard limit per (project, resource).

use sea_query::{Alias, Expr, Query, Value};
use serde::{Deserialize, Serialize};

use crate::paginate::{self, Page};
use crate::records::{self, insert, select, Mapping};
use crate::schema::QUOTAS;
use crate::{now, Database, DbError};

const MAP: Mapping = Mapping {
    table: &QUOTAS,
    json: &[],
};

/// One quota row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quota {
    pub id: i64,
    pub project_id: Option<String>,
    pub resource: Option<String>,
    pub hard_limit: i64,
    pub created_at: Option<chrono::NaiveDateTime>,
    pub updated_at: Option<chrono::NaiveDateTime>,
}

fn c(name: &str) -> Expr {
    Expr::col(Alias::new(name))
}

impl Database {
    async fn quotas_where(&self, q: &sea_query::SelectStatement) -> Result<Vec<Quota>, DbError> {
        self.fetch_records(q, &MAP).await
    }

    /// Store a quota; one already set for (project, resource) is `Duplicate`.
    pub async fn quota_create(&self, quota: &Quota) -> Result<Quota, DbError> {
        let q = insert(&MAP, &records::to_fields(quota));
        self.execute(&q).await?;
        self.quota_get(
            quota.project_id.as_deref().unwrap_or_default(),
            quota.resource.as_deref().unwrap_or_default(),
        )
        .await?
        .ok_or(DbError::Sql(sqlx::Error::RowNotFound))
    }

    pub async fn quota_get(
        &self,
        project_id: &str,
        resource: &str,
    ) -> Result<Option<Quota>, DbError> {
        let q = select(&MAP)
            .and_where(c("project_id").eq(project_id))
            .and_where(c("resource").eq(resource))
            .to_owned();
        Ok(self.quotas_where(&q).await?.into_iter().next())
    }

    pub async fn quota_by_id(&self, id: i64) -> Result<Option<Quota>, DbError> {
        let q = select(&MAP).and_where(c("id").eq(id)).to_owned();
        Ok(self.quotas_where(&q).await?.into_iter().next())
    }

    /// Whether `key` is a column quotas can be sorted by.
    pub fn quota_sort_key_valid(key: &str) -> bool {
        paginate::valid_sort_key(&QUOTAS, key)
    }

    /// One page of quotas, of one project or of all.
    pub async fn quota_list(
        &self,
        project_id: Option<&str>,
        page: &Page,
    ) -> Result<Vec<Quota>, DbError> {
        let mut q = select(&MAP);
        if let Some(p) = project_id {
            q.and_where(c("project_id").eq(p));
        }
        paginate::apply(&mut q, &QUOTAS, page);
        self.quotas_where(&q).await
    }

    /// Set a quota's hard limit. `Ok(None)`: no such quota.
    pub async fn quota_update(
        &self,
        project_id: &str,
        resource: &str,
        hard_limit: i64,
    ) -> Result<Option<Quota>, DbError> {
        let Some(current) = self.quota_get(project_id, resource).await? else {
            return Ok(None);
        };
        let q = Query::update()
            .table(Alias::new(QUOTAS.name))
            .value(
                Alias::new("hard_limit"),
                Value::Int(i32::try_from(hard_limit).ok()),
            )
            .value(Alias::new("updated_at"), now())
            .and_where(c("id").eq(current.id))
            .to_owned();
        self.execute(&q).await?;
        self.quota_by_id(current.id).await
    }

    /// Delete a quota. `Ok(false)`: there was none.
    pub async fn quota_delete(&self, project_id: &str, resource: &str) -> Result<bool, DbError> {
        let q = Query::delete()
            .from_table(Alias::new(QUOTAS.name))
            .and_where(c("project_id").eq(project_id))
            .and_where(c("resource").eq(resource))
            .to_owned();
        Ok(self.execute(&q).await? == 1)
    }
}
