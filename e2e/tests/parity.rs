//! The test host checked against reality: one list of scenarios for
//! hello-world, mock and http-call, run on the test host (`gateway-testhost`)
//! and on a real Envoy 1.40 with a real httpbin, and the observable results
//! must be equal: the status, the body of a local answer, the headers the
//! upstream saw, and the headers of the answer the scenario watches.
//!
//! Both sides call the same httpbin as token service. On Envoy the requests
//! go to the routes of `envoy.yaml`; the test host gets the route and cluster
//! names Envoy would expose (`xds.route_name`, `xds.cluster_name`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use e2e::{http, Gateway};
use gateway_testhost::{HttpUpstream, Reply, TestHost};
use std::collections::BTreeMap;

struct Scenario {
    name: &'static str,
    plugin: &'static str,
    config: &'static str,
    /// The request's path on the gateway; the test host sends what reaches the plugin.
    path: &'static str,
    /// The route of `envoy.yaml` that path takes.
    route: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    /// Upstream request headers compared (value, or absent).
    watch: &'static [&'static str],
    /// Response headers compared.
    watch_response: &'static [&'static str],
    /// The status and local answer (if any) expected of both, so that
    /// agreeing on the wrong thing fails too.
    expect: (u16, Option<&'static str>),
}

fn scenarios() -> Vec<Scenario> {
    let s = |name, plugin, config, path, route, expect| Scenario {
        name,
        plugin,
        config,
        path,
        route,
        headers: &[],
        body: "",
        watch: &["hello", "x-token"],
        watch_response: &[],
        expect,
    };
    vec![
        s("hello-world answers", "hello-world", "{}", "/hello-world", "hello-world", (200, Some("hello world"))),
        Scenario {
            body: "some body",
            ..s(
                "hello-world with a body",
                "hello-world",
                "{}",
                "/hello-world",
                "hello-world",
                (200, Some("hello world")),
            )
        },
        s(
            "mock adds hello: world (Higress Go plugin guide)",
            "mock",
            r#"{"mockEnable": false}"#,
            "/anything",
            "httpbin",
            (200, None),
        ),
        Scenario {
            headers: &[("hello", "there")],
            ..s(
                "mock adds a second hello value",
                "mock",
                r#"{"mockEnable": false}"#,
                "/anything",
                "httpbin",
                (200, None),
            )
        },
        s(
            "mock answers (Higress Go plugin guide)",
            "mock",
            r#"{"mockEnable": true}"#,
            "/anything",
            "httpbin",
            (200, Some("hello world")),
        ),
        Scenario {
            watch_response: &["content-type", "x-mock"],
            ..s(
                "mock answers with its own status, headers and body",
                "mock",
                r#"{"mockEnable": true, "status": 418, "headers": {"content-type": "application/json", "x-mock": "1"}, "body": "{\"teapot\": true}"}"#,
                "/anything",
                "httpbin",
                (418, Some("{\"teapot\": true}")),
            )
        },
        s(
            "mock rule for one route, on that route",
            "mock",
            r#"{"_rules_": [{"_match_route_": ["httpbin"], "mockEnable": true}]}"#,
            "/anything",
            "httpbin",
            (200, Some("hello world")),
        ),
        s(
            "mock rule for another route",
            "mock",
            r#"{"_rules_": [{"_match_route_": ["elsewhere"], "mockEnable": true}]}"#,
            "/anything",
            "httpbin",
            (200, None),
        ),
        Scenario {
            headers: &[("host", "api.example.com")],
            ..s(
                "mock rule for a domain, matching",
                "mock",
                r#"{"mockEnable": false, "_rules_": [{"_match_domain_": ["*.example.com"], "mockEnable": true}]}"#,
                "/anything",
                "httpbin",
                (200, Some("hello world")),
            )
        },
        Scenario {
            headers: &[("host", "example.org")],
            ..s(
                "mock rule for a domain, not matching",
                "mock",
                r#"{"mockEnable": false, "_rules_": [{"_match_domain_": ["*.example.com"], "mockEnable": true}]}"#,
                "/anything",
                "httpbin",
                (200, None),
            )
        },
        Scenario {
            headers: &[("x-token", "forged")],
            ..s(
                "http-call injects the token, replacing the client's",
                "http-call",
                concat!(
                    "{",
                    r#""tokenHeader": "x-token", "requestPath": "/response-headers?x-token=parity-token""#,
                    r#", "serviceName": "httpbin.dns", "servicePort": 80}"#
                ),
                "/http-call/anything",
                "http-call",
                (200, None),
            )
        },
        s(
            "http-call: the token service answers 503",
            "http-call",
            r#"{"tokenHeader": "x-token", "requestPath": "/status/503", "serviceName": "httpbin.dns", "servicePort": 80}"#,
            "/http-call/anything",
            "http-call",
            (500, Some("http call failed")),
        ),
        s(
            "http-call: 200 without the token header",
            "http-call",
            r#"{"tokenHeader": "x-token", "requestPath": "/status/200", "serviceName": "httpbin.dns", "servicePort": 80}"#,
            "/http-call/anything",
            "http-call",
            (200, None),
        ),
        s(
            "http-call: the token service is too slow",
            "http-call",
            r#"{"tokenHeader": "x-token", "requestPath": "/delay/2", "serviceName": "httpbin.dns", "servicePort": 80, "timeout": 300}"#,
            "/http-call/anything",
            "http-call",
            (500, Some("http call failed")),
        ),
        s(
            "http-call: no such cluster",
            "http-call",
            r#"{"tokenHeader": "x-token", "requestPath": "/token", "serviceName": "missing.dns", "servicePort": 80}"#,
            "/http-call/anything",
            "http-call",
            (200, None),
        ),
        Scenario {
            body: "posted body",
            ..s(
                "http-call holds a request with a body until the token comes",
                "http-call",
                concat!(
                    "{",
                    r#""tokenHeader": "x-token", "requestPath": "/response-headers?x-token=parity-token""#,
                    r#", "serviceName": "httpbin.dns", "servicePort": 80}"#
                ),
                "/http-call/anything",
                "http-call",
                (200, None),
            )
        },
    ]
}

