//! The policy route UDP TPROXY needs: packets carrying the TPROXY mark are delivered locally
//! (`ip rule add fwmark MARK lookup 100` + `ip route add local 0.0.0.0/0 dev lo table 100`),
//! installed through netlink, idempotently.

use std::net::Ipv4Addr;

use futures::TryStreamExt;
use rtnetlink::packet_route::route::{RouteAttribute, RouteMessage, RouteScope, RouteType};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::{Handle, IpVersion, RouteMessageBuilder};

use super::{NetError, with_netlink};

/// Routing table of the TPROXY local route (the value used in the kernel's TPROXY documentation).
pub const TPROXY_TABLE: u32 = 100;

/// Ensures the rule and the route exist (in the calling thread's network namespace).
pub async fn ensure_tproxy_route(mark: u32) -> Result<(), NetError> {
    with_netlink(|handle| async move { ensure_with(&handle, mark).await }).await
}

/// `map_err` for a request spelled as `ip` would.
fn request(request: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let request = request.into();
    move |error| NetError::Route { request, error }
}

async fn ensure_with(handle: &Handle, mark: u32) -> Result<(), NetError> {
    if !rule_exists(handle, mark).await? {
        let add = handle
            .rule()
            .add()
            .v4()
            .fw_mark(mark)
            .table_id(TPROXY_TABLE)
            .action(RuleAction::ToTable);
        add.execute().await.map_err(request(format!(
            "ip rule add fwmark {mark:#x} lookup {TPROXY_TABLE}"
        )))?;
    }
    let lo = loopback_index(handle).await?;
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(Ipv4Addr::UNSPECIFIED, 0)
        .kind(RouteType::Local)
        .scope(RouteScope::Host)
        .table_id(TPROXY_TABLE)
        .output_interface(lo)
        .build();
    handle
        .route()
        .add(route)
        .replace()
        .execute()
        .await
        .map_err(request(format!(
            "ip route replace local 0.0.0.0/0 dev lo table {TPROXY_TABLE}"
        )))
}

/// Removes the rule and the route (idempotent: absent ones are fine).
pub async fn remove_tproxy_route(mark: u32) -> Result<(), NetError> {
    with_netlink(|handle| async move { remove_with(&handle, mark).await }).await
}

async fn remove_with(handle: &Handle, mark: u32) -> Result<(), NetError> {
    for rule in matching_rules(handle, mark).await? {
        handle
            .rule()
            .del(rule)
            .execute()
            .await
            .map_err(request("ip rule del"))?;
    }
    let routes: Vec<_> = handle
        .route()
        .get(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .table_id(TPROXY_TABLE)
                .build(),
        )
        .execute()
        .try_collect()
        .await
        .map_err(request(format!("ip route list table {TPROXY_TABLE}")))?;
    // The dump is not filtered by table (the kernel ignores the request's table without strict
    // checking): keep only our route, never the local table's 127.0.0.0/8 or host addresses.
    for route in routes.into_iter().filter(is_tproxy_route) {
        handle
            .route()
            .del(route)
            .execute()
            .await
            .map_err(request("ip route del"))?;
    }
    Ok(())
}

/// `local 0.0.0.0/0 dev lo table 100`, the route [`ensure_tproxy_route`] installs.
fn is_tproxy_route(route: &RouteMessage) -> bool {
    let table = route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table));
    table == TPROXY_TABLE
        && route.header.kind == RouteType::Local
        && route.header.destination_prefix_length == 0
}

async fn rule_exists(handle: &Handle, mark: u32) -> Result<bool, NetError> {
    Ok(!matching_rules(handle, mark).await?.is_empty())
}

async fn matching_rules(handle: &Handle, mark: u32) -> Result<Vec<RuleMessage>, NetError> {
    let rules: Vec<_> = handle
        .rule()
        .get(IpVersion::V4)
        .execute()
        .try_collect()
        .await
        .map_err(request("ip rule list"))?;
    Ok(rules
        .into_iter()
        .filter(|rule| {
            let has = |wanted: &RuleAttribute| rule.attributes.iter().any(|a| a == wanted);
            has(&RuleAttribute::FwMark(mark)) && has(&RuleAttribute::Table(TPROXY_TABLE))
        })
        .collect())
}

async fn loopback_index(handle: &Handle) -> Result<u32, NetError> {
    let mut links = handle.link().get().match_name("lo".into()).execute();
    let link = links.try_next().await.map_err(request("ip link show lo"))?;
    link.map(|l| l.header.index).ok_or(NetError::NoLoopback)
}
