//! Cluster certificates as upstream makes them
//! (`magnum/common/x509/operations.py`): RSA keys of `[x509] rsa_key_size`
//! bits (PKCS#8 PEM, encrypted when a password is given), SHA-256
//! signatures, validity from a day ago for `[x509] term_of_validity` days,
//! random 128-bit serials, and upstream's extensions: a CA has
//! `basicConstraints CA:TRUE, pathlen:0` and `keyUsage keyCertSign` (both
//! critical); a client certificate has `keyUsage digitalSignature,
//! keyEncipherment` (critical), `extendedKeyUsage clientAuth` and
//! `basicConstraints CA:FALSE` (critical).

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SerialNumber,
};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};

use crate::config::Config;

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CertKey {
    pub certificate: String,
    pub private_key: String,
}

impl std::fmt::Debug for CertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertKey")
            .field("certificate", &self.certificate)
            .field("private_key", &"****")
            .finish()
    }
}

/// Why a certificate could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X509Error {
    /// The CSR is not a PEM certificate signing request, or its signature
    /// does not hold (upstream's `InvalidCsr`).
    #[error("Received invalid csr {0}.")]
    InvalidCsr(String),
    /// The CA key could not be read (wrong password, not a key).
    #[error("invalid CA key: {0}")]
    InvalidKey(String),
    #[error("certificate generation failed: {0}")]
    Failed(String),
}

/// The `[x509]` settings.
#[derive(Debug, Clone)]
pub struct X509Settings {
    pub rsa_key_size: usize,
    pub term_of_validity_days: i64,
}

impl X509Settings {
    pub fn from_conf(conf: &Config) -> Self {
        X509Settings {
            rsa_key_size: conf
                .int("x509", "rsa_key_size")
                .unwrap_or(2048)
                .clamp(2048, 8192) as usize,
            term_of_validity_days: conf
                .int("x509", "term_of_validity")
                .unwrap_or(365 * 5)
                .max(1),
        }
    }
}

impl Default for X509Settings {
    fn default() -> Self {
        X509Settings {
            rsa_key_size: 2048,
            term_of_validity_days: 365 * 5,
        }
    }
}

fn failed(e: impl std::fmt::Display) -> X509Error {
    X509Error::Failed(e.to_string())
}

/// A new RSA key: (PKCS#8 PEM as stored, the signing key for rcgen).
fn new_key(bits: usize, password: Option<&str>) -> Result<(String, rcgen::KeyPair), X509Error> {
    let mut rng = rsa::rand_core::OsRng;
    let key = rsa::RsaPrivateKey::new(&mut rng, bits).map_err(failed)?;
    let der = key.to_pkcs8_der().map_err(failed)?;
    let signer = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types_der(der.as_bytes()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .map_err(failed)?;
    let pem = match password {
        Some(pw) => encrypt(der.as_bytes(), pw)?,
        None => key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(failed)?
            .to_string(),
    };
    Ok((pem, signer))
}

/// PKCS#8 encrypted as Python's `BestAvailableEncryption` does: PBES2
/// with PBKDF2-HMAC-SHA256 and AES-256-CBC, so upstream reads our keys.
fn encrypt(der: &[u8], password: &str) -> Result<String, X509Error> {
    let salt: [u8; 16] = rand::random();
    let iv: [u8; 16] = rand::random();
    let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(10_000, &salt, &iv)
        .map_err(failed)?;
    let info = pkcs8::PrivateKeyInfo::try_from(der).map_err(failed)?;
    let doc = info
        .encrypt_with_params(params, password.as_bytes())
        .map_err(failed)?;
    let pem = doc
        .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
        .map_err(failed)?;
    Ok(pem.to_string())
}

fn rustls_pki_types_der(der: &[u8]) -> rustls_pki_types::PrivatePkcs8KeyDer<'static> {
    rustls_pki_types::PrivatePkcs8KeyDer::from(der.to_vec())
}

/// rcgen's signing key for a stored PEM key (encrypted with `password`).
fn load_key(pem: &str, password: Option<&str>) -> Result<rcgen::KeyPair, X509Error> {
    let key = match password {
        Some(pw) => rsa::RsaPrivateKey::from_pkcs8_encrypted_pem(pem, pw.as_bytes()),
        None => rsa::RsaPrivateKey::from_pkcs8_pem(pem),
    }
    .map_err(|e| X509Error::InvalidKey(e.to_string()))?;
    let der = key
        .to_pkcs8_der()
        .map_err(|e| X509Error::InvalidKey(e.to_string()))?;
    rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types_der(der.as_bytes()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .map_err(|e| X509Error::InvalidKey(e.to_string()))
}

fn validity(params: &mut CertificateParams, s: &X509Settings) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(s.term_of_validity_days);
}

fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // a positive integer, as uuid4's int
    SerialNumber::from_slice(&bytes)
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    dn
}

fn ca_params(subject: &str, s: &X509Settings) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = name(subject, None);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    p.serial_number = Some(serial());
    validity(&mut p, s);
    p
}

/// A new self-signed CA named `subject` (its private key encrypted with
/// `password` when given).
pub fn generate_ca(
    subject: &str,
    password: Option<&str>,
    s: &X509Settings,
) -> Result<CertKey, X509Error> {
    let (pem, key) = new_key(s.rsa_key_size, password)?;
    let cert = ca_params(subject, s).self_signed(&key).map_err(failed)?;
    Ok(CertKey {
        certificate: cert.pem().trim().to_string(),
        private_key: pem,
    })
}

/// The CA as rcgen needs it to sign: its parameters (the issuer name is
/// `issuer` alone, as upstream's) with its key.
fn issuer(
    issuer_name: &str,
    ca_key: &str,
    ca_password: Option<&str>,
    s: &X509Settings,
) -> Result<(rcgen::Certificate, rcgen::KeyPair), X509Error> {
    let key = load_key(ca_key, ca_password)?;
    let cert = ca_params(issuer_name, s)
        .self_signed(&key)
        .map_err(failed)?;
    Ok((cert, key))
}

/// A client certificate for `subject` (organisation `organization`)
/// signed by the CA named `issuer_name` whose key is `ca_key`.
pub fn generate_client(
    issuer_name: &str,
    subject: &str,
    organization: Option<&str>,
    ca_key: &str,
    ca_password: Option<&str>,
    password: Option<&str>,
    s: &X509Settings,
) -> Result<CertKey, X509Error> {
    let (ca, ca_signer) = issuer(issuer_name, ca_key, ca_password, s)?;
    let (pem, key) = new_key(s.rsa_key_size, password)?;
    let mut p = CertificateParams::default();
    p.distinguished_name = name(subject, organization);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.serial_number = Some(serial());
    validity(&mut p, s);
    let cert = p.signed_by(&key, &ca, &ca_signer).map_err(failed)?;
    Ok(CertKey {
        certificate: cert.pem().trim().to_string(),
        private_key: pem,
    })
}