/// What a client and an upstream could see of one exchange.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    status: u16,
    /// The body of the plugin's own answer; `None` when the upstream answered.
    local_body: Option<String>,
    /// Watched headers as the upstream received them (several values joined with `,`).
    upstream: Option<BTreeMap<String, Option<String>>>,
    /// Watched response headers.
    response: BTreeMap<String, Option<String>>,
}

fn on_envoy(gateway: &Gateway, scenario: &Scenario) -> Observed {
    let mut request = if scenario.body.is_empty() {
        http::get(&gateway.url(scenario.path))
    } else {
        http::post(&gateway.url(scenario.path), scenario.body)
    };
    for (name, value) in scenario.headers {
        request = request.header(name, value);
    }
    let resp = request.send().unwrap();
    let response =
        scenario.watch_response.iter().map(|h| (h.to_string(), resp.header(h).map(str::to_string))).collect();
    match resp.echoed_headers() {
        // httpbin's echo: the request reached the upstream.
        Ok(echoed) => {
            let upstream = scenario
                .watch
                .iter()
                .map(|name| {
                    let value = echoed.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
                    (name.to_string(), value.and_then(|(_, v)| v.as_str()).map(str::to_string))
                })
                .collect();
            Observed { status: resp.status, local_body: None, upstream: Some(upstream), response }
        }
        Err(_) => Observed { status: resp.status, local_body: Some(resp.text()), upstream: None, response },
    }
}

fn on_test_host(httpbin_port: u16, scenario: &Scenario) -> Observed {
    let module = e2e::paths::dist_dir().join(format!("{}.wasm", scenario.plugin));
    let host = TestHost::load(&module)
        .unwrap()
        .envoy()
        .http_upstream("outbound|80||httpbin.dns", HttpUpstream::forward(format!("127.0.0.1:{httpbin_port}")))
        .config(scenario.config)
        .unwrap();
    let mut request = host
        .request()
        .path(scenario.path)
        .property("xds.route_name", scenario.route)
        .property("xds.cluster_name", "httpbin")
        .upstream(Reply::new(200));
    for (name, value) in scenario.headers {
        request =
            if name.eq_ignore_ascii_case("host") { request.authority(value) } else { request.header(name, value) };
    }
    if !scenario.body.is_empty() {
        request = request.method("POST").body(scenario.body);
    }
    let out = request.send().unwrap();
    assert!(!out.stalled(), "{}: stalled on the test host", scenario.name);
    let status = out.status().unwrap();
    let response =
        scenario.watch_response.iter().map(|h| (h.to_string(), out.response().and_then(|r| r.header(h)))).collect();
    if let Some(local) = out.local_response() {
        return Observed { status, local_body: Some(local.body_text()), upstream: None, response };
    }
    let upstream = out.upstream_request().expect("neither answered nor passed on");
    let watched = scenario
        .watch
        .iter()
        .map(|name| {
            let values = upstream.headers.get_all(name);
            (name.to_string(), (!values.is_empty()).then(|| values.join(",")))
        })
        .collect();
    Observed { status, local_body: None, upstream: Some(watched), response }
}

#[test]
fn the_test_host_and_envoy_agree_on_every_scenario() {
    let mut differences = Vec::new();
    for scenario in scenarios() {
        let gateway = Gateway::with_plugin_config(scenario.plugin, scenario.config).unwrap();
        let envoy = on_envoy(&gateway, &scenario);
        let test_host = on_test_host(gateway.httpbin.port(), &scenario);
        let expected = (scenario.expect.0, scenario.expect.1.map(str::to_string));
        if (envoy.status, envoy.local_body.clone()) != expected {
            differences.push(format!("{}: Envoy gave {envoy:?}, the scenario expects {expected:?}", scenario.name));
        }
        if envoy != test_host {
            differences.push(format!("{}:\n  envoy:     {envoy:?}\n  test host: {test_host:?}", scenario.name));
        }
    }
    assert!(differences.is_empty(), "the test host differs from Envoy:\n{}", differences.join("\n"));
}
