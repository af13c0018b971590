//! TLS termination for a gateway server: a rustls `ServerConfig` from the server's `tls` block
//! and the Secret its `credentialName` names.

use std::sync::Arc;

use edgemesh_model::ingress::{ServerTls, TlsMode, TlsSecretSpec, TlsVersion};
// aws-lc-rs, not ring: a full handshake is one RSA signature with the usual RSA-2048
// certificates, and ring's took the gateway to half nginx's handshakes per second
// (docs/benchmarks.md, "Gateway"). The binary links aws-lc-rs already (QUIC).
use rustls::crypto::aws_lc_rs as crypto;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    CertificateError, DistinguishedName, InconsistentKeys, RootCertStore, SupportedCipherSuite,
    SupportedProtocolVersion,
};

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
    if settings.mode == TlsMode::Passthrough {
        return Err(TlsError::Settings(
            "a PASSTHROUGH server is not terminated".into(),
        ));
    }
    let mut warnings = Vec::new();
    let versions = versions(settings, &mut warnings)?;
    let mut provider = crypto::default_provider();
    provider.cipher_suites = cipher_suites(&settings.cipher_suites, &versions, &mut warnings)?;
    let provider = Arc::new(provider);
    let certified = certified_key(secret, &provider)?;
    check_tls12_suites(&provider, &versions, &certified, &mut warnings)?;
    let verifier = match settings.mode {
        TlsMode::Mutual => Some(client_verifier(
            secret,
            ca,
            &certified,
            &provider,
            &mut warnings,
        )?),
        TlsMode::Simple | TlsMode::Passthrough => None,
    };
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Settings(format!("TLS versions and cipher suites: {e}")))?;
    let builder = match verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Terminator {
        config: Arc::new(config),
        warnings,
    })
}

/// The rustls versions in `[min, max]` (rustls has only TLS 1.2 and 1.3).
fn versions(
    settings: &ServerTls,
    warnings: &mut Vec<String>,
) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    let min = settings.min_version.unwrap_or(TlsVersion::V1_2);
    let max = settings.max_version.unwrap_or(TlsVersion::V1_3);
    if min > max {
        return Err(TlsError::Settings(format!(
            "minProtocolVersion {min:?} is above maxProtocolVersion {max:?}"
        )));
    }
    if max < TlsVersion::V1_2 {
        return Err(TlsError::Settings(format!(
            "maxProtocolVersion {max:?}: TLS versions below 1.2 are not supported"
        )));
    }
    if min < TlsVersion::V1_2 {
        warnings.push(format!(
            "minProtocolVersion {min:?} is not supported (rustls has TLS 1.2 and 1.3 only); raised to TLSV1_2"
        ));
    }
    let mut versions = Vec::new();
    if min <= TlsVersion::V1_2 {
        versions.push(&rustls::version::TLS12);
    }
    if max >= TlsVersion::V1_3 {
        versions.push(&rustls::version::TLS13);
    }
    Ok(versions)
}

/// `cipherSuites` as rustls suites. As in Go (and Envoy), the list restricts TLS 1.2 only: the
/// TLS 1.3 suites stay enabled whenever 1.3 is.
fn cipher_suites(
    names: &[String],
    versions: &[&'static SupportedProtocolVersion],
    warnings: &mut Vec<String>,
) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    let defaults = crypto::DEFAULT_CIPHER_SUITES;
    if names.is_empty() {
        return Ok(defaults.to_vec());
    }
    let allows = |suite: &SupportedCipherSuite| versions.contains(&suite.version());
    let mut listed: Vec<SupportedCipherSuite> = Vec::new();
    for name in names {
        match suite_named(name) {
            Ok(suite) if !listed.contains(&suite) => listed.push(suite),
            Ok(_) => {}
            Err(why) => warnings.push(format!(
                "cipher suite {name} is not supported ({why}); skipped"
            )),
        }
    }
    if !listed.iter().any(allows) {
        return Err(TlsError::Settings(format!(
            "cipherSuites: none of {} is usable with the allowed TLS versions",
            names.join(", ")
        )));
    }
    let is_tls13 = |suite: &SupportedCipherSuite| suite.version() == &rustls::version::TLS13;
    let tls13 = defaults.iter().copied().filter(is_tls13);
    let tls12 = listed.into_iter().filter(|suite| !is_tls13(suite));
    Ok(tls13.chain(tls12).filter(allows).collect())
}

