//! Dev-only test kit for edgemesh: every feature is tested against the real kernel (network
//! namespaces, veth, bridges, NAT routers) and against a test double of the Kubernetes apiserver.
//!
//! - [`netns`]: one network namespace per [`netns::Netns`], deleted on drop (also on panic).
//! - [`topology`]: hosts, LANs (bridges in a switch namespace), veth links, routes, NAT routers.
//! - [`process`]: start the real `edgemesh` binary, capture its log, wait for readiness.
//! - [`http`]: a tiny blocking HTTP/1.1 GET client.
//! - [`apiserver`]: a test double of kube-apiserver (list/watch/CRUD over JSON objects).
//! - [`hub`]: `edgemesh hub` command lines that touch nothing of the host.
//! - [`tls`]: a CA and certificates it signs (openssl), for HTTPS tests.
//!
//! See `docs/testkit.md` for how to use each part.
#![forbid(unsafe_code)]

pub mod apiserver;
pub mod http;
pub mod hub;
pub mod netns;
pub mod process;
pub mod tcp;
pub mod tls;
pub mod topology;
