//! A **test double of kube-apiserver**: a small HTTP/1.1 server speaking the real list/watch
//! protocol over JSON objects that the test adds, changes and deletes while clients run.
//!
//! It is faithful where clients notice: one global, increasing `resourceVersion`; lists carry
//! it; watches resume strictly after a version, start with synthetic `ADDED` events from version
//! "0"/none, send `BOOKMARK`s, answer a version older than the compaction point with an `ERROR`
//! event holding a 410 `Expired` Status; label and field selectors (including the
//! ADDED/DELETED a selector transition produces); `Status` bodies for 404/409/400; discovery
//! documents consistent with what is served. It is *not* an apiserver: no authentication, no
//! admission or validation beyond names and namespaces, no protobuf, no server-side apply, no
//! paging tokens (returning everything at once is legal), no garbage collection, no namespace
//! existence checks. See `docs/testkit.md`.
//!
//! It runs on its own runtime thread, so synchronous and async tests can both use it.

mod access;
mod body;
mod csr;
mod https;
mod resources;
mod rest;
mod route;
mod server;
mod status;
mod store;
mod time;
mod watch;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

pub use access::DEFAULT_USER;
pub use csr::{CsrPolicy, KUBELET_SERVING, SigningCa};
pub use edgemesh_selector::{FieldSelector, LabelSelector};
pub use https::Https;
pub use resources::{CERTIFICATES_GROUP, DISCOVERY_GROUP, ISTIO_GROUP};
pub use status::ApiError;

use access::Access;
use resources::Served;
use store::Store;

/// State shared by the handle and the server tasks.
#[derive(Debug)]
struct Shared {
    store: Mutex<Store>,
    served: Mutex<Served>,
    available: AtomicBool,
    /// False while [`ApiServer::restart`] has the server down.
    reachable: AtomicBool,
    /// Bumped to end every open watch abruptly.
    cut: tokio::sync::watch::Sender<u64>,
    requests: Mutex<Vec<String>>,
    open_watches: AtomicUsize,
    bookmark_interval: Duration,
    addr: SocketAddr,
    access: Access,
    tls: Option<Arc<rustls::ServerConfig>>,
    tls_errors: Mutex<Vec<String>>,
    csr_policy: Mutex<CsrPolicy>,
}

impl Shared {
    fn csr_policy(&self) -> CsrPolicy {
        self.csr_policy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What is served right now (see [`ApiServer::serve_istio`]).
    fn served(&self) -> Served {
        *self.served.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn tls_errors(&self) -> MutexGuard<'_, Vec<String>> {
        self.tls_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Options for [`ApiServer`].
#[derive(Debug, Clone)]
pub struct Builder {
    endpointslices: bool,
    istio: bool,
    bookmark_interval: Duration,
    access: Access,
    https: Option<Https>,
    csr_policy: CsrPolicy,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            endpointslices: true,
            istio: true,
            bookmark_interval: Duration::from_secs(2),
            access: Access {
                user: DEFAULT_USER.to_owned(),
                ..Access::default()
            },
            https: None,
            csr_policy: CsrPolicy::Pending,
        }
    }
}

impl Builder {
    /// Serve `discovery.k8s.io/v1` EndpointSlices (default yes; no = an old server).
    pub fn endpointslices(mut self, serve: bool) -> Self {
        self.endpointslices = serve;
        self
    }

    /// Serve `networking.istio.io` DestinationRules, Gateways and VirtualServices (default yes;
    /// no = no Istio CRDs).
    pub fn istio(mut self, serve: bool) -> Self {
        self.istio = serve;
        self
    }

    /// How often open watches with `allowWatchBookmarks` get a BOOKMARK (default 2 s).
    pub fn bookmark_interval(mut self, every: Duration) -> Self {
        self.bookmark_interval = every;
        self
    }

