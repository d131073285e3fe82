//! The Keystone trustee and trust of each cluster (`rs_cluster_trust`).

use sea_query::{Alias, Expr, Query};

use crate::records::{self, insert, select, Mapping};
use crate::schema::CLUSTER_TRUST;
use crate::{Database, DbError};

const TRUSTS: Mapping = Mapping {
    table: &CLUSTER_TRUST,
    json: &[],
};

pub use magnum_core::objects::ClusterTrust;

impl Database {
    pub async fn trust_save(&self, t: &ClusterTrust) -> Result<(), DbError> {
        self.execute(&insert(&TRUSTS, &records::to_fields(t)))
            .await?;
        Ok(())
    }

    pub async fn trust_get(&self, cluster_uuid: &str) -> Result<Option<ClusterTrust>, DbError> {
        let q = select(&TRUSTS)
            .and_where(Expr::col(Alias::new("cluster_uuid")).eq(cluster_uuid))
            .to_owned();
        self.fetch_maps(&q, &TRUSTS)
            .await?
            .into_iter()
            .next()
            .map(|m| records::from_fields(&TRUSTS, m))
            .transpose()
    }

    pub async fn trust_forget(&self, cluster_uuid: &str) -> Result<bool, DbError> {
        let q = Query::delete()
            .from_table(Alias::new(CLUSTER_TRUST.name))
            .and_where(Expr::col(Alias::new("cluster_uuid")).eq(cluster_uuid))
            .to_owned();
        Ok(self.execute(&q).await? == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;
    use crate::Backend;

    async fn round_trip(backend: Backend) {
        let t = TestDb::create_migrated(backend).await;
        let db = t.migrated().await;
        let trust = ClusterTrust {
            cluster_uuid: "c1".into(),
            trustee_user_id: Some("u".into()),
            trustee_username: Some("c1_p".into()),
            trustee_password: Some("pw".into()),
            trust_id: Some("t".into()),
        };
        db.trust_save(&trust).await.unwrap();
        assert_eq!(db.trust_get("c1").await.unwrap(), Some(trust.clone()));
        assert!(!format!("{trust:?}").contains("pw"), "no password in Debug");
        assert!(matches!(
            db.trust_save(&trust).await,
            Err(DbError::Duplicate)
        ));
        assert!(db.trust_forget("c1").await.unwrap());
        assert!(db.trust_get("c1").await.unwrap().is_none());
    }

    backends!(round_trip);
}
