//! Cluster certificates as upstream makes them
//! (`magnum/common/x509/operations.py`): RSA keys of `[x509] rsa_key_size`
//! bits (PKCS#8 PEM, encrypted when a password is given), SHA-256
//! signatures, validity from a day ago for `[x509] term_of_validity` days,
//! random 128-bit serials, and upstream's extensions: a CA has
//! `basicConstraints CA:TRUE, pathlen:0` and `keyUsage keyCertSign` (both
//! critical); a client certificate has `keyUsage digitalSignature,
//! keyEncipherment` (critical), `extendedKeyUsage clientAuth` and
//! `basicConstraints CA:FALSE` (critical).

use crate::config::opts;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose, SerialNumber,
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
    /// A CSR asks for a critical extension or key usage the `[x509]`
    /// settings do not allow (upstream's `CertificateValidationError`).
    #[error("Extension '{0}' not allowed")]
    NotAllowed(String),
    #[error("certificate generation failed: {0}")]
    Failed(String),
}

/// The `[x509]` settings.
#[derive(Debug, Clone)]
pub struct X509Settings {
    pub rsa_key_size: usize,
    pub term_of_validity_days: i64,
    /// Extensions a CSR may carry into its certificate, by their short
    /// names (`keyUsage`, `subjectAltName`, …).
    pub allowed_extensions: Vec<String>,
    /// Key usages a CSR may ask for (`Digital Signature`, …).
    pub allowed_key_usage: Vec<String>,
    /// Whether a signed certificate may be a CA.
    pub allow_ca: bool,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

const DEFAULT_EXTENSIONS: [&str; 5] = [
    "keyUsage",
    "extendedKeyUsage",
    "subjectAltName",
    "basicConstraints",
    "subjectKeyIdentifier",
];
const DEFAULT_KEY_USAGE: [&str; 3] = ["Digital Signature", "Key Encipherment", "Non Repudiation"];

impl X509Settings {
    pub fn from_conf(conf: &Config) -> Self {
        X509Settings {
            rsa_key_size: conf
                .get(opts::x509::RSA_KEY_SIZE)
                .unwrap_or(2048)
                .clamp(2048, 8192) as usize,
            term_of_validity_days: conf
                .get(opts::x509::TERM_OF_VALIDITY)
                .unwrap_or(365 * 5)
                .max(1),
            allowed_extensions: conf.get(opts::x509::ALLOWED_EXTENSIONS),
            allowed_key_usage: conf.get(opts::x509::ALLOWED_KEY_USAGE),
            allow_ca: conf.get(opts::x509::ALLOW_CA),
        }
    }
}

impl Default for X509Settings {
    fn default() -> Self {
        X509Settings {
            rsa_key_size: 2048,
            term_of_validity_days: 365 * 5,
            allowed_extensions: strings(&DEFAULT_EXTENSIONS),
            allowed_key_usage: strings(&DEFAULT_KEY_USAGE),
            allow_ca: false,
        }
    }
}

fn failed(e: impl std::fmt::Display) -> X509Error {
    X509Error::Failed(e.to_string())
}

#[cfg(feature = "test-key-pool")]
mod test_keys;

/// A new RSA private key; in a test build (feature `test-key-pool`), one
/// made from the test key pool's primes.
fn fresh_key(bits: usize) -> Result<rsa::RsaPrivateKey, X509Error> {
    #[cfg(feature = "test-key-pool")]
    if let Some(key) = test_keys::take(bits) {
        return Ok(key);
    }
    let mut rng = rsa::rand_core::OsRng;
    rsa::RsaPrivateKey::new(&mut rng, bits).map_err(failed)
}

/// A new RSA key: (PKCS#8 PEM as stored, the signing key for rcgen).
fn new_key(bits: usize, password: Option<&str>) -> Result<(String, rcgen::KeyPair), X509Error> {
    let key = fresh_key(bits)?;
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

/// Sign a PEM CSR with the CA (its certificate and key), as upstream's
/// `sign` does: the CSR's subject and public key unchanged, issuer the
/// CA's subject, SHA-256 with RSA, validity from a day ago for `[x509]
/// term_of_validity` days, a random serial, a subject key identifier, and
/// the CSR's requested extensions filtered as upstream's validator
/// filters them (see [`filter_extensions`]).
pub fn sign_csr(
    csr_pem: &str,
    ca_cert_pem: &str,
    ca_key: &str,
    ca_password: Option<&str>,
    s: &X509Settings,
) -> Result<String, X509Error> {
    use rsa::signature::{SignatureEncoding, Signer};
    use x509_cert::der::{Decode, DecodePem, Encode, EncodePem};

    let shown: String = csr_pem.chars().take(80).collect();
    let invalid = || X509Error::InvalidCsr(shown.clone());
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(csr_pem.trim().as_bytes()).map_err(|_| invalid())?;
    if pem.label != "CERTIFICATE REQUEST" && pem.label != "NEW CERTIFICATE REQUEST" {
        return Err(invalid());
    }
    // The CSR must be signed by the key it carries.
    let (_, parsed) =
        <x509_parser::certification_request::X509CertificationRequest as x509_parser::prelude::FromDer<_>>::from_der(&pem.contents)
            .map_err(|_| invalid())?;
    parsed.verify_signature().map_err(|_| invalid())?;
    let req = x509_cert::request::CertReq::from_der(&pem.contents).map_err(|_| invalid())?;

    let ca = x509_cert::Certificate::from_pem(ca_cert_pem.trim().as_bytes())
        .map_err(|e| X509Error::InvalidKey(format!("CA certificate: {e}")))?;
    let key = match ca_password {
        Some(pw) => rsa::RsaPrivateKey::from_pkcs8_encrypted_pem(ca_key, pw.as_bytes()),
        None => rsa::RsaPrivateKey::from_pkcs8_pem(ca_key),
    }
    .map_err(|e| X509Error::InvalidKey(e.to_string()))?;

    let mut extensions = filter_extensions(&requested_extensions(&req)?, s)?;
    extensions.push(subject_key_identifier(&req.info.public_key)?);

    let sha256_rsa = x509_cert::spki::AlgorithmIdentifierOwned {
        oid: x509_cert::der::oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
        parameters: Some(x509_cert::der::asn1::Null.into()),
    };
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    let now = std::time::SystemTime::now();
    let day = std::time::Duration::from_secs(86_400);
    let term = day * u32::try_from(s.term_of_validity_days).unwrap_or(u32::MAX / 86_400);
    let tbs = x509_cert::TbsCertificate {
        version: x509_cert::Version::V3,
        serial_number: x509_cert::serial_number::SerialNumber::new(&serial).map_err(failed)?,
        signature: sha256_rsa.clone(),
        issuer: ca.tbs_certificate.subject.clone(),
        validity: x509_cert::time::Validity {
            not_before: time_of(now - day)?,
            not_after: time_of(now + term)?,
        },
        subject: req.info.subject.clone(),
        subject_public_key_info: req.info.public_key.clone(),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key);
    let signature = signer.sign(&tbs.to_der().map_err(failed)?).to_vec();
    let cert = x509_cert::Certificate {
        tbs_certificate: tbs,
        signature_algorithm: sha256_rsa,
        signature: x509_cert::der::asn1::BitString::from_bytes(&signature).map_err(failed)?,
    };
    let pem = cert
        .to_pem(x509_cert::der::pem::LineEnding::LF)
        .map_err(failed)?;
    Ok(pem.trim().to_string())
}

fn time_of(t: std::time::SystemTime) -> Result<x509_cert::time::Time, X509Error> {
    // UTCTime up to 2049, GeneralizedTime after (RFC 5280).
    let dt = x509_cert::der::DateTime::from_system_time(t).map_err(failed)?;
    if dt.year() < 2050 {
        Ok(x509_cert::time::Time::UtcTime(
            x509_cert::der::asn1::UtcTime::from_date_time(dt).map_err(failed)?,
        ))
    } else {
        Ok(x509_cert::time::Time::GeneralTime(
            x509_cert::der::asn1::GeneralizedTime::from_date_time(dt),
        ))
    }
}

/// The extensions a CSR requests (PKCS#9 extensionRequest).
fn requested_extensions(
    req: &x509_cert::request::CertReq,
) -> Result<Vec<x509_cert::ext::Extension>, X509Error> {
    const EXTENSION_REQUEST: x509_cert::der::oid::ObjectIdentifier =
        x509_cert::der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14");
    let mut out = Vec::new();
    for attr in req.info.attributes.iter() {
        if attr.oid != EXTENSION_REQUEST {
            continue;
        }
        for v in attr.values.iter() {
            let exts: Vec<x509_cert::ext::Extension> = v
                .decode_as()
                .map_err(|_| X509Error::InvalidCsr("unreadable extension request".into()))?;
            out.extend(exts);
        }
    }
    Ok(out)
}

/// The short name cryptography gives an extension (what `[x509]
/// allowed_extensions` lists).
fn extension_name(oid: &x509_cert::der::oid::ObjectIdentifier) -> String {
    let name = match oid.to_string().as_str() {
        "2.5.29.9" => "subjectDirectoryAttributes",
        "2.5.29.14" => "subjectKeyIdentifier",
        "2.5.29.15" => "keyUsage",
        "2.5.29.17" => "subjectAltName",
        "2.5.29.18" => "issuerAltName",
        "2.5.29.19" => "basicConstraints",
        "2.5.29.20" => "cRLNumber",
        "2.5.29.30" => "nameConstraints",
        "2.5.29.31" => "cRLDistributionPoints",
        "2.5.29.32" => "certificatePolicies",
        "2.5.29.35" => "authorityKeyIdentifier",
        "2.5.29.36" => "policyConstraints",
        "2.5.29.37" => "extendedKeyUsage",
        "2.5.29.46" => "freshestCRL",
        "2.5.29.54" => "inhibitAnyPolicy",
        "1.3.6.1.5.5.7.1.1" => "authorityInfoAccess",
        "1.3.6.1.5.5.7.1.11" => "subjectInfoAccess",
        "1.3.6.1.5.5.7.1.24" => "TLSFeature",
        "1.3.6.1.5.5.7.48.1.5" => "OCSPNoCheck",
        "1.3.6.1.4.1.11129.2.4.2" => "signedCertificateTimestampList",
        other => return other.to_string(),
    };
    name.to_string()
}

/// Key usages in bit order, with the names `[x509] allowed_key_usage` uses.
const KEY_USAGES: [(&str, x509_cert::ext::pkix::KeyUsages); 9] = {
    use x509_cert::ext::pkix::KeyUsages as K;
    [
        ("Digital Signature", K::DigitalSignature),
        ("Non Repudiation", K::NonRepudiation),
        ("Key Encipherment", K::KeyEncipherment),
        ("Data Encipherment", K::DataEncipherment),
        ("Key Agreement", K::KeyAgreement),
        ("Certificate Sign", K::KeyCertSign),
        ("CRL Sign", K::CRLSign),
        ("Encipher Only", K::EncipherOnly),
        ("Decipher Only", K::DecipherOnly),
    ]
};

/// Upstream's validator: extensions not in `allowed_extensions` are
/// dropped, or refused when critical; key usages not allowed (CA usages
/// never, unless `allow_ca`) likewise; a CA basic constraint without
/// `allow_ca` becomes `CA:FALSE`, or is refused when critical. The CSR's
/// own subject key identifier gives way to the one computed here.
pub fn filter_extensions(
    requested: &[x509_cert::ext::Extension],
    s: &X509Settings,
) -> Result<Vec<x509_cert::ext::Extension>, X509Error> {
    use x509_cert::der::{Decode, Encode};
    use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};

    let mut out = Vec::new();
    for ext in requested {
        let name = extension_name(&ext.extn_id);
        if !s.allowed_extensions.contains(&name) {
            if ext.critical {
                return Err(X509Error::NotAllowed(name));
            }
            continue;
        }
        match name.as_str() {
            "subjectKeyIdentifier" => continue,
            "keyUsage" => {
                let ku = KeyUsage::from_der(ext.extn_value.as_bytes())
                    .map_err(|_| X509Error::InvalidCsr("unreadable keyUsage".into()))?;
                let mut kept =
                    x509_cert::der::flagset::FlagSet::<x509_cert::ext::pkix::KeyUsages>::default();
                for (usage, flag) in KEY_USAGES {
                    if !ku.0.contains(flag) {
                        continue;
                    }
                    let ca_usage = matches!(usage, "Certificate Sign" | "CRL Sign");
                    let allowed =
                        s.allowed_key_usage.iter().any(|a| a == usage) && (s.allow_ca || !ca_usage);
                    if allowed {
                        kept |= flag;
                    } else if ext.critical {
                        return Err(X509Error::NotAllowed(name));
                    }
                }
                out.push(rebuilt(ext, ext.critical, KeyUsage(kept).to_der())?);
            }
            "basicConstraints" => {
                let bc = BasicConstraints::from_der(ext.extn_value.as_bytes())
                    .map_err(|_| X509Error::InvalidCsr("unreadable basicConstraints".into()))?;
                if bc.ca && !s.allow_ca {
                    if ext.critical {
                        return Err(X509Error::NotAllowed(name));
                    }
                    let no_ca = BasicConstraints {
                        ca: false,
                        path_len_constraint: None,
                    };
                    out.push(rebuilt(ext, false, no_ca.to_der())?);
                } else {
                    out.push(ext.clone());
                }
            }
            _ => out.push(ext.clone()),
        }
    }
    Ok(out)
}

fn rebuilt(
    ext: &x509_cert::ext::Extension,
    critical: bool,
    value: Result<Vec<u8>, x509_cert::der::Error>,
) -> Result<x509_cert::ext::Extension, X509Error> {
    Ok(x509_cert::ext::Extension {
        extn_id: ext.extn_id,
        critical,
        extn_value: x509_cert::der::asn1::OctetString::new(value.map_err(failed)?)
            .map_err(failed)?,
    })
}

/// RFC 5280's subject key identifier (SHA-1 of the public key bits), as
/// cryptography's `SubjectKeyIdentifier.from_public_key`.
fn subject_key_identifier(
    spki: &x509_cert::spki::SubjectPublicKeyInfoOwned,
) -> Result<x509_cert::ext::Extension, X509Error> {
    use x509_cert::der::Encode;
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        spki.subject_public_key.raw_bytes(),
    );
    let ski = x509_cert::ext::pkix::SubjectKeyIdentifier(
        x509_cert::der::asn1::OctetString::new(digest.as_ref()).map_err(failed)?,
    );
    Ok(x509_cert::ext::Extension {
        extn_id: x509_cert::der::oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
        critical: false,
        extn_value: x509_cert::der::asn1::OctetString::new(ski.to_der().map_err(failed)?)
            .map_err(failed)?,
    })
}

#[cfg(test)]
mod tests;

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
