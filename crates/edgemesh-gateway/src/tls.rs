//! TLS termination for a gateway server: a rustls `ServerConfig` from the server's `tls` block
//! and the Secret its `credentialName` names.
//!
//! STUB: the interface the rest of the crate codes against; being implemented.

use std::sync::Arc;

use edgemesh_model::ingress::{ServerTls, TlsSecretSpec};

/// Why a server's TLS cannot be set up (the server is then not opened; named in the log and in
/// `/debug/routes`).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("Secret {secret}: {problem}")]
    Secret { secret: String, problem: String },
    #[error("{0}")]
    Settings(String),
}

/// A terminating server's TLS: the config and the warnings building it gave (cipher names
/// skipped, ...).
#[derive(Debug)]
pub struct Terminator {
    pub config: Arc<rustls::ServerConfig>,
    pub warnings: Vec<String>,
}

/// Builds the server config of a SIMPLE or MUTUAL server. `ca` is the `<credentialName>-cacert`
/// Secret when one exists. `alpn`: the protocols to offer (`h2`, `http/1.1`).
pub fn terminator(
    settings: &ServerTls,
    secret: &TlsSecretSpec,
    ca: Option<&TlsSecretSpec>,
    alpn: &[&[u8]],
) -> Result<Terminator, TlsError> {
    let _ = (settings, secret, ca, alpn);
    Err(TlsError::Settings(
        "TLS termination is not built yet".into(),
    ))
}
