//! Cluster certificates, as upstream's conductor keeps them
//! (`conductor/handlers/common/cert_manager.py`): on create, the cluster's
//! CA, its etcd CA and its front-proxy CA (each named after the cluster,
//! else its uuid) and Magnum's own client certificate (`admin`,
//! `system:masters`), each key encrypted with its own random passphrase.
//!
//! Storage, by `[certificates] cert_manager_type` as upstream:
//! - `x509keypair`: upstream's `x509keypair` table; the reference is the
//!   row's uuid.
//! - `barbican` (upstream's default): one Barbican certificate container
//!   per certificate holding the certificate, key and passphrase secrets,
//!   owned by Magnum's service user (`[keystone_auth]`, else
//!   `[keystone_authtoken]`); the reference is the container's URL. With
//!   no service user configured (all-in-one without Keystone) the table is
//!   used instead, with a warning at start.
//! - `local`: files `<uuid>.crt`, `.key`, `.pass` (and `.int`) under
//!   `[certificates] storage_path`, readable by Magnum's user only; for
//!   trying things out, as upstream says.

use magnum_core::config::opts;
use std::path::PathBuf;
use std::sync::Arc;

use magnum_core::config::Config;
use magnum_core::objects::Cluster;
use magnum_core::x509::{self, X509Error, X509Settings};
use magnum_core::MagnumError;
use magnum_db::{Database, X509KeyPair};
use magnum_openstack::barbican::Barbican;
use magnum_openstack::{Chain, OsError, Selector, Session};
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

/// Where certificates are kept.
#[derive(Debug, Clone)]
pub enum Store {
    Table,
    Barbican(Barbican),
    Local(PathBuf),
}