/// TLS 1.2 suites name the certificate's key type (`ECDHE_RSA`, `ECDHE_ECDSA`): a list of only
/// the other kind leaves TLS 1.2 clients nothing to agree on. An error when 1.2 is the only
/// version, else a warning.
fn check_tls12_suites(
    provider: &CryptoProvider,
    versions: &[&'static SupportedProtocolVersion],
    certified: &CertifiedKey,
    warnings: &mut Vec<String>,
) -> Result<(), TlsError> {
    if !versions.contains(&&rustls::version::TLS12) {
        return Ok(());
    }
    let algorithm = certified.key.algorithm();
    let usable = provider.cipher_suites.iter().any(|suite| {
        suite.version() == &rustls::version::TLS12
            && suite.usable_for_signature_algorithm(algorithm)
    });
    if usable {
        return Ok(());
    }
    let problem =
        format!("no TLS 1.2 cipher suite of cipherSuites fits the certificate's {algorithm:?} key");
    if versions.contains(&&rustls::version::TLS13) {
        warnings.push(format!("{problem}: TLS 1.2 clients cannot connect"));
        Ok(())
    } else {
        Err(TlsError::Settings(problem))
    }
}

/// The suite of an IANA/Go name (legacy CHACHA20 spelling without `_SHA256` too) or an OpenSSL
/// name; `Err` says why rustls has none.
fn suite_named(name: &str) -> Result<SupportedCipherSuite, &'static str> {
    use crypto::cipher_suite as cs;
    let upper = name.trim().to_ascii_uppercase();
    Ok(match upper.as_str() {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" | "ECDHE-ECDSA-AES128-GCM-SHA256" => {
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        }
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" | "ECDHE-ECDSA-AES256-GCM-SHA384" => {
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" | "ECDHE-RSA-AES128-GCM-SHA256" => {
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" | "ECDHE-RSA-AES256-GCM-SHA384" => {
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        }
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"
        | "ECDHE-ECDSA-CHACHA20-POLY1305" => cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
        | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"
        | "ECDHE-RSA-CHACHA20-POLY1305" => cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        "TLS_AES_128_GCM_SHA256" => cs::TLS13_AES_128_GCM_SHA256,
        "TLS_AES_256_GCM_SHA384" => cs::TLS13_AES_256_GCM_SHA384,
        "TLS_CHACHA20_POLY1305_SHA256" => cs::TLS13_CHACHA20_POLY1305_SHA256,
        _ => return Err(why_unsupported(&upper)),
    })
}

fn why_unsupported(upper: &str) -> &'static str {
    if upper.contains("RC4") {
        "rustls has no RC4 suites"
    } else if upper.contains("3DES") || upper.contains("DES-CBC3") {
        "rustls has no 3DES suites"
    } else if upper.contains("CBC") || is_openssl_cbc(upper) {
        "rustls has no CBC suites"
    } else if upper.starts_with("TLS_RSA_") || upper.starts_with("AES") {
        "rustls has no RSA key exchange suites"
    } else {
        "unknown cipher suite name"
    }
}

/// OpenSSL names a CBC suite without saying so: `ECDHE-RSA-AES128-SHA`, `AES256-SHA256`.
fn is_openssl_cbc(upper: &str) -> bool {
    upper.contains("AES") && !upper.contains("GCM") && !upper.starts_with("TLS_")
}

fn secret_error(secret: &TlsSecretSpec, problem: impl Into<String>) -> TlsError {
    TlsError::Secret {
        secret: secret.key.to_string(),
        problem: problem.into(),
    }
}

