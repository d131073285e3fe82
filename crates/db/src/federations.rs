//! Federations: a record linking a host cluster with member clusters, with
//! COE-specific properties (such as `dns-zone`).
//!
//! Names are not unique (upstream's table only keys `uuid`); a lookup by
//! name answers every match, so the caller can refuse an ambiguous one.
//! Updates are conditional on the member list and properties read
//! (optimistic concurrency): of two racing read-modify-write updates,
//! exactly one wins and the other re-reads.

use magnum_core::RequestContext;
use sea_query::{Alias, Cond, Expr, Query, SelectStatement, SimpleExpr, Value};
use serde::{Deserialize, Serialize};
use serde_json::Map;

use crate::cluster_templates::tenant_filter;
use crate::paginate::{self, Page};
use crate::records::{self, insert, select, Mapping};
use crate::schema::FEDERATION;
use crate::{now, Database, DbError};

const FEDERATIONS: Mapping = Mapping {
    table: &FEDERATION,
    json: &["member_ids", "properties"],
};

/// One federation row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Federation {
    pub id: i64,
    pub uuid: String,
    pub name: Option<String>,
    pub project_id: Option<String>,
    /// The UUID of the cluster hosting the federated API.
    pub hostcluster_id: Option<String>,
    /// The UUIDs of the member clusters.
    pub member_ids: Option<Vec<String>>,
    pub status: Option<String>,
    pub status_reason: Option<String>,
    /// Federation metadata (string values), such as `dns-zone`.
    pub properties: Option<Map<String, serde_json::Value>>,
    pub created_at: Option<chrono::NaiveDateTime>,
    pub updated_at: Option<chrono::NaiveDateTime>,
}

fn c(name: &str) -> Expr {
    Expr::col(Alias::new(name))
}

/// Rows the caller may see: its project's (all of them for an admin
/// asking for all tenants). Federation rows carry no `user_id`, so a
/// caller without a project sees none.
fn owned(ctx: &RequestContext, cond: Cond) -> Cond {
    if ctx.project_id.is_none() && !(ctx.is_admin && ctx.all_tenants) {
        return cond.add(Expr::val(1).eq(0));
    }
    match tenant_filter(ctx) {
        Some(t) => cond.add(t),
        None => cond,
    }
}

/// `column = <stored value>`, or `IS NULL` for a NULL value.
fn stored_eq(column: &str, v: Value) -> SimpleExpr {
    match v {
        Value::String(None) => c(column).is_null(),
        v => c(column).eq(v),
    }
}

impl Database {
    async fn federations_where(&self, q: &SelectStatement) -> Result<Vec<Federation>, DbError> {
        self.fetch_maps(q, &FEDERATIONS)
            .await?
            .into_iter()
            .map(|m| records::from_fields(&FEDERATIONS, m))
            .collect()
    }

    /// Store a new federation; a UUID already used is `Duplicate`.
    pub async fn federation_create(&self, f: &Federation) -> Result<Federation, DbError> {
        self.execute(&insert(&FEDERATIONS, &records::to_fields(f)))
            .await?;
        self.federation_get(&f.uuid)
            .await?
            .ok_or(DbError::Sql(sqlx::Error::RowNotFound))
    }

    /// The federation with this UUID, whoever owns it.
    pub async fn federation_get(&self, uuid: &str) -> Result<Option<Federation>, DbError> {
        let q = select(&FEDERATIONS)
            .and_where(c("uuid").eq(uuid))
            .to_owned();
        Ok(self.federations_where(&q).await?.into_iter().next())
    }

    /// The federation with this UUID, if the caller may see it.
    pub async fn federation_get_by_uuid(
        &self,
        ctx: &RequestContext,
        uuid: &str,
    ) -> Result<Option<Federation>, DbError> {
        let q = select(&FEDERATIONS)
            .cond_where(owned(ctx, Cond::all().add(c("uuid").eq(uuid))))
            .to_owned();
        Ok(self.federations_where(&q).await?.into_iter().next())
    }

    /// The caller's federations with this name (more than one: ambiguous).
    pub async fn federation_get_by_name(
        &self,
        ctx: &RequestContext,
        name: &str,
    ) -> Result<Vec<Federation>, DbError> {
        let q = select(&FEDERATIONS)
            .cond_where(owned(ctx, Cond::all().add(c("name").eq(name))))
            .limit(2)
            .to_owned();
        self.federations_where(&q).await
    }

