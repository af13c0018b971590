//! `edgemesh hub bootstrap` and certificate renewal: the hub's HTTPS serving certificate from
//! the Kubernetes certificates API.
//!
//! One flow serves both: a new key (kept until the request is answered), a
//! `CertificateSigningRequest` for signer `kubernetes.io/kubelet-serving` (see [`csr`] for why)
//! named after that key, a bounded wait for an approver and the signer, then key and
//! certificate written atomically (key first, both 0600). The running hub renews the same way
//! ([`renew`]) and its listener picks the new pair up by itself (`tls.rs` polls the files), so
//! renewal needs no restart.

mod api;
pub mod cert;
pub mod csr;
mod renew;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rcgen::KeyPair;
use serde_json::Value;

pub use api::Api;
pub use cert::{CertInfo, renewal_due, wait_until};
pub use csr::{Identity, SIGNER, Standing};
pub use renew::run as run_renewal;

/// How long one watch lasts before the wait logs its progress and watches again.
const WATCH_ROUND: Duration = Duration::from_secs(30);
/// Pause before retrying after the apiserver could not be reached while waiting.
const RETRY_PAUSE: Duration = Duration::from_secs(2);

/// What a request asks for and how long it may wait.
#[derive(Debug, Clone)]
pub struct CsrSettings {
    pub identity: Identity,
    /// How long to wait for approval and the certificate.
    pub timeout: Duration,
    /// `spec.expirationSeconds`; `None` leaves the lifetime to the signer (kube-controller-
    /// manager's `--cluster-signing-duration`, a year by default).
    pub lifetime: Option<Duration>,
    /// Renew when less than this is left, if that comes before 80% of the lifetime.
    pub margin: Duration,
}

/// Where the serving pair lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// An issued certificate and the key it belongs to.
#[derive(Debug)]
pub struct Issued {
    pub csr_name: String,
    pub key_pem: String,
    pub cert_pem: String,
    pub info: CertInfo,
}

/// Why bootstrap or renewal failed; each names what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Key(String),
    #[error("cannot reach the apiserver: {0}")]
    Unreachable(String),
    #[error(
        "RBAC refuses verb \"{verb}\" on {resource}: {message}. The hub's identity (--token-file) needs a ClusterRole rule {{apiGroups: [certificates.k8s.io], resources: [certificatesigningrequests], verbs: [create, get, watch]}} bound to it (see docs/deploy.md)",
        resource = api::resource()
    )]
    Forbidden { verb: &'static str, message: String },
    #[error(
        "the apiserver does not accept the hub's credentials ({0}); check --token-file and --ca-file"
    )]
    Unauthorized(String),
    #[error("the apiserver refused to {verb} the CertificateSigningRequest ({code}): {message}")]
    Rejected {
        verb: &'static str,
        code: u16,
        message: String,
    },
    #[error("CertificateSigningRequest {name} was denied: reason {reason}: {message}")]
    Denied {
        name: String,
        reason: String,
        message: String,
    },
    #[error("CertificateSigningRequest {name} failed: reason {reason}: {message}")]
    Failed {
        name: String,
        reason: String,
        message: String,
    },
    #[error("CertificateSigningRequest {name} was deleted before a certificate was issued")]
    Deleted { name: String },
    #[error("{}", timeout_message(name, *waited, *approved))]
    Timeout {
        name: String,
        waited: Duration,
        approved: bool,
    },
    #[error("CertificateSigningRequest {name}: the issued certificate is unusable: {reason}")]
    BadCertificate { name: String, reason: String },
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl BootstrapError {
    /// Whether the CSR behind this error can never be issued (a new request is needed).
    fn is_final(&self) -> bool {
        matches!(
            self,
            BootstrapError::Denied { .. }
                | BootstrapError::Failed { .. }
                | BootstrapError::Deleted { .. }
                | BootstrapError::BadCertificate { .. }
        )
    }
}

fn timeout_message(name: &str, waited: Duration, approved: bool) -> String {
    if approved {
        format!(
            "CertificateSigningRequest {name} was approved but no certificate was issued within {waited:?}: is kube-controller-manager's csrsigning controller running (--cluster-signing-cert-file)?"
        )
    } else {
        format!(
            "CertificateSigningRequest {name} was not approved within {waited:?}: approve it with `kubectl certificate approve {name}` (or run an auto-approver), or raise --csr-timeout"
        )
    }
}

