//! The ingress gateway: traffic from outside the cluster into the mesh, routed by Istio
//! `Gateway`s and `VirtualService`s.
//!
//! Read top to bottom: the Snapshot's [`Ingress`](edgemesh_model::ingress::Ingress) objects are
//! compiled ([`table`]) into a route table of listeners (port, protocol, TLS) with their routes;
//! objects that cannot be compiled are reported by name and left out. [`listen`] keeps one
//! socket per (address, port) of the table open. A connection is terminated ([`tls`]) or peeked
//! for its SNI ([`sni`]), then served: HTTP requests route by host, path, headers… to a weighted
//! destination ([`http`]); TCP and passthrough TLS connections are copied whole ([`tcp`]).
//! Destinations are Services of the Snapshot, balanced and dialed (directly or through the
//! tunnel) with the agent's own balancer and dialer.
#![forbid(unsafe_code)]

pub mod sni;
pub mod tls;