/// The PEM certificates of one of a Secret's entries (`field`: `tls.crt`, `ca.crt`).
fn certificates(
    secret: &TlsSecretSpec,
    field: &str,
    pem: Option<&[u8]>,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = pem.ok_or_else(|| secret_error(secret, format!("no {field}")))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| secret_error(secret, format!("{field} is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(secret_error(
            secret,
            format!("{field} holds no PEM CERTIFICATE block"),
        ));
    }
    Ok(certs)
}

/// The Secret's certificate chain with its key, checked to belong together.
fn certified_key(
    secret: &TlsSecretSpec,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = certificates(secret, "tls.crt", secret.cert_pem.as_deref())?;
    let key_pem = secret
        .key_pem
        .as_deref()
        .ok_or_else(|| secret_error(secret, "no tls.key"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        secret_error(
            secret,
            format!("tls.key is not a valid PEM private key: {e}"),
        )
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
            secret_error(secret, "tls.key does not match the certificate in tls.crt")
        }
        e => secret_error(secret, format!("tls.crt/tls.key unusable: {e}")),
    })
}

/// MUTUAL's client certificate check: against the CA (the `-cacert` Secret's `ca.crt`, else the
/// Secret's own), or without any CA pinned to the Secret's own certificate.
fn client_verifier(
    secret: &TlsSecretSpec,
    ca: Option<&TlsSecretSpec>,
    certified: &CertifiedKey,
    provider: &Arc<CryptoProvider>,
    warnings: &mut Vec<String>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let owner = [ca, Some(secret)]
        .into_iter()
        .flatten()
        .find(|s| s.ca_pem.is_some());
    let Some(owner) = owner else {
        warnings.push(
            "MUTUAL without ca.crt: only the Secret's own certificate is accepted as a client certificate"
                .into(),
        );
        let leaf = certified
            .end_entity_cert()
            .map_err(|e| secret_error(secret, format!("tls.crt: {e}")))?;
        return Ok(Arc::new(PinnedClientCert {
            cert: leaf.clone().into_owned(),
            algorithms: provider.signature_verification_algorithms,
        }));
    };
    let mut roots = RootCertStore::empty();
    for cert in certificates(owner, "ca.crt", owner.ca_pem.as_deref())? {
        roots
            .add(cert)
            .map_err(|e| secret_error(owner, format!("ca.crt: {e}")))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|e: VerifierBuilderError| secret_error(owner, format!("ca.crt: {e}")))
}

/// The handshake-signature methods of a rustls certificate verifier, client or server side
/// (their traits declare the same three): each checks with `rustls::crypto`'s function of the
/// same name against the algorithms in `self.$algorithms` (a [`WebPkiSupportedAlgorithms`]).
/// A macro because only the bodies could be shared otherwise, not the trait methods around them.
macro_rules! signature_checks {
    ($algorithms:tt) => {
        signature_checks!(@each $algorithms: verify_tls12_signature, verify_tls13_signature);

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.$algorithms.supported_schemes()
        }
    };
    (@each $algorithms:tt: $($check:ident),+) => {
        $(
            fn $check(
                &self,
                message: &[u8],
                cert: &rustls::pki_types::CertificateDer<'_>,
                dss: &rustls::DigitallySignedStruct,
            ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
                rustls::crypto::$check(message, cert, dss, &self.$algorithms)
            }
        )+
    };
}