    /// Whether `key` is a column federations can be sorted by.
    pub fn federation_sort_key_valid(key: &str) -> bool {
        paginate::valid_sort_key(&FEDERATION, key)
    }

    /// One page of the caller's federations.
    pub async fn federation_list(
        &self,
        ctx: &RequestContext,
        page: &Page,
    ) -> Result<Vec<Federation>, DbError> {
        let mut q = select(&FEDERATIONS)
            .cond_where(owned(ctx, Cond::all()))
            .to_owned();
        paginate::apply(&mut q, &FEDERATION, page);
        self.federations_where(&q).await
    }

    /// Write the members, properties and status of `updated` if the stored
    /// members and properties are still those of `read` (what the update
    /// was computed from). `Ok(false)`: gone, or changed meanwhile.
    pub async fn federation_update(
        &self,
        updated: &Federation,
        read: &Federation,
    ) -> Result<bool, DbError> {
        const WRITTEN: [&str; 4] = ["member_ids", "properties", "status", "status_reason"];
        let mut new = records::to_fields(updated);
        new.retain(|k, _| WRITTEN.contains(&k.as_str()));
        let mut q = Query::update()
            .table(Alias::new(FEDERATION.name))
            .value(Alias::new("updated_at"), now())
            .and_where(c("uuid").eq(read.uuid.as_str()))
            .to_owned();
        for (k, v) in records::some_values(&FEDERATIONS, &new) {
            q.value(Alias::new(k), SimpleExpr::Value(v));
        }
        let mut old = records::to_fields(read);
        old.retain(|k, _| k == "member_ids" || k == "properties");
        for (k, v) in records::some_values(&FEDERATIONS, &old) {
            q.and_where(stored_eq(k, v));
        }
        Ok(self.execute(&q).await? == 1)
    }

