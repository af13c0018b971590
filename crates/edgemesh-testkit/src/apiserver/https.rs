//! HTTPS for the double, as KubeEdge's metaServer serves it when it requires authorization: a
//! server certificate, and client certificates checked against a CA (required, or checked when
//! given like the metaServer's `VerifyClientCertIfGiven`).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// Serve HTTPS with these files (for example from [`crate::tls::Certs`]).
#[derive(Debug, Clone)]
pub struct Https {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates must chain to this CA.
    pub client_ca: Option<PathBuf>,
    /// Refuse clients that present no certificate (else it is only checked when given).
    pub require_client_cert: bool,
}

/// The TLS configuration for `https`; ring is named explicitly (two rustls providers may be
/// linked, and then rustls cannot pick a default).
pub fn server_config(https: &Https) -> io::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?;
    let builder = match &https.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca)? {
                roots.add(cert).map_err(io::Error::other)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if https.require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(verifier.build().map_err(io::Error::other)?)
        }
        None => builder.with_no_client_auth(),
    };
    let key = PrivateKeyDer::from_pem_file(&https.key).map_err(|e| bad(&https.key, e))?;
    let config = builder
        .with_single_cert(certificates(&https.cert)?, key)
        .map_err(io::Error::other)?;
    Ok(Arc::new(config))
}

fn certificates(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(path, e))
}

fn bad(path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {e}", path.display()),
    )
}
