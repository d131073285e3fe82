//! Cluster certificates, as upstream's conductor keeps them
//! (`conductor/handlers/common/cert_manager.py`): on create, the cluster's
//! CA, its etcd CA and its front-proxy CA (each named after the cluster,
//! else its uuid) and Magnum's own client certificate (`admin`,
//! `system:masters`), each key encrypted with its own random passphrase.
//!
//! Storage: upstream's `x509keypair` table (`[certificates]
//! cert_manager_type = x509keypair`). Barbican and local files are not
//! built yet: those settings fall back to `x509keypair` with a warning.

use magnum_core::config::Config;
use magnum_core::objects::Cluster;
use magnum_core::x509::{self, X509Error, X509Settings};
use magnum_core::MagnumError;
use magnum_db::{Database, X509KeyPair};
use rand::Rng;
use serde_json::{json, Map, Value};

/// Magnum's own client certificate's stored name, as upstream's.
pub const CONDUCTOR_CLIENT_NAME: &str = "Magnum-Conductor";

/// Which CA of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaType {
    Kubernetes,
    Etcd,
    FrontProxy,
}

impl CaType {
    /// Upstream's `ca_cert_type` values (anything else is the main CA).
    pub fn parse(s: Option<&str>) -> CaType {
        match s {
            Some("etcd") => CaType::Etcd,
            Some("front_proxy") | Some("front-proxy") => CaType::FrontProxy,
            _ => CaType::Kubernetes,
        }
    }
}

/// Makes, finds and removes cluster certificates.
#[derive(Debug, Clone)]
pub struct CertManager {
    settings: X509Settings,
}

fn passphrase() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..12)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

fn x509_error(e: X509Error) -> MagnumError {
    match e {
        X509Error::InvalidCsr(_) => MagnumError::Invalid(e.to_string()),
        other => MagnumError::Internal(other.to_string()),
    }
}

/// The issuer name of a cluster's CAs (upstream's `_get_issuer_name`).
pub fn issuer_name(c: &Cluster) -> String {
    c.name.clone().unwrap_or_else(|| c.uuid.clone())
}

impl CertManager {
    pub fn from_conf(conf: &Config) -> CertManager {
        let kind = conf
            .str("certificates", "cert_manager_type")
            .unwrap_or_else(|| "barbican".into());
        if kind != "x509keypair" {
            tracing::warn!(
                "[certificates] cert_manager_type {kind} is not available yet; cluster \
                 certificates are kept in the x509keypair table"
            );
        }
        CertManager {
            settings: X509Settings::from_conf(conf),
        }
    }

    pub fn with_settings(settings: X509Settings) -> CertManager {
        CertManager { settings }
    }

    async fn store(
        db: &Database,
        c: &Cluster,
        cert: x509::CertKey,
        passphrase: String,
    ) -> Result<String, MagnumError> {
        let k = X509KeyPair {
            uuid: uuid::Uuid::new_v4().to_string(),
            certificate: Some(cert.certificate),
            private_key: Some(cert.private_key),
            private_key_passphrase: Some(passphrase),
            intermediates: None,
            project_id: c.project_id.clone(),
            user_id: c.user_id.clone(),
        };
        db.x509keypair_create(&k)
            .await
            .map_err(|e| MagnumError::Internal(e.to_string()))?;
        Ok(k.uuid)
    }

