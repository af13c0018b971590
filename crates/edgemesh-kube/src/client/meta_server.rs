//! KubeEdge's metaServer over HTTPS (`kubeAPIConfig.metaServer.security`), as EdgeMesh reaches
//! it: the CA, client certificate and key of the `metaServerSecret`, the pod's service account
//! token when there is one, and `insecureSkipTLSVerify`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kube::{Client, Config};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{ClientError, build, parse_url};

const CA_KEY: &str = "kubeAPIConfig.metaServer.security.tlsCaFile";
const CERT_KEY: &str = "kubeAPIConfig.metaServer.security.tlsCertFile";
const KEY_KEY: &str = "kubeAPIConfig.metaServer.security.tlsPrivateKeyFile";
/// The token EdgeMesh sends to a metaServer that requires authorization.
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// `kubeAPIConfig.metaServer.security` when `requireAuthorization` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaServerTls {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Skip the server certificate check (the CA file is then not read).
    pub insecure_skip_tls_verify: bool,
    /// Sent as a bearer token when the file exists (the metaServer authorizes by it).
    pub token_file: PathBuf,
}

/// A client for the metaServer at `url`; with `tls`, its files are loaded and checked first so
/// that a wrong path or a broken file is an error naming the key and the file.
pub fn for_meta_server(url: &str, tls: Option<&MetaServerTls>) -> Result<Client, ClientError> {
    let mut config = Config::new(parse_url(url)?);
    if let Some(tls) = tls {
        configure(&mut config, tls)?;
    }
    build(config)
}

fn configure(config: &mut Config, tls: &MetaServerTls) -> Result<(), ClientError> {
    if tls.insecure_skip_tls_verify {
        // No roots at all: the verifier is replaced, and the platform's store is never needed.
        config.root_cert = Some(Vec::new());
        config.accept_invalid_certs = true;
        tracing::warn!(
            "kubeAPIConfig.metaServer.security.insecureSkipTLSVerify: the metaServer's certificate is not checked"
        );
        // EdgeMesh presents no client certificate here; one is presented when it loads, for
        // servers that ask for it.
        match client_identity(tls) {
            Ok(()) => set_identity(config, tls),
            Err(e) => {
                tracing::info!(error = %e, "no client certificate presented to the metaServer")
            }
        }
    } else {
        let roots = ca_certificates(&tls.ca_file)?;
        client_identity(tls)?;
        check_pairing(&roots, tls)?;
        // Named here so that a later "invalid peer certificate" points at the file to check.
        tracing::info!(
            tlsCaFile = %tls.ca_file.display(),
            tlsCertFile = %tls.cert_file.display(),
            "the metaServer's certificate is checked against tlsCaFile; the client certificate is tlsCertFile"
        );
        config.root_cert = Some(roots.into_iter().map(|c| c.to_vec()).collect());
        set_identity(config, tls);
    }
    if tls.token_file.is_file() {
        config.auth_info.token_file = Some(tls.token_file.display().to_string());
    }
    Ok(())
}

fn set_identity(config: &mut Config, tls: &MetaServerTls) {
    config.auth_info.client_certificate = Some(tls.cert_file.display().to_string());
    config.auth_info.client_key = Some(tls.key_file.display().to_string());
}

fn ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = certificates(CA_KEY, path)?;
    let mut store = rustls::RootCertStore::empty();
    for cert in &certs {
        store
            .add(cert.clone())
            .map_err(|e| file_error(CA_KEY, path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(certs)
}

/// The client certificate and key load and parse.
fn client_identity(tls: &MetaServerTls) -> Result<(), ClientError> {
    certificates(CERT_KEY, &tls.cert_file)?;
    private_key(&tls.key_file).map(drop)
}

fn certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let pem = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(key, path, format!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(key, path, "no PEM CERTIFICATE block".into()));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, ClientError> {
    let pem = read(KEY_KEY, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        file_error(
            KEY_KEY,
            path,
            format!("no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"),
        )
    })
}

/// The key belongs to the certificate (rustls checks when it can tell).
fn check_pairing(
    roots: &[CertificateDer<'static>],
    tls: &MetaServerTls,
) -> Result<(), ClientError> {
    let mut store = rustls::RootCertStore::empty();
    store.add_parsable_certificates(roots.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(CERT_KEY, &tls.cert_file)?;
    let key = private_key(&tls.key_file)?;
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Client(e.to_string()))?
        .with_root_certificates(store)
        .with_client_auth_cert(chain, key)
        .map(drop)
        .map_err(|e| {
            file_error(
                KEY_KEY,
                &tls.key_file,
                format!("does not match {CERT_KEY} {}: {e}", tls.cert_file.display()),
            )
        })
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| file_error(key, path, format!("cannot read it: {e}")))
}

fn file_error(key: &'static str, path: &Path, message: String) -> ClientError {
    ClientError::TlsFile {
        key,
        path: path.display().to_string(),
        message,
    }
}

#[cfg(test)]
mod tests;