    /// Behave like KubeEdge's metaServer (before 1.23): every non-resource path but `/version`
    /// (API discovery: `/api`, `/apis`, `/apis/{group}/{version}`, ...) answers 500
    /// "request[PATH::get] isn't supported". Combine with `endpointslices(false)`.
    pub fn meta_server(mut self) -> Self {
        self.access.meta_server = true;
        self
    }

    /// RBAC forbids every verb on `plural` (e.g. "endpointslices", "nodes") with the apiserver's
    /// 403 Status; discovery still lists it, as RBAC does not filter discovery.
    pub fn forbid(mut self, plural: &str) -> Self {
        self.access.forbidden.push(plural.to_owned());
        self
    }

    /// The user 403 messages name (default [`DEFAULT_USER`]).
    pub fn user(mut self, user: &str) -> Self {
        self.access.user = user.to_owned();
        self
    }

    /// Serve HTTPS instead of HTTP ([`ApiServer::url`] says `https://`).
    pub fn https(mut self, https: Https) -> Self {
        self.https = Some(https);
        self
    }

    /// What happens to new CertificateSigningRequests (default: they stay pending).
    pub fn csr_policy(mut self, policy: CsrPolicy) -> Self {
        self.csr_policy = policy;
        self
    }

    /// Starts on `127.0.0.1:0`.
    pub fn start(self) -> std::io::Result<ApiServer> {
        self.start_on(TcpListener::bind("127.0.0.1:0")?)
    }

    /// Starts on `127.0.0.1:0` inside `netns`, where an agent in that namespace reaches it.
    pub fn start_in(self, netns: &crate::netns::Netns) -> std::io::Result<ApiServer> {
        let listener = netns.run(|| TcpListener::bind("127.0.0.1:0"))?;
        self.start_on(listener)
    }

