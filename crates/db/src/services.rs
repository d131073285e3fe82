//! `magnum_service` rows: one per running service process (host, binary),
//! refreshed by a periodic heartbeat so others can tell whether it is up.

use chrono::NaiveDateTime;
use sea_query::{Alias, Expr, Query};

use crate::schema::MAGNUM_SERVICE;
use crate::{now, Database, DbError};

/// One service's row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ServiceRecord {
    pub id: i32,
    pub host: Option<String>,
    pub binary: Option<String>,
    pub report_count: i32,
    pub disabled: Option<bool>,
    pub disabled_reason: Option<String>,
    pub last_seen_up: Option<NaiveDateTime>,
    pub forced_down: Option<bool>,
    pub created_at: Option<NaiveDateTime>,
    pub updated_at: Option<NaiveDateTime>,
}

impl ServiceRecord {
    /// Upstream's liveness rule at `at`: forced down, or no heartbeat
    /// within `down_after` seconds, is down.
    pub fn is_up(&self, at: NaiveDateTime, down_after: i64) -> bool {
        if self.forced_down == Some(true) {
            return false;
        }
        let Some(last) = self.last_seen_up.or(self.updated_at).or(self.created_at) else {
            return false;
        };
        (at - last).num_seconds().abs() <= down_after
    }
}

fn select() -> sea_query::SelectStatement {
    Query::select()
        .columns(MAGNUM_SERVICE.columns.iter().map(|c| Alias::new(c.name)))
        .from(Alias::new(MAGNUM_SERVICE.name))
        .to_owned()
}

impl Database {
    /// Record one heartbeat of (host, binary): the row is created on the
    /// first beat; every beat bumps `report_count` and `last_seen_up`.
    pub async fn service_heartbeat(
        &self,
        host: &str,
        binary: &str,
    ) -> Result<ServiceRecord, DbError> {
        let t = Alias::new(MAGNUM_SERVICE.name);
        let at = now();
        let bump = Query::update()
            .table(t.clone())
            .value(
                Alias::new("report_count"),
                Expr::col(Alias::new("report_count")).add(1),
            )
            .value(Alias::new("last_seen_up"), at)
            .value(Alias::new("updated_at"), at)
            .and_where(Expr::col(Alias::new("host")).eq(host))
            .and_where(Expr::col(Alias::new("binary")).eq(binary))
            .to_owned();
        if self.execute(&bump).await? == 0 {
            let insert = Query::insert()
                .into_table(t)
                .columns(
                    [
                        "host",
                        "binary",
                        "report_count",
                        "disabled",
                        "forced_down",
                        "last_seen_up",
                        "created_at",
                    ]
                    .map(Alias::new),
                )
                .values_panic([
                    host.into(),
                    binary.into(),
                    1.into(),
                    false.into(),
                    false.into(),
                    at.into(),
                    at.into(),
                ])
                .to_owned();
            match self.execute(&insert).await {
                // Another beat of the same service won the race: bump instead.
                Err(DbError::Duplicate) => {
                    self.execute(&bump).await?;
                }
                other => {
                    other?;
                }
            }
        }
        let q = select()
            .and_where(Expr::col(Alias::new("host")).eq(host))
            .and_where(Expr::col(Alias::new("binary")).eq(binary))
            .to_owned();
        self.fetch_optional(&q)
            .await?
            .ok_or(DbError::Sql(sqlx::Error::RowNotFound))
    }

    /// The hosts of `binary` that are up by upstream's rule (what
    /// `/v1/mservices` shows as `up`): not forced down, and a heartbeat
    /// within `down_after` seconds. Sorted, so every conductor reading the
    /// same rows gets the same list.
    pub async fn hosts_up(&self, binary: &str, down_after: i64) -> Result<Vec<String>, DbError> {
        let q = select()
            .and_where(Expr::col(Alias::new("binary")).eq(binary))
            .to_owned();
        let rows: Vec<ServiceRecord> = self.fetch_all(&q).await?;
        let at = now();
        let mut hosts: Vec<String> = rows
            .into_iter()
            .filter(|s| s.is_up(at, down_after))
            .filter_map(|s| s.host)
            .collect();
        hosts.sort();
        hosts.dedup();
        Ok(hosts)
    }

    /// Every service row, by id.
    pub async fn service_list(&self) -> Result<Vec<ServiceRecord>, DbError> {
        let q = select()
            .order_by(Alias::new("id"), sea_query::Order::Asc)
            .to_owned();
        self.fetch_all(&q).await
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::TestDb;
    use crate::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hosts_up_sorted_by_binary_and_heartbeat() {
        let t = TestDb::create_migrated(Backend::Sqlite).await;
        let db = t.migrated().await;
        for host in ["c2", "c1", "c3"] {
            db.service_heartbeat(host, "magnum-conductor")
                .await
                .unwrap();
        }
        db.service_heartbeat("a1", "magnum-api").await.unwrap();
        assert_eq!(
            db.hosts_up("magnum-conductor", 60).await.unwrap(),
            ["c1", "c2", "c3"]
        );
        // No heartbeat is within -1 seconds: all down.
        assert!(db
            .hosts_up("magnum-conductor", -1)
            .await
            .unwrap()
            .is_empty());
    }
}