/// Accepts exactly one client certificate: the Secret's own. This is what MUTUAL without a CA
/// means in EdgeMesh's example (a `kubectl create secret tls` of a self-signed pair that curl
/// then presents too). webpki cannot be used here: a self-signed openssl certificate usually
/// says `CA:TRUE`, which webpki refuses as an end entity. Validity dates are not checked: the
/// certificate is the one the server itself presents.
#[derive(Debug)]
struct PinnedClientCert {
    cert: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hint: clients then send the certificate they have.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ))
        }
    }

    signature_checks!(algorithms);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use edgemesh_model::ObjectKey;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A certificate and its key, as PEM.
    struct Pair {
        cert: String,
        key: String,
    }

    fn self_signed(name: &str) -> (Pair, CertificateParams, KeyPair) {
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        // What `openssl req -x509` writes: a self-signed certificate that says CA:TRUE.
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let pair = Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        };
        (pair, params, key)
    }

    fn signed_by(name: &str, ca: &Issuer<'_, KeyPair>) -> Pair {
        let params = CertificateParams::new(vec![name.to_string()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, ca).unwrap();
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn secret(name: &str, pair: Option<&Pair>, ca: Option<&str>) -> TlsSecretSpec {
        let bytes = |s: &str| Some(Arc::from(s.as_bytes()));
        TlsSecretSpec {
            key: ObjectKey::new("istio-system", name),
            cert_pem: pair.and_then(|p| bytes(&p.cert)),
            key_pem: pair.and_then(|p| bytes(&p.key)),
            ca_pem: ca.and_then(bytes),
        }
    }

    fn settings(mode: TlsMode) -> ServerTls {
        ServerTls {
            mode,
            credential_name: Some("gw-secret".into()),
            min_version: None,
            max_version: None,
            cipher_suites: Vec::new(),
            https_redirect: false,
        }
    }

    /// Tests check the server side only: the client takes any server certificate.
    #[derive(Debug)]
    struct AnyServer(WebPkiSupportedAlgorithms);

    impl ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        signature_checks!(0);
    }

    fn client(
        versions: &[&'static SupportedProtocolVersion],
        cert: Option<&Pair>,
    ) -> rustls::ClientConfig {
        let provider = crypto::default_provider();
        let algorithms = provider.signature_verification_algorithms;
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(algorithms)));
        let mut config = match cert {
            Some(pair) => {
                let chain = CertificateDer::pem_slice_iter(pair.cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                let key = PrivateKeyDer::from_pem_slice(pair.key.as_bytes()).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }

    const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

    /// A handshake and one answer from the server (TLS 1.3 clients learn of a refused
    /// certificate only when they read); the negotiated ALPN protocol on success.
    async fn handshake(
        server: &Terminator,
        client: rustls::ClientConfig,
    ) -> Result<Option<Vec<u8>>, String> {
        let (near, far) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&server.config));
        let serve = async move {
            let mut tls = acceptor.accept(far).await?;
            tls.write_all(b"pong").await?;
            tls.flush().await?;
            Ok::<_, std::io::Error>(tls)
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let name = ServerName::try_from("gw.example").unwrap();
        let call = async move {
            let mut tls = connector.connect(name, near).await?;
            let mut answer = [0u8; 4];
            tls.read_exact(&mut answer).await?;
            assert_eq!(&answer, b"pong");
            Ok::<_, std::io::Error>(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec))
        };
        let (served, called) = tokio::join!(serve, call);
        let alpn = called.map_err(|e| format!("client: {e}"))?;
        served.map_err(|e| format!("server: {e}"))?;
        Ok(alpn)
    }

    const H1: &[&[u8]] = &[b"h2", b"http/1.1"];

    /// A terminator for `tls` with `pair` as the Secret `gw`'s certificate (no ca.crt).
    fn serving(tls: &ServerTls, pair: &Pair) -> Result<Terminator, TlsError> {
        terminator(tls, &secret("gw", Some(pair), None), None, H1)
    }

    #[tokio::test]
    async fn simple_terminates_with_alpn() {
        let (pair, ..) = self_signed("gw.example");
        let server = serving(&settings(TlsMode::Simple), &pair).unwrap();
        assert!(server.warnings.is_empty(), "{:?}", server.warnings);
        let alpn = handshake(&server, client(BOTH, None)).await.unwrap();
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    }

    #[tokio::test]
    async fn mutual_with_ca_accepts_only_certificates_the_ca_signed() {
        let (ca_pair, ca_params, ca_key) = self_signed("ca");
        let ca = Issuer::new(ca_params, ca_key);
        let server_pair = signed_by("gw.example", &ca);
        let good = signed_by("client", &ca);
        let (other, ..) = self_signed("client");
        let cacert = secret("gw-cacert", None, Some(&ca_pair.cert));
        let own = secret("gw", Some(&server_pair), None);
        let server = terminator(&settings(TlsMode::Mutual), &own, Some(&cacert), H1).unwrap();
        assert!(server.warnings.is_empty(), "{:?}", server.warnings);
        handshake(&server, client(BOTH, Some(&good))).await.unwrap();
        handshake(&server, client(BOTH, None)).await.unwrap_err();
        handshake(&server, client(BOTH, Some(&other)))
            .await
            .unwrap_err();
        // The ca.crt of the Secret itself serves as well.
        let own = secret("gw", Some(&server_pair), Some(&ca_pair.cert));
        let server = terminator(&settings(TlsMode::Mutual), &own, None, H1).unwrap();
        handshake(&server, client(BOTH, Some(&good))).await.unwrap();
        handshake(&server, client(BOTH, Some(&other)))
            .await
            .unwrap_err();
    }

    #[tokio::test]
    async fn mutual_without_ca_accepts_only_the_secrets_own_certificate() {
        let (pair, ..) = self_signed("gw.example");
        let (other, ..) = self_signed("gw.example");
        let server = serving(&settings(TlsMode::Mutual), &pair).unwrap();
        assert_eq!(
            server.warnings,
            [
                "MUTUAL without ca.crt: only the Secret's own certificate is accepted as a client certificate"
            ]
        );
        for versions in [BOTH, &[&rustls::version::TLS12][..]] {
            handshake(&server, client(versions, Some(&pair)))
                .await
                .unwrap();
            handshake(&server, client(versions, Some(&other)))
                .await
                .unwrap_err();
            handshake(&server, client(versions, None))
                .await
                .unwrap_err();
        }
    }

    #[test]
    fn cipher_names_map_to_rustls_suites() {
        use crypto::cipher_suite as cs;
        for (name, suite) in [
            (
                "ECDHE-RSA-AES128-GCM-SHA256",
                cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            ),
            (
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
                cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            ),
            ("tls_aes_128_gcm_sha256", cs::TLS13_AES_128_GCM_SHA256),
        ] {
            assert_eq!(suite_named(name), Ok(suite), "{name}");
        }
        for (name, why) in [
            ("ECDHE-RSA-AES128-SHA", "rustls has no CBC suites"),
            (
                "TLS_RSA_WITH_AES_128_GCM_SHA256",
                "rustls has no RSA key exchange suites",
            ),
            ("DES-CBC3-SHA", "rustls has no 3DES suites"),
            ("RC4-SHA", "rustls has no RC4 suites"),
            ("BOGUS", "unknown cipher suite name"),
        ] {
            assert_eq!(suite_named(name), Err(why), "{name}");
        }
    }

    #[tokio::test]
    async fn tls13_suites_stay_when_the_list_names_only_tls12_ones() {
        let (pair, ..) = self_signed("gw.example");
        let mut tls = settings(TlsMode::Simple);
        tls.cipher_suites = vec!["ECDHE-ECDSA-AES128-GCM-SHA256".into()];
        let server = serving(&tls, &pair).unwrap();
        handshake(&server, client(&[&rustls::version::TLS13], None))
            .await
            .unwrap();
    }

    fn settings_error(tls: &ServerTls) -> String {
        let (pair, ..) = self_signed("gw.example");
        match serving(tls, &pair) {
            Err(TlsError::Settings(message)) => message,
            other => panic!("expected a settings error, got {other:?}"),
        }
    }

    #[test]
    fn unusable_settings_are_refused() {
        let mut tls = settings(TlsMode::Passthrough);
        assert!(settings_error(&tls).contains("PASSTHROUGH"));
        tls.mode = TlsMode::Simple;
        tls.min_version = Some(TlsVersion::V1_3);
        tls.max_version = Some(TlsVersion::V1_2);
        assert!(settings_error(&tls).contains("above maxProtocolVersion"));
        tls.min_version = Some(TlsVersion::V1_0);
        tls.max_version = Some(TlsVersion::V1_1);
        assert!(settings_error(&tls).contains("below 1.2"));
        tls.max_version = Some(TlsVersion::V1_2);
        tls.cipher_suites = vec!["AES128-SHA".into(), "TLS_AES_128_GCM_SHA256".into()];
        assert!(settings_error(&tls).contains("none of AES128-SHA"));
    }

    #[test]
    fn tls12_suites_must_fit_the_certificates_key() {
        // rcgen's keys are ECDSA: RSA suites only cannot serve them.
        let mut tls = settings(TlsMode::Simple);
        tls.cipher_suites = vec!["ECDHE-RSA-AES128-GCM-SHA256".into()];
        tls.max_version = Some(TlsVersion::V1_2);
        assert!(settings_error(&tls).contains("fits the certificate's ECDSA key"));
        tls.max_version = None;
        let (pair, ..) = self_signed("gw.example");
        let server = serving(&tls, &pair).unwrap();
        assert_eq!(
            server.warnings,
            [
                "no TLS 1.2 cipher suite of cipherSuites fits the certificate's ECDSA key: TLS 1.2 clients cannot connect"
            ]
        );
    }

    #[test]
    fn old_min_version_is_raised_with_a_warning() {
        let (pair, ..) = self_signed("gw.example");
        let mut tls = settings(TlsMode::Simple);
        tls.min_version = Some(TlsVersion::V1_0);
        let server = serving(&tls, &pair).unwrap();
        assert_eq!(server.warnings.len(), 1);
        assert!(server.warnings[0].contains("raised to TLSV1_2"));
    }

    fn secret_error(spec: &TlsSecretSpec) -> (String, String) {
        match terminator(&settings(TlsMode::Simple), spec, None, H1) {
            Err(TlsError::Secret { secret, problem }) => (secret, problem),
            other => panic!("expected a Secret error, got {other:?}"),
        }
    }

    #[test]
    fn bad_secrets_are_named() {
        let (pair, ..) = self_signed("gw.example");
        let (other, ..) = self_signed("gw.example");
        let mismatched = Pair {
            cert: pair.cert.clone(),
            key: other.key,
        };
        let (name, problem) = secret_error(&secret("gw-secret", Some(&mismatched), None));
        assert_eq!(name, "istio-system/gw-secret");
        assert!(problem.contains("does not match"), "{problem}");

        let mut spec = secret("gw-secret", Some(&pair), None);
        spec.key_pem = None;
        assert_eq!(secret_error(&spec).1, "no tls.key");

        spec.key_pem = Some(Arc::from(&b"-----BEGIN PRIVATE KEY-----\n@@@\n"[..]));
        assert!(
            secret_error(&spec)
                .1
                .starts_with("tls.key is not a valid PEM private key")
        );

        let mut spec = secret("gw-secret", Some(&pair), None);
        spec.cert_pem = Some(Arc::from(&b"not pem"[..]));
        assert_eq!(
            secret_error(&spec).1,
            "tls.crt holds no PEM CERTIFICATE block"
        );

        spec.cert_pem = Some(Arc::from(&b"-----BEGIN CERTIFICATE-----\n@@@\n"[..]));
        assert!(
            secret_error(&spec)
                .1
                .starts_with("tls.crt is not valid PEM")
        );
        let shown = terminator(&settings(TlsMode::Simple), &spec, None, H1)
            .unwrap_err()
            .to_string();
        assert!(
            shown.starts_with("Secret istio-system/gw-secret: tls.crt"),
            "{shown}"
        );
    }
}
