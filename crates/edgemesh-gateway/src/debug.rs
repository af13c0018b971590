//! `/debug/routes`: the compiled table as JSON, with what was left out and why.

use serde::Serialize;

use crate::Shared;
use crate::table::{HttpAction, PortMode, Problem, Target};

#[derive(Serialize)]
struct View<'a> {
    version: u64,
    listening: Vec<String>,
    cannot_listen: Vec<(String, &'a str)>,
    ports: Vec<PortView>,
    problems: &'a [Problem],
    warnings: &'a [Problem],
}

#[derive(Serialize)]
struct PortView {
    port: u16,
    mode: &'static str,
    http: Vec<RouteView>,
    l4: Vec<RouteView>,
}

#[derive(Serialize)]
struct RouteView {
    name: String,
    to: Vec<String>,
}

fn targets(targets: &[Target]) -> Vec<String> {
    targets
        .iter()
        .map(|t| match t.port {
            Some(port) => format!("{}:{port} weight {}", t.service, t.weight),
            None => format!("{} weight {}", t.service, t.weight),
        })
        .collect()
}

/// The JSON body of `/debug/routes`.
pub fn routes_json(shared: &Shared) -> Vec<u8> {
    let table = shared.table.load();
    let listeners = shared.listeners.lock().unwrap_or_else(|p| p.into_inner());
    let ports = table
        .ports
        .values()
        .map(|port| PortView {
            port: port.number,
            mode: port.mode.describe(),
            http: port
                .http
                .iter()
                .map(|r| RouteView {
                    name: r.name.clone(),
                    to: match &r.action {
                        HttpAction::Forward(d) => targets(&d.targets),
                        HttpAction::Redirect(r) => vec![format!("redirect {}", r.status)],
                    },
                })
                .collect(),
            l4: port
                .l4
                .iter()
                .map(|r| RouteView {
                    name: r.name.clone(),
                    to: targets(&r.destinations.targets),
                })
                .collect(),
        })
        .collect();
    let view = View {
        version: table.version,
        listening: listeners.addresses().map(ToString::to_string).collect(),
        cannot_listen: listeners
            .failed
            .iter()
            .map(|(a, e)| (a.to_string(), e.as_str()))
            .collect(),
        ports,
        problems: &table.problems,
        warnings: &table.warnings,
    };
    serde_json::to_vec_pretty(&view).unwrap_or_default()
}

impl PortMode {
    /// For people: `HTTP`, `HTTPS (terminated)`, `TCP`, ...
    pub fn describe(&self) -> &'static str {
        match self {
            PortMode::Http { tls: None, .. } => "HTTP",
            PortMode::Http { tls: Some(_), .. } => "HTTPS (terminated)",
            PortMode::Tcp { tls: None } => "TCP",
            PortMode::Tcp { tls: Some(_) } => "TLS (terminated)",
            PortMode::Passthrough => "TLS passthrough",
        }
    }
}