    /// Starts on a listener the caller made (for example inside a network namespace).
    pub fn start_on(self, listener: TcpListener) -> std::io::Result<ApiServer> {
        let addr = listener.local_addr()?;
        let tls = self.https.as_ref().map(https::server_config).transpose()?;
        listener.set_nonblocking(true)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _entered = rt.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new()),
            served: Mutex::new(Served {
                endpointslices: self.endpointslices,
                istio: self.istio,
            }),
            available: AtomicBool::new(true),
            reachable: AtomicBool::new(true),
            cut: tokio::sync::watch::channel(0).0,
            requests: Mutex::new(Vec::new()),
            open_watches: AtomicUsize::new(0),
            bookmark_interval: self.bookmark_interval,
            addr,
            access: self.access,
            tls,
            tls_errors: Mutex::new(Vec::new()),
            csr_policy: Mutex::new(self.csr_policy),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let serving = shared.clone();
        // Subscribed before anything can be created, so the policy sees every CSR.
        let csr_events = shared.store().events.subscribe();
        let thread = std::thread::Builder::new()
            .name(format!("apiserver-{addr}"))
            .spawn(move || {
                rt.spawn(csr::run_policy(serving.clone(), csr_events));
                rt.block_on(server::serve(listener, serving, stopped));
                rt.shutdown_background();
            })?;
        Ok(ApiServer {
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// A running fixture; stops (closing every connection) on drop.
#[derive(Debug)]
pub struct ApiServer {
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Options: which groups to serve, bookmark interval.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Starts with defaults on `127.0.0.1:0`.
    pub fn start() -> std::io::Result<ApiServer> {
        Builder::default().start()
    }

    /// Starts with defaults on the caller's listener.
    pub fn from_listener(listener: TcpListener) -> std::io::Result<ApiServer> {
        Builder::default().start_on(listener)
    }

    /// `http://ip:port`, or `https://` when serving HTTPS.
    pub fn url(&self) -> String {
        let scheme = if self.shared.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.shared.addr)
    }

    /// Why TLS handshakes failed so far (HTTPS only), e.g. a client without a certificate.
    pub fn tls_errors(&self) -> Vec<String> {
        self.shared.tls_errors().clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Creates or replaces `obj`; its `apiVersion` and `kind` choose the resource, a namespaced
    /// object without namespace goes to "default". Returns the stored object.
    pub fn apply(&self, obj: Value) -> Result<Value, ApiError> {
        let api_version = obj["apiVersion"].as_str().unwrap_or("").to_owned();
        let kind = obj["kind"].as_str().unwrap_or("").to_owned();
        let (r, version) = self.resolve(&api_version, &kind)?;
        let obj = store::normalize(r, &version, obj, None)?;
        let (ns, name) = store::key_of(&obj);
        let mut store = self.shared.store();
        if store.get(r, &ns, &name).is_some() {
            store.replace(r, obj, false)
        } else {
            store.create(r, obj)
        }
    }

    /// Deletes an object (namespace ignored for cluster-scoped kinds); returns it.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let (r, _) = self.resolve(api_version, kind)?;
        let ns = if r.namespaced { namespace } else { "" };
        self.shared.store().delete(r, ns, name)
    }

    /// The stored object, if any.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let (r, _) = self.resolve(api_version, kind).ok()?;
        let ns = if r.namespaced { namespace } else { "" };
        self.shared.store().get(r, ns, name)
    }

    /// Abruptly ends every open watch stream (the connection is dropped mid-stream).
    pub fn cut_watches(&self) {
        self.shared.cut.send_modify(|n| *n += 1);
    }

    /// Forgets the event history: a watch from any resourceVersion handed out so far gets an
    /// `ERROR` 410 Expired, forcing clients to relist. Open watches keep running (cut them).
    pub fn compact(&self) {
        self.shared.store().compact();
    }

    /// `false`: every request gets 503 ServiceUnavailable and open watches are cut (an outage).
    pub fn set_available(&self, available: bool) {
        self.shared.available.store(available, Ordering::SeqCst);
        if !available {
            self.cut_watches();
        }
    }

    /// Starts (or stops) serving `networking.istio.io` at run time, as installing (or deleting)
    /// Istio's CRDs does: discovery, lists and watches follow at once.
    pub fn serve_istio(&self, serve: bool) {
        self.shared
            .served
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .istio = serve;
    }

    /// An apiserver restart: for `down` every connection is closed unanswered (the process is
    /// gone) and open watches are cut; then the objects are served again but every
    /// resourceVersion handed out before is expired (watches from them get 410 Expired), as
    /// after a real restart with compaction. [`ApiServer::set_available`] is the 503 variant.
    pub fn restart(&self, down: Duration) {
        self.shared.reachable.store(false, Ordering::SeqCst);
        self.cut_watches();
        std::thread::sleep(down);
        self.compact();
        self.shared.reachable.store(true, Ordering::SeqCst);
    }

    /// What happens to CertificateSigningRequests created from now on.
    pub fn set_csr_policy(&self, policy: CsrPolicy) {
        *self
            .shared
            .csr_policy
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = policy;
    }

    /// Approves CSR `name` and issues its certificate with `ca` (or marks it `Failed` when it
    /// breaks the signer's rules), as an admin's `kubectl certificate approve` and
    /// kube-controller-manager do.
    pub fn approve_csr(&self, name: &str, ca: &SigningCa) -> Result<Value, ApiError> {
        csr::approve(&self.shared, name)?;
        csr::sign(&self.shared, name, ca)
    }

    /// Denies CSR `name`, as `kubectl certificate deny` does (with its own reason).
    pub fn deny_csr(&self, name: &str, reason: &str, message: &str) -> Result<Value, ApiError> {
        csr::deny(&self.shared, name, reason, message)
    }

    /// Every request so far, as "METHOD /path?query".
    pub fn requests(&self) -> Vec<String> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Watch streams open right now.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().rv
    }

    fn resolve(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<(&'static resources::Resource, String), ApiError> {
        self.shared.served().find_kind(api_version, kind).ok_or_else(|| {
            ApiError::new(404, "NotFound", format!("the server could not find the requested resource: kind {kind:?} in {api_version:?}"))
        })
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