/// Asks for a certificate for `settings.identity`, waits for it and writes the pair to
/// `files`. The key waits in
/// [`CertFiles::pending_key`] until the answer: a restart (a timed-out initContainer, a hub
/// restarted mid-renewal) finds the same CSR by its name and keeps waiting on it, so an
/// approval given meanwhile is not lost. A CSR that can never be issued (denied, failed,
/// deleted, unusable) drops that key: the next attempt is a new request.
pub async fn request_certificate(
    api: &Api,
    settings: &CsrSettings,
    files: &CertFiles,
) -> Result<Issued, BootstrapError> {
    let pending = files.pending_key();
    let key = pending_key(&pending)?;
    let result = match request_with(api, settings, key).await {
        Ok(issued) => files.write(&issued).map(|()| issued),
        Err(e) => Err(e),
    };
    // Only once the pair is on disk: a crash before keeps the key and the CSR it was issued for.
    let finished = match &result {
        Ok(_) => true,
        Err(e) => e.is_final(),
    };
    if finished && let Err(e) = std::fs::remove_file(&pending) {
        tracing::debug!(file = %pending.display(), error = %e, "pending key not removed");
    }
    result
}

/// The key kept from an unanswered request, or a new one (stored first).
fn pending_key(path: &Path) -> Result<KeyPair, BootstrapError> {
    if let Ok(pem) = std::fs::read_to_string(path) {
        match KeyPair::from_pem(&pem) {
            Ok(key) => return Ok(key),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "unreadable pending key; making a new one");
            }
        }
    }
    let key = csr::new_key()?;
    crate::store::write_file_atomic(path, key.serialize_pem().as_bytes()).map_err(|error| {
        BootstrapError::Write {
            path: path.to_path_buf(),
            error,
        }
    })?;
    Ok(key)
}

async fn request_with(
    api: &Api,
    settings: &CsrSettings,
    key: KeyPair,
) -> Result<Issued, BootstrapError> {
    let lifetime = settings.lifetime.map(|d| d.as_secs());
    let name = csr::name(&settings.identity, &key, lifetime);
    let request = csr::new_request(&settings.identity, key)?;
    let current = match api
        .create(&csr::object(&name, &request.csr_pem, lifetime))
        .await
    {
        Ok(created) => created,
        Err(BootstrapError::Rejected { code: 409, .. }) => {
            tracing::info!(csr = %name, "this key's CertificateSigningRequest exists from an earlier run; waiting on it");
            api.get(&name).await?
        }
        Err(e) => return Err(e),
    };
    tracing::info!(
        csr = %name,
        signer = SIGNER,
        timeout = ?settings.timeout,
        approve_with = %format!("kubectl certificate approve {name}"),
        "CertificateSigningRequest submitted; waiting for approval and the certificate"
    );
    let cert_pem = wait_for_certificate(api, &name, current, settings.timeout).await?;
    let info = CertInfo::parse(&cert_pem).map_err(|reason| bad(&name, reason))?;
    if !info.matches_key(&request.key) {
        return Err(bad(
            &name,
            "it does not carry the requested public key".into(),
        ));
    }
    // Written anyway, either would be requested again at once (at the next start or renewal
    // check): a CSR storm rather than a certificate.
    if !info.covers(&settings.identity) {
        return Err(bad(
            &name,
            format!(
                "it is not for {} with every name asked for (did the signer drop some?)",
                settings.identity.common_name()
            ),
        ));
    }
    if renewal_due(info.not_before, info.not_after, settings.margin) <= SystemTime::now() {
        return Err(bad(
            &name,
            "it is due for renewal as soon as issued (--cert-renew-before longer than its lifetime, or an old CSR?)".into(),
        ));
    }
    Ok(Issued {
        csr_name: name,
        key_pem: request.key.serialize_pem(),
        cert_pem,
        info,
    })
}

fn bad(name: &str, reason: String) -> BootstrapError {
    BootstrapError::BadCertificate {
        name: name.to_owned(),
        reason,
    }
}