/// A cluster's new certificates, each with the cluster field naming it.
pub struct Made(Vec<(&'static str, X509KeyPair)>);

/// Certificates as far as they are kept: the fields to record on the
/// cluster, the rows to write with them (the `x509keypair` table), and the
/// references already stored elsewhere.
#[derive(Debug, Default, Clone)]
pub struct Kept {
    pub refs: Map<String, Value>,
    pub writes: Vec<magnum_db::Write>,
    pub external: Vec<String>,
}

/// Makes, finds and removes cluster certificates.
#[derive(Debug, Clone)]
pub struct CertManager {
    settings: X509Settings,
    store: Store,
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
        X509Error::InvalidCsr(_) | X509Error::NotAllowed(_) => MagnumError::Invalid(e.to_string()),
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
            .get(opts::certificates::CERT_MANAGER_TYPE)
            .unwrap_or_else(|| "barbican".into());
        let store = match kind.as_str() {
            "x509keypair" => Store::Table,
            "local" => Store::Local(PathBuf::from(
                conf.get(opts::certificates::STORAGE_PATH)
                    .unwrap_or_else(|| "/var/lib/magnum/certificates/".into()),
            )),
            other => match Session::service(conf) {
                Ok(session) if other == "barbican" => Store::Barbican(Barbican::new(
                    Arc::new(session),
                    Selector::from_conf(conf, "barbican_client", "key-manager"),
                )),
                Ok(_) => {
                    tracing::warn!(
                        "[certificates] cert_manager_type {other} is unknown; cluster \
                         certificates are kept in the x509keypair table"
                    );
                    Store::Table
                }
                Err(why) => {
                    tracing::warn!(
                        "[certificates] cert_manager_type barbican needs Magnum's service \
                         user ({}); cluster certificates are kept in the x509keypair table",
                        Chain(&why)
                    );
                    Store::Table
                }
            },
        };
        CertManager {
            settings: X509Settings::from_conf(conf),
            store,
        }
    }

    pub fn with_settings(settings: X509Settings) -> CertManager {
        CertManager {
            settings,
            store: Store::Table,
        }
    }

    pub fn with_store(mut self, store: Store) -> CertManager {
        self.store = store;
        self
    }

    pub fn store_kind(&self) -> &Store {
        &self.store
    }

    /// Keep a certificate; its reference.
    pub async fn put(&self, db: &Database, k: X509KeyPair) -> Result<String, MagnumError> {
        match &self.store {
            Store::Table => {
                db.x509keypair_create(&k).await.map_err(storage)?;
                Ok(k.uuid)
            }
            Store::Local(dir) => local::put(dir, &k).await.map(|_| k.uuid),
            Store::Barbican(b) => barbican_put(b, &k).await.map_err(storage),
        }
    }

    /// A kept certificate (with its key and passphrase).
    pub async fn get(&self, db: &Database, r: &str) -> Result<X509KeyPair, MagnumError> {
        match &self.store {
            Store::Table => db
                .x509keypair_get(r)
                .await
                .map_err(storage)?
                .ok_or_else(|| MagnumError::Internal(format!("certificate {r} is missing"))),
            Store::Local(dir) => local::get(dir, r).await,
            Store::Barbican(b) => barbican_get(b, r).await.map_err(storage),
        }
    }

    /// Forget a certificate (one already gone is fine).
    pub async fn remove(&self, db: &Database, r: &str) -> Result<(), MagnumError> {
        match &self.store {
            Store::Table => db.x509keypair_destroy(r).await.map(|_| ()).map_err(storage),
            Store::Local(dir) => local::remove(dir, r).await,
            Store::Barbican(b) => match barbican_remove(b, r).await {
                Err(e) if !e.is_not_found() => Err(storage(e)),
                _ => Ok(()),
            },
        }
    }

    /// Generate a cluster's certificates (CPU only; nothing is stored):
    /// each with the cluster field that will name it.
    pub async fn make(&self, c: &Cluster) -> Result<Made, MagnumError> {
        let issuer = issuer_name(c);
        let s = self.settings.clone();
        let (ca_pw, etcd_pw, fp_pw, client_pw) =
            (passphrase(), passphrase(), passphrase(), passphrase());
        let (ca, etcd, fp, client) = tokio::task::spawn_blocking(move || {
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
            Ok::<_, X509Error>((
                (ca, ca_pw),
                (etcd, etcd_pw),
                (fp, fp_pw),
                (client, client_pw),
            ))
        })
        .await
        .map_err(|e| MagnumError::Internal(e.to_string()))?
        .map_err(x509_error)?;
        let pair = |(cert, pw): (x509::CertKey, String)| X509KeyPair {
            uuid: uuid::Uuid::new_v4().to_string(),
            certificate: Some(cert.certificate),
            private_key: Some(cert.private_key),
            private_key_passphrase: Some(pw),
            intermediates: None,
            project_id: c.project_id.clone(),
            user_id: c.user_id.clone(),
        };
        Ok(Made(vec![
            ("ca_cert_ref", pair(ca)),
            ("etcd_ca_cert_ref", pair(etcd)),
            ("front_proxy_ca_cert_ref", pair(fp)),
            ("magnum_cert_ref", pair(client)),
        ]))
    }

    /// Store what [`CertManager::make`] made, but only as far as can be
    /// undone: in the `x509keypair` table nothing is written yet (the rows
    /// come back as writes, for the transaction that records the
    /// references); in Barbican or files each certificate is stored, and
    /// what was stored is removed again if a later one fails. An error is
    /// the storage's (unreachable, refused): worth a retry.
    pub async fn keep(&self, db: &Database, made: Made) -> Result<Kept, MagnumError> {
        let mut kept = Kept::default();
        for (field, k) in made.0 {
            if let Store::Table = self.store {
                kept.refs.insert(field.into(), json!(k.uuid));
                kept.writes.push(magnum_db::Write::KeyPair(k));
                continue;
            }
            match self.put(db, k).await {
                Ok(r) => {
                    kept.refs.insert(field.into(), json!(r));
                    kept.external.push(r);
                }
                Err(e) => {
                    self.forget(db, &kept).await;
                    return Err(e);
                }
            }
        }
        Ok(kept)
    }

    /// Remove what [`CertManager::keep`] stored outside the database
    /// (its references could not be recorded).
    pub async fn forget(&self, db: &Database, kept: &Kept) {
        for r in &kept.external {
            if let Err(e) = self.remove(db, r).await {
                tracing::warn!("cannot remove unrecorded certificate {r}: {e}");
            }
        }
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
        self.get(db, r).await
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
        let s = self.settings.clone();
        let csr = csr.to_string();
        tokio::task::spawn_blocking(move || {
            x509::sign_csr(
                &csr,
                ca.certificate.as_deref().unwrap_or_default(),
                ca.private_key.as_deref().unwrap_or_default(),
                ca.private_key_passphrase.as_deref(),
                &s,
            )
        })
        .await
        .map_err(|e| MagnumError::Internal(e.to_string()))?
        .map_err(x509_error)
    }

    /// The cluster's certificates in upstream's `x509keypair` table (none
    /// when they are kept elsewhere): rows to delete in the transaction
    /// that stops naming them, so an outage between the two cannot leave
    /// them behind.
    pub fn rows_of(&self, c: &Cluster) -> Vec<String> {
        match self.store {
            Store::Table => Self::refs(c).cloned().collect(),
            _ => Vec::new(),
        }
    }

    fn refs(c: &Cluster) -> impl Iterator<Item = &String> {
        [
            &c.ca_cert_ref,
            &c.etcd_ca_cert_ref,
            &c.front_proxy_ca_cert_ref,
            &c.magnum_cert_ref,
        ]
        .into_iter()
        .flatten()
    }

    /// Remove a cluster's certificates kept outside the database, in
    /// Barbican or files (what is gone already is fine); those of the
    /// `x509keypair` table go with their cluster's row ([`Self::rows_of`]).
    pub async fn delete_external(&self, db: &Database, c: &Cluster) {
        if let Store::Table = self.store {
            return;
        }
        for r in Self::refs(c) {
            if let Err(e) = self.remove(db, r).await {
                tracing::warn!("cluster {}: cannot delete certificate {r}: {e}", c.uuid);
            }
        }
    }
}

fn storage(e: impl std::fmt::Display) -> MagnumError {
    MagnumError::Internal(format!("certificate storage: {e}"))
}

/// Barbican: secrets named as upstream names them, in one container.
async fn barbican_put(b: &Barbican, k: &X509KeyPair) -> Result<String, OsError> {
    let parts = [
        ("certificate", "Certificate", &k.certificate),
        ("private_key", "Private Key", &k.private_key),
        ("intermediates", "Intermediates", &k.intermediates),
        (
            "private_key_passphrase",
            "Private Key Passphrase",
            &k.private_key_passphrase,
        ),
    ];
    let mut made: Vec<(&str, String)> = Vec::new();
    let mut outcome = Ok(());
    for (slot, name, value) in parts {
        let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        match b.create_secret(name, value).await {
            Ok(r) => made.push((slot, r)),
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    let outcome = match outcome {
        Ok(()) => {
            b.create_container("Magnum TLS Cert", "certificate", &made)
                .await
        }
        Err(e) => Err(e),
    };
    if outcome.is_err() {
        // Leave no orphaned secrets behind.
        for (_, r) in &made {
            if let Err(e) = b.delete_secret(r).await {
                tracing::warn!("cannot delete secret {r} while rolling back: {e}");
            }
        }
    }
    outcome
}

async fn barbican_get(b: &Barbican, r: &str) -> Result<X509KeyPair, OsError> {
    let c = b.container(r).await?;
    if c["type"] != "certificate" {
        return Err(OsError::Status {
            service: "Barbican".into(),
            status: 409,
            message: format!("container {r} is not a certificate container"),
        });
    }
    let mut k = X509KeyPair {
        uuid: r.to_string(),
        certificate: None,
        private_key: None,
        private_key_passphrase: None,
        intermediates: None,
        project_id: None,
        user_id: None,
    };
    for s in c["secret_refs"].as_array().into_iter().flatten() {
        let (Some(name), Some(sr)) = (s["name"].as_str(), s["secret_ref"].as_str()) else {
            continue;
        };
        let slot = match name {
            "certificate" => &mut k.certificate,
            "private_key" => &mut k.private_key,
            "intermediates" => &mut k.intermediates,
            "private_key_passphrase" => &mut k.private_key_passphrase,
            _ => continue,
        };
        *slot = Some(b.secret_payload(sr).await?);
    }
    Ok(k)
}

async fn barbican_remove(b: &Barbican, r: &str) -> Result<(), OsError> {
    let c = b.container(r).await?;
    for s in c["secret_refs"].as_array().into_iter().flatten() {
        if let Some(sr) = s["secret_ref"].as_str() {
            match b.delete_secret(sr).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
    }
    b.delete_container(r).await
}

/// Local files, readable by Magnum's user only.
mod local {
    use std::path::{Path, PathBuf};

    use magnum_core::MagnumError;
    use magnum_db::X509KeyPair;

    const PARTS: [&str; 4] = ["crt", "key", "int", "pass"];

    fn path(dir: &Path, r: &str, ext: &str) -> Result<PathBuf, MagnumError> {
        // References are uuids we made; anything else never names a file.
        if uuid::Uuid::parse_str(r).is_err() {
            return Err(MagnumError::Internal(format!(
                "certificate reference {r} is not a uuid"
            )));
        }
        Ok(dir.join(format!("{r}.{ext}")))
    }

    fn io(e: std::io::Error) -> MagnumError {
        MagnumError::Internal(format!("certificate storage: {e}"))
    }

    pub async fn put(dir: &Path, k: &X509KeyPair) -> Result<(), MagnumError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        tracing::warn!(
            "storing certificate {} on the local filesystem; cert_manager_type local \
             is meant for testing",
            k.uuid
        );
        let dir2 = dir.to_path_buf();
        let files: Vec<(PathBuf, String)> = [
            &k.certificate,
            &k.private_key,
            &k.intermediates,
            &k.private_key_passphrase,
        ]
        .into_iter()
        .zip(PARTS)
        .filter_map(|(v, ext)| Some((v.clone().filter(|v| !v.is_empty())?, ext)))
        .map(|(v, ext)| Ok((path(dir, &k.uuid, ext)?, v)))
        .collect::<Result<_, MagnumError>>()?;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir2)?;
            for (p, v) in files {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(p)?;
                std::io::Write::write_all(&mut f, v.as_bytes())?;
            }
            Ok(())
        })
        .await
        .map_err(|e| MagnumError::Internal(e.to_string()))?
        .map_err(io)
    }

    async fn read(p: PathBuf, required: bool) -> Result<Option<String>, MagnumError> {
        match tokio::fs::read_to_string(&p).await {
            Ok(s) => Ok(Some(s)),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    pub async fn get(dir: &Path, r: &str) -> Result<X509KeyPair, MagnumError> {
        Ok(X509KeyPair {
            uuid: r.to_string(),
            certificate: read(path(dir, r, "crt")?, true).await?,
            private_key: read(path(dir, r, "key")?, true).await?,
            intermediates: read(path(dir, r, "int")?, false).await?,
            private_key_passphrase: read(path(dir, r, "pass")?, false).await?,
            project_id: None,
            user_id: None,
        })
    }

    pub async fn remove(dir: &Path, r: &str) -> Result<(), MagnumError> {
        for ext in PARTS {
            match tokio::fs::remove_file(path(dir, r, ext)?).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                _ => {}
            }
        }
        Ok(())
    }
}