    /// Generate and store a cluster's certificates; the fields to save on
    /// the cluster (`ca_cert_ref`, `etcd_ca_cert_ref`,
    /// `front_proxy_ca_cert_ref`, `magnum_cert_ref`).
    pub async fn generate(
        &self,
        db: &Database,
        c: &Cluster,
    ) -> Result<Map<String, Value>, MagnumError> {
        let issuer = issuer_name(c);
        let s = self.settings.clone();
        let (ca_pw, etcd_pw, fp_pw, client_pw) =
            (passphrase(), passphrase(), passphrase(), passphrase());
        let made = {
            let (issuer, ca_pw, etcd_pw, fp_pw, client_pw) = (
                issuer.clone(),
                ca_pw.clone(),
                etcd_pw.clone(),
                fp_pw.clone(),
                client_pw.clone(),
            );
            tokio::task::spawn_blocking(move || -> Result<_, X509Error> {
                let ca = x509::generate_ca(&issuer, Some(&ca_pw), &s)?;
                let etcd = x509::generate_ca(&issuer, Some(&etcd_pw), &s)?;
                let fp = x509::generate_ca(&issuer, Some(&fp_pw), &s)?;
                let client = x509::generate_client(
                    &issuer,
                    "admin",
                    Some("system:masters"),
                    &ca.private_key,
                    Some(&ca_pw),
                    Some(&client_pw),
                    &s,
                )?;
                Ok((ca, etcd, fp, client))
            })
            .await
            .map_err(|e| MagnumError::Internal(e.to_string()))?
            .map_err(x509_error)?
        };
        let (ca, etcd, fp, client) = made;
        let mut refs = Map::new();
        refs.insert(
            "ca_cert_ref".into(),
            json!(Self::store(db, c, ca, ca_pw).await?),
        );
        refs.insert(
            "etcd_ca_cert_ref".into(),
            json!(Self::store(db, c, etcd, etcd_pw).await?),
        );
        refs.insert(
            "front_proxy_ca_cert_ref".into(),
            json!(Self::store(db, c, fp, fp_pw).await?),
        );
        refs.insert(
            "magnum_cert_ref".into(),
            json!(Self::store(db, c, client, client_pw).await?),
        );
        Ok(refs)
    }

    fn reference(c: &Cluster, t: CaType) -> Option<&String> {
        match t {
            CaType::Kubernetes => c.ca_cert_ref.as_ref(),
            CaType::Etcd => c.etcd_ca_cert_ref.as_ref(),
            CaType::FrontProxy => c.front_proxy_ca_cert_ref.as_ref(),
        }
    }

    /// A CA of the cluster, with its key.
    pub async fn ca(
        &self,
        db: &Database,
        c: &Cluster,
        t: CaType,
    ) -> Result<X509KeyPair, MagnumError> {
        let r = Self::reference(c, t).ok_or_else(|| {
            MagnumError::NotSupportedMsg(format!("Cluster {} has no certificates", c.uuid))
        })?;
        db.x509keypair_get(r)
            .await
            .map_err(|e| MagnumError::Internal(e.to_string()))?
            .ok_or_else(|| MagnumError::Internal(format!("certificate {r} is missing")))
    }

    /// Sign a CSR with one of the cluster's CAs.
    pub async fn sign(
        &self,
        db: &Database,
        c: &Cluster,
        csr: &str,
        t: CaType,
    ) -> Result<String, MagnumError> {
        let ca = self.ca(db, c, t).await?;
        let issuer = issuer_name(c);
        let s = self.settings.clone();
        let csr = csr.to_string();
        tokio::task::spawn_blocking(move || {
            x509::sign_csr(
                &csr,
                &issuer,
                ca.private_key.as_deref().unwrap_or_default(),
                ca.private_key_passphrase.as_deref(),
                &s,
            )
        })
        .await
        .map_err(|e| MagnumError::Internal(e.to_string()))?
        .map_err(x509_error)
    }

    /// Remove a cluster's certificates (what is gone already is fine).
    pub async fn delete(&self, db: &Database, c: &Cluster) {
        for r in [
            &c.ca_cert_ref,
            &c.etcd_ca_cert_ref,
            &c.front_proxy_ca_cert_ref,
            &c.magnum_cert_ref,
        ]
        .into_iter()
        .flatten()
        {
            if let Err(e) = db.x509keypair_destroy(r).await {
                tracing::warn!("cluster {}: cannot delete certificate {r}: {e}", c.uuid);
            }
        }
    }
}
