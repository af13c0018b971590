use super::*;
use serde_json::json;

/// The documents of a fixture file (lists expanded).
fn fixture(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .expect("fixture parses")
        .into_iter()
        .flat_map(crate::source::documents::expand_list)
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in fixture"))
}

const HTTP: &str = include_str!("../../../tests/fixtures/gateway-http.yaml");
const TLS: &str = include_str!("../../../tests/fixtures/gateway-tls.yaml");
const ROUTE: &str = include_str!("../../../tests/fixtures/gateway-route.yaml");
const ROUTES: &str = include_str!("../../../tests/fixtures/virtualservice-routes.yaml");

fn edgemesh_gateway(hosts: &str, tls: Option<ServerTls>) -> GatewaySpec {
    GatewaySpec {
        key: ObjectKey::new("default", "edgemesh-gateway"),
        selector: BTreeMap::from([("kubeedge".into(), "edgemesh-gateway".into())]),
        servers: vec![ServerSpec {
            port: 23333,
            port_name: "http-0".into(),
            protocol: ServerProtocol::Http,
            hosts: vec![hosts.into()],
            tls,
        }],
    }
}

fn edgemesh_route(hosts: &str, prefix: &str) -> VirtualServiceSpec {
    VirtualServiceSpec {
        key: ObjectKey::new("default", "edgemesh-gateway-svc"),
        hosts: vec![hosts.into()],
        gateways: vec!["edgemesh-gateway".into()],
        http: vec![HttpRouteSpec {
            matches: vec![HttpMatchSpec {
                uri: Some(StringMatchSpec::Prefix(prefix.into())),
                ..HttpMatchSpec::default()
            }],
            route: vec![dest("hostname-lb-svc", Some(12345), None, 100)],
            ..HttpRouteSpec::default()
        }],
        tcp: vec![],
        tls: vec![],
    }
}

fn dest(host: &str, port: Option<u16>, subset: Option<&str>, weight: u32) -> DestinationSpec {
    DestinationSpec {
        host: host.into(),
        port,
        subset: subset.map(Into::into),
        weight,
    }
}

#[test]
fn edgemesh_http_example_converts() {
    let docs = fixture(HTTP);
    let gw = gateway(of_kind(&docs, "Gateway")).expect("gateway converts");
    assert_eq!(gw, edgemesh_gateway("*", None));
    let vs = virtual_service(of_kind(&docs, "VirtualService")).expect("vs converts");
    assert_eq!(vs, edgemesh_route("*", "/"));
}

#[test]
fn edgemesh_tls_example_converts_with_its_secret() {
    let docs = fixture(TLS);
    let gw = gateway(of_kind(&docs, "Gateway")).expect("gateway converts");
    let tls = gw.servers[0].tls.clone().expect("tls settings");
    assert_eq!(
        tls,
        ServerTls {
            mode: TlsMode::Mutual,
            credential_name: Some("gw-secret".into()),
            min_version: Some(TlsVersion::V1_2),
            max_version: Some(TlsVersion::V1_2),
            cipher_suites: tls.cipher_suites.clone(),
            https_redirect: false,
        }
    );
    assert_eq!(tls.cipher_suites.len(), 10);
    assert_eq!(tls.cipher_suites[0], "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA");
    assert_eq!(gw, edgemesh_gateway("*", Some(tls)));

    let secret: Secret = serde_json::from_value(of_kind(&docs, "Secret").clone()).unwrap();
    let spec = tls_secret(&secret).expect("valid").expect("a TLS secret");
    assert_eq!(spec.key, ObjectKey::new("default", "gw-secret"));
    let cert = spec.cert_pem.expect("tls.crt");
    assert!(
        cert.starts_with(b"-----BEGIN CERTIFICATE-----\n"),
        "decoded"
    );
    assert!(
        spec.key_pem
            .expect("tls.key")
            .starts_with(b"-----BEGIN PRIVATE KEY")
    );
    assert_eq!(spec.ca_pem, None);
}

