//! Node certificates for tests (rcgen): a cluster CA and the certificates it issues, shaped like
//! kubelet's and edgecore's (`CN=system:node:<name>`, `O=system:nodes`, client auth, ECDSA
//! P-256), valid from 2020 to 2040. Shared by the unit tests and the namespace tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    date_time_ymd,
};

/// A CA that issues node certificates.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

/// A certificate (PEM, chain) and its private key (PEM).
pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
}

fn params(cn: &str, org: Option<&str>, not_after_year: i32) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    if let Some(org) = org {
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
    }
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(not_after_year, 1, 1);
    params
}

fn key() -> KeyPair {
    KeyPair::generate().unwrap_or_else(|e| panic!("test key: {e}"))
}

impl TestCa {
    /// A self-signed root.
    pub fn new(name: &str) -> TestCa {
        let mut params = params(name, None, 2040);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = key();
        let cert = params
            .self_signed(&key)
            .unwrap_or_else(|e| panic!("test CA: {e}"));
        TestCa {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// An intermediate CA signed by this one; its `pem` holds its own certificate only.
    pub fn intermediate(&self, name: &str) -> TestCa {
        let mut params = params(name, None, 2040);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = key();
        let cert = params
            .signed_by(&key, &self.issuer)
            .unwrap_or_else(|e| panic!("test intermediate CA: {e}"));
        TestCa {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// A node certificate for `node`, as kubelet and edgecore have.
    pub fn node_cert(&self, node: &str) -> TestCert {
        self.cert(&format!("system:node:{node}"), Some("system:nodes"), 2040)
    }

    /// A client certificate with the subject and expiry year given.
    pub fn cert(&self, cn: &str, org: Option<&str>, not_after_year: i32) -> TestCert {
        let mut params = params(cn, org, not_after_year);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = key();
        let cert = params
            .signed_by(&key, &self.issuer)
            .unwrap_or_else(|e| panic!("test certificate: {e}"));
        TestCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl TestCert {
    /// Writes `<name>.crt` and `<name>.key` into `dir`: their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let (crt, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&crt, &self.cert_pem).unwrap_or_else(|e| panic!("{}: {e}", crt.display()));
        std::fs::write(&key, &self.key_pem).unwrap_or_else(|e| panic!("{}: {e}", key.display()));
        (crt, key)
    }
}

impl TestCa {
    /// Writes the CA certificate to `dir/<name>`: its path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.pem).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }
}