fn text(obj: &Value, pointer: &str) -> String {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

/// Waits, bounded by `timeout`, until `current` (then what the watch reports) is issued,
/// denied or failed. Progress is logged every [`WATCH_ROUND`].
async fn wait_for_certificate(
    api: &Api,
    name: &str,
    mut current: Value,
    timeout: Duration,
) -> Result<String, BootstrapError> {
    let started = Instant::now();
    let mut approved_logged = false;
    loop {
        match csr::standing(&current) {
            Standing::Issued(pem) => return Ok(pem),
            Standing::Denied { reason, message } => {
                return Err(BootstrapError::Denied {
                    name: name.to_owned(),
                    reason,
                    message,
                });
            }
            Standing::Failed { reason, message } => {
                return Err(BootstrapError::Failed {
                    name: name.to_owned(),
                    reason,
                    message,
                });
            }
            Standing::Approved if !approved_logged => {
                approved_logged = true;
                tracing::info!(csr = %name, "approved; waiting for the signer to issue the certificate");
            }
            Standing::Approved | Standing::Pending => {}
        }
        let waited = started.elapsed();
        let Some(left) = timeout.checked_sub(waited).filter(|d| !d.is_zero()) else {
            return Err(BootstrapError::Timeout {
                name: name.to_owned(),
                waited,
                approved: approved_logged,
            });
        };
        let rv = text(&current, "/metadata/resourceVersion");
        // Wake for a decision, or for the approval the first time (to log it).
        let seen_approval = approved_logged;
        let decided = move |obj: &Value| match csr::standing(obj) {
            Standing::Pending => false,
            Standing::Approved => !seen_approval,
            _ => true,
        };
        match api.watch(name, &rv, left.min(WATCH_ROUND), decided).await {
            Ok(Ok(obj)) => current = obj,
            Ok(Err(api::WatchEnd::Deleted)) => {
                return Err(BootstrapError::Deleted {
                    name: name.to_owned(),
                });
            }
            Ok(Err(api::WatchEnd::Ended)) => {
                tracing::info!(csr = %name, waited = ?started.elapsed(), approved = approved_logged, "still waiting for the certificate");
                current = refreshed(api, name, current, left).await?;
            }
            Err(e @ (BootstrapError::Forbidden { .. } | BootstrapError::Unauthorized(_))) => {
                return Err(e);
            }
            Err(e) => {
                tracing::warn!(csr = %name, error = %e, "watching the CertificateSigningRequest failed; retrying");
                tokio::time::sleep(RETRY_PAUSE.min(left)).await;
                current = refreshed(api, name, current, left).await?;
            }
        }
    }
}

/// The CSR as it is now, or `current` when the apiserver cannot say (the deadline still holds).
async fn refreshed(
    api: &Api,
    name: &str,
    current: Value,
    left: Duration,
) -> Result<Value, BootstrapError> {
    match api.get(name).await {
        Ok(obj) => Ok(obj),
        Err(e @ (BootstrapError::Forbidden { .. } | BootstrapError::Unauthorized(_))) => Err(e),
        // An admin deleted it, or kube-controller-manager cleaned it up (pending ones after 24 h).
        Err(BootstrapError::Rejected { code: 404, .. }) => Err(BootstrapError::Deleted {
            name: name.to_owned(),
        }),
        Err(e) => {
            tracing::warn!(csr = %name, error = %e, "cannot read the CertificateSigningRequest; retrying");
            tokio::time::sleep(RETRY_PAUSE.min(left)).await;
            Ok(current)
        }
    }
}

impl CertFiles {
    /// Where the key of a request not yet answered waits: next to the key file, hidden.
    pub fn pending_key(&self) -> PathBuf {
        let name = self
            .key
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "key".into());
        self.key.with_file_name(format!(".{name}.pending"))
    }

    /// Writes key then certificate, each atomically (a reader sees the old file or the new
    /// one). The listener reloads once both changed.
    pub fn write(&self, issued: &Issued) -> Result<(), BootstrapError> {
        for (path, pem) in [(&self.key, &issued.key_pem), (&self.cert, &issued.cert_pem)] {
            crate::store::write_file_atomic(path, pem.as_bytes()).map_err(|error| {
                BootstrapError::Write {
                    path: path.clone(),
                    error,
                }
            })?;
        }
        Ok(())
    }

    /// The certificate on disk, if it is readable, belongs to the key on disk and covers
    /// `identity`; the error says why not.
    pub fn current(&self, identity: &Identity) -> Result<CertInfo, String> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        let info = CertInfo::parse(&read(&self.cert)?)
            .map_err(|e| format!("{}: {e}", self.cert.display()))?;
        let key = KeyPair::from_pem(&read(&self.key)?)
            .map_err(|e| format!("{}: {e}", self.key.display()))?;
        if !info.matches_key(&key) {
            return Err(format!(
                "{} does not belong to {}",
                self.cert.display(),
                self.key.display()
            ));
        }
        if !info.covers(identity) {
            return Err(format!(
                "{} is not for {} with every address and name wanted",
                self.cert.display(),
                identity.common_name()
            ));
        }
        Ok(info)
    }

    /// When the certificate on disk is due for renewal (now when it is unusable).
    pub fn renewal_due(&self, settings: &CsrSettings) -> SystemTime {
        match self.current(&settings.identity) {
            Ok(info) => renewal_due(info.not_before, info.not_after, settings.margin),
            Err(reason) => {
                tracing::info!(reason = %reason, "the serving certificate needs a new request");
                SystemTime::now()
            }
        }
    }
}

/// What `edgemesh hub bootstrap` did.
#[derive(Debug)]
pub enum Outcome {
    /// A new certificate was issued and written.
    Written(Issued),
    /// The certificate on disk is valid and not yet due for renewal: nothing was requested.
    StillValid(CertInfo),
}

/// `edgemesh hub bootstrap`: requests a certificate and writes it, unless the one on disk is
/// good and not yet due (or `force`).
pub async fn bootstrap(
    api: &Api,
    settings: &CsrSettings,
    files: &CertFiles,
    force: bool,
) -> Result<Outcome, BootstrapError> {
    if !force
        && let Ok(info) = files.current(&settings.identity)
        && wait_until(
            SystemTime::now(),
            renewal_due(info.not_before, info.not_after, settings.margin),
        ) > Duration::ZERO
    {
        return Ok(Outcome::StillValid(info));
    }
    let issued = request_certificate(api, settings, files).await?;
    Ok(Outcome::Written(issued))
}