#[test]
fn edgemesh_route_example_converts_from_a_v1beta1_list() {
    let docs = fixture(ROUTE);
    let gw = gateway(of_kind(&docs, "Gateway")).expect("gateway converts");
    assert_eq!(gw, edgemesh_gateway("hostname.org", None));
    let vs = virtual_service(of_kind(&docs, "VirtualService")).expect("vs converts");
    assert_eq!(vs, edgemesh_route("hostname.org", "/who"));
}

#[test]
fn a_virtual_service_with_every_field_converts() {
    let docs = fixture(ROUTES);
    let vs = virtual_service(&docs[0]).expect("converts");
    assert_eq!(vs.key, ObjectKey::new("web", "shop"));
    assert_eq!(vs.hosts, ["shop.example.com", "*.shop.example.com"]);
    assert_eq!(vs.gateways, ["edge/edgemesh-gateway", "mesh"]);
    assert_eq!(vs.http.len(), 4);

    let canary = &vs.http[0];
    assert_eq!(canary.name.as_deref(), Some("canary"));
    let headers = &canary.matches[0].headers;
    assert!(
        headers.contains(&("x-canary".into(), StringMatchSpec::Exact("yes".into()))),
        "names lower-cased: {headers:?}"
    );
    assert!(headers.contains(&(
        "x-user".into(),
        StringMatchSpec::Regex("^(alice|bob)$".into())
    )));
    assert!(
        headers.contains(&("x-debug".into(), StringMatchSpec::Regex(".*".into()))),
        "{{}} is a presence check"
    );
    assert_eq!(
        canary.matches[0].uri,
        Some(StringMatchSpec::Prefix("/api".into()))
    );
    assert_eq!(
        canary.matches[1],
        HttpMatchSpec {
            uri: None,
            method: Some(StringMatchSpec::Exact("GET".into())),
            authority: Some(StringMatchSpec::Regex(".*\\.shop\\.example\\.com".into())),
            headers: vec![],
            query_params: vec![("canary".into(), StringMatchSpec::Exact("1".into()))],
            port: Some(443),
            gateways: vec!["edge/edgemesh-gateway".into()],
        }
    );
    assert_eq!(
        canary.route,
        [
            dest("cart.web.svc.cluster.local", Some(8080), Some("v2"), 10),
            dest("cart", None, Some("v1"), 90),
            dest("cart-shadow", None, None, 0),
        ],
        "with several destinations an unset weight is 0"
    );
    assert_eq!(
        canary.rewrite,
        Some(RewriteSpec {
            uri: Some("/v2/api".into()),
            authority: Some("cart.internal".into()),
        })
    );
    assert_eq!(canary.timeout, Some(Duration::from_millis(1500)));
    assert_eq!(
        canary.retries,
        Some(RetriesSpec {
            attempts: 3,
            per_try_timeout: Some(Duration::from_millis(100)),
            retry_on: Some("5xx".into()),
        })
    );
    assert_eq!(
        canary.headers,
        HeaderOpsSpec {
            request: HeaderOps {
                set: vec![("x-edge".into(), "gateway".into())],
                add: vec![("x-trace".into(), "1".into())],
                remove: vec!["cookie".into()],
            },
            response: HeaderOps {
                remove: vec!["server".into()],
                ..HeaderOps::default()
            },
        }
    );

    assert_eq!(
        vs.http[1].redirect,
        Some(RedirectSpec {
            uri: Some("/new".into()),
            authority: Some("new.example.com".into()),
            scheme: Some("https".into()),
            port: Some(8443),
            status: 301,
        }),
        "redirectCode defaults to 301"
    );
    assert!(vs.http[1].route.is_empty());
    assert_eq!(vs.http[2].redirect.as_ref().map(|r| r.status), Some(308));
    assert_eq!(
        vs.http[2].matches[0].uri,
        Some(StringMatchSpec::Regex("^/moved/.*".into()))
    );
    assert!(vs.http[3].matches.is_empty(), "no match: every request");
    assert_eq!(vs.http[3].route, [dest("frontend", None, None, 100)]);

    assert_eq!(
        vs.tcp,
        [L4RouteSpec {
            matches: vec![L4MatchSpec {
                port: Some(5432),
                ..L4MatchSpec::default()
            }],
            route: vec![dest("postgres", Some(5432), None, 100)],
        }]
    );
    assert_eq!(
        vs.tls,
        [L4RouteSpec {
            matches: vec![L4MatchSpec {
                port: Some(443),
                sni_hosts: vec!["secure.shop.example.com".into()],
                gateways: vec!["edge/edgemesh-gateway".into()],
            }],
            route: vec![
                dest("secure", Some(8443), None, 75),
                dest("secure-next", Some(8443), None, 25),
            ],
        }]
    );
}

