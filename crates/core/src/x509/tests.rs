//! Keys, CAs and signed certificates, checked with openssl where it reads them.

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
        ..Default::default()
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
    let signed = sign_csr(&csr, &ca.certificate, &ca.private_key, Some("pw"), &s).unwrap();
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
        sign_csr("hello", &ca.certificate, &ca.private_key, Some("pw"), &s),
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
        sign_csr(&bad, &ca.certificate, &ca.private_key, Some("pw"), &s),
        Err(X509Error::InvalidCsr(_))
    ));
    // A wrong CA password is refused.
    assert!(matches!(
        sign_csr(&csr, &ca.certificate, &ca.private_key, Some("x"), &s),
        Err(X509Error::InvalidKey(_))
    ));
    std::fs::remove_dir_all(d).ok();
}

/// A CSR made by openssl with `extensions` (openssl `-addext` lines).
fn csr_with(d: &Path, name: &str, subj: &str, extensions: &[&str]) -> String {
    let mut args = vec![
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "k.pem", "-out", name, "-subj",
        subj,
    ];
    for e in extensions {
        args.push("-addext");
        args.push(e);
    }
    let (ok, text) = openssl(&args, d);
    assert!(ok, "{text}");
    std::fs::read_to_string(d.join(name)).unwrap()
}

/// Upstream's validator rules, checked on what openssl reads back.
#[test]
fn csr_extensions_filtered_as_upstream() {
    let d = dir();
    let s = fast();
    let ca = generate_ca("c1", None, &s).unwrap();
    std::fs::write(d.join("ca.pem"), &ca.certificate).unwrap();
    let sign =
        |csr: &str, s: &X509Settings| sign_csr(csr, &ca.certificate, &ca.private_key, None, s);
    let text_of = |pem: &str| {
        std::fs::write(d.join("out.pem"), pem).unwrap();
        let (ok, text) = openssl(&["x509", "-in", "out.pem", "-noout", "-text"], &d);
        assert!(ok, "{text}");
        let (ok, verify) = openssl(&["verify", "-CAfile", "ca.pem", "out.pem"], &d);
        assert!(ok, "{verify}");
        text
    };

    // Kubernetes-style: several groups, SANs, usages; all kept as asked.
    let csr = csr_with(
        &d,
        "k8s.csr",
        "/O=system:nodes/O=team-a/CN=system:node:n1",
        &[
            "subjectAltName=DNS:n1.example,IP:10.0.0.5",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage=clientAuth,serverAuth",
            "basicConstraints=critical,CA:FALSE",
        ],
    );
    let text = text_of(&sign(&csr, &s).unwrap());
    assert!(
        text.contains("O = system:nodes, O = team-a, CN = system:node:n1"),
        "{text}"
    );
    assert!(text.contains("Issuer: CN = c1"), "{text}");
    assert!(
        text.contains("DNS:n1.example, IP Address:10.0.0.5"),
        "{text}"
    );
    assert!(
        text.contains("Digital Signature, Key Encipherment"),
        "{text}"
    );
    assert!(
        text.contains("TLS Web Client Authentication, TLS Web Server Authentication"),
        "{text}"
    );
    assert!(text.contains("X509v3 Subject Key Identifier"), "{text}");
    assert!(text.contains("sha256WithRSAEncryption"), "{text}");

    // A non-critical CA request becomes CA:FALSE; non-critical CA key
    // usages are dropped; a disallowed non-critical extension too.
    let csr = csr_with(
        &d,
        "ca.csr",
        "/CN=sneaky",
        &[
            "basicConstraints=CA:TRUE",
            "keyUsage=digitalSignature,keyCertSign,cRLSign",
            "issuerAltName=DNS:x.example",
        ],
    );
    let text = text_of(&sign(&csr, &s).unwrap());
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(!text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("Digital Signature"), "{text}");
    assert!(!text.contains("Certificate Sign"), "{text}");
    assert!(!text.contains("Issuer Alternative Name"), "{text}");

    // Critical ones are refused, named.
    for (ext, name) in [
        ("basicConstraints=critical,CA:TRUE", "basicConstraints"),
        ("keyUsage=critical,keyCertSign", "keyUsage"),
        ("keyUsage=critical,dataEncipherment", "keyUsage"),
        ("issuerAltName=critical,DNS:x.example", "issuerAltName"),
    ] {
        let csr = csr_with(&d, "bad.csr", "/CN=bad", &[ext]);
        assert_eq!(
            sign(&csr, &s),
            Err(X509Error::NotAllowed(name.into())),
            "{ext}"
        );
    }
    assert_eq!(
        X509Error::NotAllowed("keyUsage".into()).to_string(),
        "Extension 'keyUsage' not allowed"
    );

    // allow_ca lets a CA through; allowed_key_usage narrows usages.
    let open = X509Settings {
        allow_ca: true,
        allowed_key_usage: vec!["Digital Signature".into(), "Certificate Sign".into()],
        ..fast()
    };
    let csr = csr_with(
        &d,
        "ca2.csr",
        "/CN=sub",
        &[
            "basicConstraints=critical,CA:TRUE",
            "keyUsage=critical,keyCertSign",
        ],
    );
    let text = text_of(&sign(&csr, &open).unwrap());
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("Certificate Sign"), "{text}");
    let csr = csr_with(
        &d,
        "ke.csr",
        "/CN=ke",
        &["keyUsage=critical,keyEncipherment"],
    );
    assert_eq!(
        sign(&csr, &open),
        Err(X509Error::NotAllowed("keyUsage".into()))
    );
    // Extensions outside allowed_extensions are dropped (not critical).
    let narrow = X509Settings {
        allowed_extensions: vec!["keyUsage".into()],
        ..fast()
    };
    let csr = csr_with(&d, "san.csr", "/CN=san", &["subjectAltName=DNS:a.example"]);
    let text = text_of(&sign(&csr, &narrow).unwrap());
    assert!(!text.contains("a.example"), "{text}");
    std::fs::remove_dir_all(d).ok();
}