/// Sign a PEM CSR with the CA, keeping its subject and, as upstream's
/// validator does, only the extensions it allows: no CA certificates,
/// key usage limited to digital signature, key encipherment and
/// non-repudiation.
pub fn sign_csr(
    csr_pem: &str,
    issuer_name: &str,
    ca_key: &str,
    ca_password: Option<&str>,
    s: &X509Settings,
) -> Result<String, X509Error> {
    let shown: String = csr_pem.chars().take(80).collect();
    let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|_| X509Error::InvalidCsr(shown.clone()))?;
    let p = &mut csr.params;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages.retain(|u| {
        matches!(
            u,
            KeyUsagePurpose::DigitalSignature
                | KeyUsagePurpose::KeyEncipherment
                | KeyUsagePurpose::ContentCommitment
        )
    });
    p.custom_extensions.clear();
    p.serial_number = Some(serial());
    validity(p, s);
    let (ca, ca_signer) = issuer(issuer_name, ca_key, ca_password, s)?;
    let cert = csr.signed_by(&ca, &ca_signer).map_err(failed)?;
    Ok(cert.pem().trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("magnum-x509-{}", crate::objects::uuid_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn openssl(args: &[&str], cwd: &Path) -> (bool, String) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(cwd)
            .output()
            .expect("openssl must be installed for these tests");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn fast() -> X509Settings {
        X509Settings {
            rsa_key_size: 2048,
            term_of_validity_days: 30,
        }
    }

    #[test]
    fn ca_client_and_csr_verify_with_openssl() {
        let d = dir();
        let s = fast();
        let ca = generate_ca("c1", Some("pw"), &s).unwrap();
        assert!(ca.private_key.contains("BEGIN ENCRYPTED PRIVATE KEY"));
        assert!(
            !format!("{ca:?}").contains("PRIVATE KEY"),
            "Debug hides the key"
        );
        std::fs::write(d.join("ca.pem"), &ca.certificate).unwrap();
        let (ok, text) = openssl(&["x509", "-in", "ca.pem", "-noout", "-text"], &d);
        assert!(ok, "{text}");
        assert!(
            text.contains("Subject: CN = c1") || text.contains("Subject: CN=c1"),
            "{text}"
        );
        assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
        assert!(text.contains("Certificate Sign"), "{text}");
        assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
        assert!(text.contains("sha256WithRSAEncryption"), "{text}");
        // The encrypted key opens with its password only.
        std::fs::write(d.join("ca.key"), &ca.private_key).unwrap();
        assert!(
            openssl(
                &["pkey", "-in", "ca.key", "-passin", "pass:pw", "-noout"],
                &d
            )
            .0
        );
        assert!(
            !openssl(
                &["pkey", "-in", "ca.key", "-passin", "pass:nope", "-noout"],
                &d
            )
            .0
        );

        let client = generate_client(
            "c1",
            "admin",
            Some("system:masters"),
            &ca.private_key,
            Some("pw"),
            None,
            &s,
        )
        .unwrap();
        std::fs::write(d.join("client.pem"), &client.certificate).unwrap();
        let (ok, text) = openssl(&["verify", "-CAfile", "ca.pem", "client.pem"], &d);
        assert!(ok, "{text}");
        let (_, text) = openssl(&["x509", "-in", "client.pem", "-noout", "-text"], &d);
        assert!(text.contains("TLS Web Client Authentication"), "{text}");
        assert!(
            text.contains("Digital Signature, Key Encipherment"),
            "{text}"
        );
        assert!(text.contains("CA:FALSE"), "{text}");
        assert!(
            text.contains("O = system:masters") || text.contains("O=system:masters"),
            "{text}"
        );

        // A CSR from openssl, signed by our CA.
        let (ok, text) = openssl(
            &[
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "u.key",
                "-out",
                "u.csr",
                "-subj",
                "/CN=user/O=team",
            ],
            &d,
        );
        assert!(ok, "{text}");
        let csr = std::fs::read_to_string(d.join("u.csr")).unwrap();
        let signed = sign_csr(&csr, "c1", &ca.private_key, Some("pw"), &s).unwrap();
        std::fs::write(d.join("u.pem"), &signed).unwrap();
        let (ok, text) = openssl(&["verify", "-CAfile", "ca.pem", "u.pem"], &d);
        assert!(ok, "{text}");
        let (_, text) = openssl(
            &[
                "x509", "-in", "u.pem", "-noout", "-subject", "-issuer", "-dates",
            ],
            &d,
        );
        assert!(
            text.contains("CN = user") || text.contains("CN=user"),
            "{text}"
        );

        // Not a CSR; a CSR whose signature does not match its key.
        assert!(matches!(
            sign_csr("hello", "c1", &ca.private_key, Some("pw"), &s),
            Err(X509Error::InvalidCsr(_))
        ));
        let (ok, text) = openssl(
            &["req", "-in", "u.csr", "-outform", "DER", "-out", "u.der"],
            &d,
        );
        assert!(ok, "{text}");
        let mut der = std::fs::read(d.join("u.der")).unwrap();
        let n = der.len();
        der[n - 10] ^= 0xff; // inside the signature
        std::fs::write(d.join("bad.der"), &der).unwrap();
        let (ok, text) = openssl(
            &["req", "-inform", "DER", "-in", "bad.der", "-out", "bad.csr"],
            &d,
        );
        assert!(ok, "{text}");
        let bad = std::fs::read_to_string(d.join("bad.csr")).unwrap();
        assert!(matches!(
            sign_csr(&bad, "c1", &ca.private_key, Some("pw"), &s),
            Err(X509Error::InvalidCsr(_))
        ));
        // A wrong CA password is refused.
        assert!(matches!(
            sign_csr(&csr, "c1", &ca.private_key, Some("x"), &s),
            Err(X509Error::InvalidKey(_))
        ));
        std::fs::remove_dir_all(d).ok();
    }
}

#[cfg(test)]
mod upstream_reads_our_keys {
    /// Upstream (Python cryptography, from the peers virtualenv when
    /// present) decrypts our encrypted keys with the password.
    #[test]
    fn python_cryptography_loads_an_encrypted_key() {
        let venv = match std::env::var_os("MAGNUM_PEER_VENV") {
            Some(v) => std::path::PathBuf::from(v),
            None => {
                let script =
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/peers.sh");
                let out = std::process::Command::new("bash")
                    .arg(script)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "scripts/peers.sh failed");
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                std::path::PathBuf::from(text.lines().last().unwrap_or_default().trim())
            }
        };
        let ca = super::generate_ca("c1", Some("pw"), &super::X509Settings::default()).unwrap();
        let out = std::process::Command::new(std::path::Path::new(&venv).join("bin/python"))
            .args([
                "-c",
                "import sys; from cryptography.hazmat.primitives import serialization as s; \
                 k = s.load_pem_private_key(sys.argv[1].encode(), password=b'pw'); print(k.key_size)",
                &ca.private_key,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2048");
    }
}