fn gw_doc(servers: Value) -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
           "metadata": {"name": "x", "namespace": "default"},
           "spec": {"servers": servers}})
}

fn vs_doc(spec: Value) -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
           "metadata": {"name": "x"}, "spec": spec})
}

fn http_server(extra: Value) -> Value {
    let mut server =
        json!({"hosts": ["*"], "port": {"number": 80, "protocol": "HTTP", "name": "http"}});
    if let (Some(server), Some(extra)) = (server.as_object_mut(), extra.as_object()) {
        server.extend(extra.clone());
    }
    server
}

#[test]
fn broken_gateways_are_rejected_naming_the_field() {
    let cases = [
        (
            json!([]),
            "Gateway default/x: servers: at least one server is required",
        ),
        (
            json!([{"hosts": ["*"], "port": {"number": 70000, "protocol": "HTTP"}}]),
            "Gateway default/x: servers[0].port.number: 70000 is out of range 1-65535",
        ),
        (
            json!([{"hosts": ["*"], "port": {"number": 0, "protocol": "HTTP"}}]),
            "servers[0].port.number: 0 is out of range 1-65535",
        ),
        (
            json!([{"hosts": ["*"], "port": {"number": 80, "protocol": "MONGO"}}]),
            "servers[0].port.protocol: 'MONGO' is not one of HTTP, HTTPS, HTTP2, GRPC, TCP, TLS",
        ),
        (
            json!([{"hosts": ["*"], "port": {"number": 80}}]),
            "servers[0].port.protocol: is required",
        ),
        (
            json!([{"port": {"number": 80, "protocol": "HTTP"}}]),
            "servers[0].hosts: at least one host is required",
        ),
        (
            json!([{"hosts": "*", "port": {"number": 80, "protocol": "HTTP"}}]),
            "servers[0].hosts: expected a list",
        ),
        (
            json!([
                http_server(json!({})),
                http_server(json!({"tls": {"mode": "ISTIO_MUTUAL"}}))
            ]),
            "servers[1].tls.mode: 'ISTIO_MUTUAL' is not supported (supported: SIMPLE, MUTUAL, PASSTHROUGH)",
        ),
        (
            json!([http_server(
                json!({"tls": {"mode": "SIMPLE", "minProtocolVersion": "TLSV9"}})
            )]),
            "servers[0].tls.minProtocolVersion: 'TLSV9' is not one of TLS_AUTO",
        ),
        (
            json!([http_server(
                json!({"tls": {"mode": "SIMPLE", "minProtocolVersion": "TLSV1_3", "maxProtocolVersion": "TLSV1_2"}})
            )]),
            "servers[0].tls: minProtocolVersion is above maxProtocolVersion",
        ),
    ];
    for (servers, want) in cases {
        let err = gateway(&gw_doc(servers.clone())).expect_err("must be rejected");
        assert!(
            err.to_string().contains(want),
            "{servers}: got '{err}', want '{want}'"
        );
        assert_eq!(err.kind, ResourceKind::Gateway);
    }
    let no_spec = json!({"kind": "Gateway", "metadata": {"name": "x", "namespace": "n"}});
    assert_eq!(
        gateway(&no_spec).unwrap_err().to_string(),
        "Gateway n/x: spec is missing"
    );
    let no_name = json!({"kind": "Gateway", "metadata": {}, "spec": {}});
    assert!(
        gateway(&no_name)
            .unwrap_err()
            .reason
            .contains("metadata.name")
    );
}

