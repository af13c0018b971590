//! The serving certificate: read from PEM files and re-read when they change (a poll of their
//! modification times, which also catches the rename-into-place that cert managers do).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use edgemesh_telemetry::{Kind, Readings, Readout};

use crate::error::HubError;

pub fn read_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, HubError> {
    let bytes = std::fs::read(path).map_err(|error| HubError::ReadFile {
        what,
        path: path.to_path_buf(),
        error,
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| bad_file(what, path, &e.to_string()))?;
    if certs.is_empty() {
        return Err(bad_file(what, path, "no PEM CERTIFICATE block"));
    }
    Ok(certs)
}

fn bad_file(what: &'static str, path: &Path, reason: &str) -> HubError {
    HubError::BadFile {
        what,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn load_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, HubError> {
    let chain = read_certs(cert, "certificate file")?;
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| bad_file("key file", key, &e.to_string()))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key_der, &provider)
        .map_err(|e| bad_file("certificate/key pair", cert, &e.to_string()))?;
    Ok(Arc::new(certified))
}

/// A certificate resolver whose certificate can be swapped while serving.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl ReloadingCert {
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<Self>, HubError> {
        let key = load_key(cert_file, key_file)?;
        Ok(Arc::new(Self {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            current: ArcSwap::new(key),
        }))
    }

    fn stamp(&self) -> Option<(SystemTime, SystemTime)> {
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        Some((modified(&self.cert_file)?, modified(&self.key_file)?))
    }

    /// Polls the files every `every`; a bad new pair is logged and the old one kept.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let mut seen = self.stamp();
        loop {
            tokio::time::sleep(every).await;
            let now = self.stamp();
            if now == seen {
                continue;
            }
            match load_key(&self.cert_file, &self.key_file) {
                Ok(key) => {
                    self.current.store(key);
                    seen = now;
                    tracing::info!(
                        file = %self.cert_file.display(),
                        "serving certificate reloaded"
                    );
                }
                Err(e) => tracing::warn!(error = %e, "keeping the previous serving certificate"),
            }
        }
    }

    /// The TLS server configuration using this resolver (HTTP/1.1 only: upgrades pass through).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, HubError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HubError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The serving certificate's end of validity, so an alert fires before clients start refusing
/// it (with `--rotate-server-certificate` the hub renews it itself; without, someone must).
impl Readout for ReloadingCert {
    fn read(&self, out: &mut Readings<'_>) -> std::fmt::Result {
        let current = self.current.load();
        let Some(not_after) = current.cert.first().and_then(|leaf| not_after_unix(leaf)) else {
            return Ok(());
        };
        out.one(
            Kind::Gauge,
            "edgemesh_hub_serving_certificate_expiry_timestamp_seconds",
            "When the serving certificate in use stops being valid, in seconds since the Unix epoch.",
            not_after as f64,
        )
    }
}

fn not_after_unix(leaf: &CertificateDer<'_>) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    Some(cert.validity().not_after.timestamp())
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}