    /// Delete a federation. `Ok(false)`: already gone.
    pub async fn federation_destroy(&self, uuid: &str) -> Result<bool, DbError> {
        let q = Query::delete()
            .from_table(Alias::new(FEDERATION.name))
            .and_where(c("uuid").eq(uuid))
            .to_owned();
        Ok(self.execute(&q).await? == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;
    use crate::Backend;
    use serde_json::json;

    const F1: &str = "f1111111-1111-4111-8111-111111111111";
    const F2: &str = "f2222222-2222-4222-8222-222222222222";
    const F3: &str = "f3333333-3333-4333-8333-333333333333";

    fn federation(uuid: &str, name: &str, project: &str) -> Federation {
        Federation {
            uuid: uuid.into(),
            name: Some(name.into()),
            project_id: Some(project.into()),
            hostcluster_id: Some("c1111111-1111-4111-8111-111111111111".into()),
            member_ids: Some(vec!["c1111111-1111-4111-8111-111111111111".into()]),
            status: Some("CREATE_COMPLETE".into()),
            status_reason: Some("CREATE completed successfully".into()),
            properties: json!({"dns-zone": "example.com."}).as_object().cloned(),
            ..Default::default()
        }
    }

    fn ctx(project: &str) -> RequestContext {
        RequestContext {
            project_id: Some(project.into()),
            ..Default::default()
        }
    }

    async fn federations_round_trip(backend: Backend) {
        let t = TestDb::create_migrated(backend).await;
        let db = t.migrated().await;
        let stored = db
            .federation_create(&federation(F1, "fed", "p"))
            .await
            .unwrap();
        assert!(stored.id > 0 && stored.created_at.is_some());
        assert_eq!(stored.member_ids, federation(F1, "fed", "p").member_ids);
        assert_eq!(stored.properties, federation(F1, "fed", "p").properties);
        assert!(matches!(
            db.federation_create(&federation(F1, "again", "p")).await,
            Err(DbError::Duplicate)
        ));

        // Tenancy.
        assert!(db
            .federation_get_by_uuid(&ctx("p"), F1)
            .await
            .unwrap()
            .is_some());
        assert!(db
            .federation_get_by_uuid(&ctx("q"), F1)
            .await
            .unwrap()
            .is_none());
        let nobody = RequestContext {
            user_id: Some("u".into()),
            ..Default::default()
        };
        assert!(db
            .federation_get_by_uuid(&nobody, F1)
            .await
            .unwrap()
            .is_none());
        let all = RequestContext {
            is_admin: true,
            all_tenants: true,
            ..Default::default()
        };
        assert!(db.federation_get_by_uuid(&all, F1).await.unwrap().is_some());

        // Names are not unique: a name lookup answers every match.
        db.federation_create(&federation(F2, "fed", "p"))
            .await
            .unwrap();
        db.federation_create(&federation(F3, "other", "q"))
            .await
            .unwrap();
        assert_eq!(
            db.federation_get_by_name(&ctx("p"), "fed")
                .await
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            db.federation_get_by_name(&ctx("q"), "fed")
                .await
                .unwrap()
                .len(),
            0
        );

        // Paging.
        let page = |limit, marker_id, dir| Page {
            limit: Some(limit),
            marker_id,
            sort_key: Some("id".into()),
            sort_dir: dir,
        };
        let first = db
            .federation_list(&ctx("p"), &page(1, None, paginate::SortDir::Asc))
            .await
            .unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].uuid, F1);
        let next = db
            .federation_list(
                &ctx("p"),
                &page(5, Some(first[0].id), paginate::SortDir::Asc),
            )
            .await
            .unwrap();
        assert_eq!(
            next.iter().map(|f| f.uuid.as_str()).collect::<Vec<_>>(),
            [F2]
        );
        let desc = db
            .federation_list(&ctx("p"), &page(5, None, paginate::SortDir::Desc))
            .await
            .unwrap();
        assert_eq!(
            desc.iter().map(|f| f.uuid.as_str()).collect::<Vec<_>>(),
            [F2, F1]
        );
        assert_eq!(
            db.federation_list(&all, &Page::default())
                .await
                .unwrap()
                .len(),
            3
        );
        assert!(Database::federation_sort_key_valid("name"));
        assert!(!Database::federation_sort_key_valid("nope"));

        // Updates are conditional on what was read.
        let read = db.federation_get(F1).await.unwrap().unwrap();
        let mut changed = read.clone();
        changed.member_ids = Some(vec![]);
        changed.properties = json!({"dns-zone": "other.org."}).as_object().cloned();
        changed.status = Some("UPDATE_COMPLETE".into());
        changed.name = Some("renamed".into());
        assert!(db.federation_update(&changed, &read).await.unwrap());
        assert!(
            !db.federation_update(&changed, &read).await.unwrap(),
            "a stale read loses"
        );
        let now = db.federation_get(F1).await.unwrap().unwrap();
        assert_eq!(now.member_ids, Some(vec![]));
        assert_eq!(now.properties, changed.properties);
        assert_eq!(now.status.as_deref(), Some("UPDATE_COMPLETE"));
        assert_eq!(
            now.name.as_deref(),
            Some("fed"),
            "only members, properties, status"
        );
        assert!(now.updated_at.is_some());
        // NULL members and properties compare too.
        let mut bare = federation(F1, "x", "p");
        bare.uuid = "f4444444-4444-4444-8444-444444444444".into();
        bare.member_ids = None;
        bare.properties = None;
        let bare = db.federation_create(&bare).await.unwrap();
        let mut filled = bare.clone();
        filled.member_ids = Some(vec!["m".into()]);
        assert!(db.federation_update(&filled, &bare).await.unwrap());
        assert!(!db.federation_update(&filled, &bare).await.unwrap());

        assert!(db.federation_destroy(F1).await.unwrap());
        assert!(!db.federation_destroy(F1).await.unwrap());
        assert!(db.federation_get(F1).await.unwrap().is_none());
    }

    /// Many workers race to update one federation from the same read:
    /// exactly one wins.
    async fn federation_updates_have_one_winner(backend: Backend) {
        let t = TestDb::create_migrated(backend).await;
        let db = t.migrated().await;
        let read = db
            .federation_create(&federation(F1, "fed", "p"))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let db = db.clone();
            let read = read.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = read.clone();
                mine.member_ids = Some(vec![format!("member-{i}")]);
                db.federation_update(&mine, &read).await.unwrap()
            }));
        }
        let mut winners = 0;
        for t in tasks {
            if t.await.unwrap() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1);
    }

    backends!(federations_round_trip, federation_updates_have_one_winner);
}