#[test]
fn tls_settings_defaults() {
    let gw = gateway(&gw_doc(json!([http_server(json!({"tls": {
        "httpsRedirect": true, "minProtocolVersion": "TLS_AUTO", "credentialName": ""}}))])))
    .expect("converts");
    let tls = gw.servers[0].tls.clone().expect("tls");
    assert_eq!(tls.mode, TlsMode::Passthrough, "protobuf's unset enum");
    assert!(tls.https_redirect);
    assert_eq!((tls.min_version, tls.credential_name), (None, None));
}

#[test]
fn broken_virtual_services_are_rejected_naming_the_field() {
    let route = json!([{"destination": {"host": "a"}}]);
    let http = |entry: Value| vs_doc(json!({"hosts": ["*"], "http": [{"route": route}, entry]}));
    let cases = [
        (
            http(json!({"match": [{}, {"uri": {"exact": "/a", "prefix": "/"}}], "route": route})),
            "VirtualService default/x: http[1].match[1].uri: exactly one of exact, prefix, regex",
        ),
        (
            http(json!({"match": [{"uri": {}}], "route": route})),
            "http[1].match[0].uri: exactly one of exact, prefix, regex",
        ),
        (
            http(json!({"match": [{"headers": {"x": {"suffix": "a"}}}], "route": route})),
            "http[1].match[0].headers.x: exactly one of exact, prefix, regex",
        ),
        (
            http(json!({"match": [{"uri": {"prefix": 7}}], "route": route})),
            "http[1].match[0].uri.prefix: expected a string",
        ),
        (
            http(json!({"route": [{"destination": {"host": "a"}, "weight": -1}]})),
            "http[1].route[0].weight: -1 is negative",
        ),
        (
            http(json!({"route": [{"destination": {"host": "a", "port": {"number": 65536}}}]})),
            "http[1].route[0].destination.port.number: 65536 is out of range 1-65535",
        ),
        (
            http(json!({"route": [{"weight": 100}]})),
            "http[1].route[0].destination: is required",
        ),
        (
            http(json!({"route": route, "timeout": "5 seconds"})),
            "http[1].timeout: '5 seconds' is not a duration (like 5s, 1.5s or 100ms)",
        ),
        (
            http(json!({"route": route, "retries": {"attempts": 2, "perTryTimeout": "-1s"}})),
            "http[1].retries.perTryTimeout: '-1s' is not a duration",
        ),
        (
            http(json!({"match": [{"uri": {"prefix": "/"}}]})),
            "http[1]: one of route or redirect is required",
        ),
        (
            http(json!({"route": route, "redirect": {"uri": "/b"}})),
            "http[1]: route and redirect cannot be used together",
        ),
        (
            http(json!({"redirect": {"uri": "/b", "redirectCode": 200}})),
            "http[1].redirect.redirectCode: 200 is not a 3xx redirect status",
        ),
        (
            http(json!({"directResponse": {"status": 503}})),
            "http[1].directResponse: is not supported by the gateway",
        ),
        (
            vs_doc(json!({"http": [{"route": route}]})),
            "hosts: at least one host is required",
        ),
        (
            vs_doc(json!({"hosts": ["*"], "tcp": [{"match": [{"port": 5432}]}]})),
            "tcp[0].route: at least one destination is required",
        ),
        (
            vs_doc(json!({"hosts": ["*"], "tls": [{"route": route}]})),
            "tls[0].match: at least one match with sniHosts is required",
        ),
        (
            vs_doc(json!({"hosts": ["*"], "tls": [{"match": [{"port": 443}], "route": route}]})),
            "tls[0].match[0].sniHosts: at least one host is required",
        ),
        (
            vs_doc(json!({"hosts": ["*"], "http": {"route": route}})),
            "http: expected a list",
        ),
    ];
    for (doc, want) in cases {
        let err = virtual_service(&doc).expect_err("must be rejected");
        assert!(
            err.to_string().contains(want),
            "{doc}: got '{err}', want '{want}'"
        );
    }
}

