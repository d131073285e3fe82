//! The Keystone trustee and trust of each cluster (`rs_cluster_trust`).

use sea_query::{Alias, Expr, Query};
use serde::{Deserialize, Serialize};

use crate::records::{self, insert, select, Mapping};
use crate::schema::CLUSTER_TRUST;
use crate::{Database, DbError};

const TRUSTS: Mapping = Mapping {
    table: &CLUSTER_TRUST,
    json: &[],
};

/// A cluster's trustee user and the trust its owner gave it.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterTrust {
    pub cluster_uuid: String,
    pub trustee_user_id: Option<String>,
    pub trustee_username: Option<String>,
    pub trustee_password: Option<String>,
    pub trust_id: Option<String>,
}

impl std::fmt::Debug for ClusterTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTrust")
            .field("cluster_uuid", &self.cluster_uuid)
            .field("trustee_user_id", &self.trustee_user_id)
            .field("trust_id", &self.trust_id)
            .finish_non_exhaustive()
    }
}

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
        let t = TestDb::create(backend).await;
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
