//! Certificates and their keys in upstream's `x509keypair` table
//! (`[certificates] cert_manager_type = x509keypair`): the private key is
//! stored encrypted, its passphrase beside it, as upstream does.

use sea_query::{Alias, Expr, Query};
use serde::{Deserialize, Serialize};

use crate::records::{self, insert, select, Mapping};
use crate::schema::X509KEYPAIR;
use crate::{Database, DbError};

const MAP: Mapping = Mapping {
    table: &X509KEYPAIR,
    json: &[],
};

/// One stored certificate with its (encrypted) key.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct X509KeyPair {
    pub uuid: String,
    pub certificate: Option<String>,
    pub private_key: Option<String>,
    pub private_key_passphrase: Option<String>,
    pub intermediates: Option<String>,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
}

impl std::fmt::Debug for X509KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X509KeyPair")
            .field("uuid", &self.uuid)
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

impl Database {
    pub async fn x509keypair_create(&self, k: &X509KeyPair) -> Result<(), DbError> {
        self.execute(&insert(&MAP, &records::to_fields(k))).await?;
        Ok(())
    }

    pub async fn x509keypair_get(&self, uuid: &str) -> Result<Option<X509KeyPair>, DbError> {
        let q = select(&MAP)
            .and_where(Expr::col(Alias::new("uuid")).eq(uuid))
            .to_owned();
        self.fetch_maps(&q, &MAP)
            .await?
            .into_iter()
            .next()
            .map(|m| records::from_fields(&MAP, m))
            .transpose()
    }

    pub async fn x509keypair_destroy(&self, uuid: &str) -> Result<bool, DbError> {
        let q = Query::delete()
            .from_table(Alias::new(X509KEYPAIR.name))
            .and_where(Expr::col(Alias::new("uuid")).eq(uuid))
            .to_owned();
        Ok(self.execute(&q).await? == 1)
    }
}