#[test]
fn durations_in_protobuf_and_go_forms() {
    let ms = Duration::from_millis;
    for (text, want) in [
        ("5s", Some(ms(5000))),
        ("1.5s", Some(ms(1500))),
        ("0.1s", Some(ms(100))),
        ("100ms", Some(ms(100))),
        ("1m30s", Some(ms(90_000))),
        ("1h", Some(ms(3_600_000))),
        ("250us", Some(Duration::from_micros(250))),
        ("0.000000001s", Some(Duration::from_nanos(1))),
        (".5s", Some(ms(500))),
        ("", None),
        ("5", None),
        ("s", None),
        ("-1s", None),
        ("1.2.3s", None),
        ("5d", None),
        ("99999999999999999999999999999999999999999h", None),
    ] {
        assert_eq!(parse_duration(text), want, "{text:?}");
    }
}

#[test]
fn only_secrets_with_tls_keys_are_ingress_secrets() {
    let secret = |type_: &str, data: Value| -> Secret {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "n"}, "type": type_, "data": data}))
        .expect("valid Secret")
    };
    let ca = secret("Opaque", json!({"ca.crt": "Y2E="}));
    let spec = tls_secret(&ca)
        .expect("valid")
        .expect("ca-only secret kept");
    assert_eq!(spec.ca_pem.as_deref(), Some(&b"ca"[..]));
    assert_eq!((spec.cert_pem, spec.key_pem), (None, None));

    let password = secret("Opaque", json!({"password": "c2VjcmV0"}));
    assert_eq!(tls_secret(&password), Ok(None));
    let token = secret(
        "kubernetes.io/service-account-token",
        json!({"tls.crt": "Y2E="}),
    );
    assert_eq!(tls_secret(&token), Ok(None), "other types are not ours");
    let empty = secret("kubernetes.io/tls", json!({}));
    assert_eq!(tls_secret(&empty), Ok(None));
    let unnamed: Secret = serde_json::from_value(json!({"metadata": {}})).unwrap();
    assert!(tls_secret(&unnamed).is_err());
}

/// A VirtualService's lists are allocated at their length: collected through `Result` a one-item
/// list had room for 4 (a one-route VirtualService held 1.6 KB of routes for 400 B).
#[test]
fn converted_lists_hold_no_spare_room() {
    let vs = virtual_service(&vs_doc(json!({
        "hosts": ["a.example"],
        "gateways": ["edgemesh-gateway"],
        "http": [{"match": [{"uri": {"prefix": "/"}}], "route": [{"destination": {"host": "web"}}]}],
        "tcp": [{"match": [{"port": 9000}], "route": [{"destination": {"host": "db"}}]}],
    })))
    .expect("converts");
    assert_eq!((vs.hosts.capacity(), vs.gateways.capacity()), (1, 1));
    assert_eq!(vs.http.capacity(), 1);
    assert_eq!(vs.http[0].matches.capacity(), 1);
    assert_eq!(vs.http[0].route.capacity(), 1);
    assert_eq!(vs.tcp.capacity(), 1);
    assert_eq!(vs.tcp[0].matches.capacity(), 1);
    assert_eq!(vs.tcp[0].route.capacity(), 1);
}
