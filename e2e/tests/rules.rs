//! `_rules_` on a real Envoy: the route's name, the request's domain and the
//! upstream cluster as Envoy 1.40 shows them to a plugin (`xds.route_name`,
//! `:authority`, `xds.cluster_name`), in the request headers phase.
//!
//! mock shows which config a request got: a rule answers `200 <rule's body>`;
//! the global config (mockEnable false) lets httpbin echo `Hello: world`;
//! with no global config, a request no rule matches is left alone (no `Hello`).

use e2e::envoy_config::route;
use e2e::{http, EnvoyConfig, Gateway};
use serde_json::json;

/// What mock did to `resp`: `"answered <body>"`, `"global"` (httpbin echoed
/// `Hello: world`) or `"untouched"`.
fn outcome(resp: e2e::Result<http::Response>) -> e2e::Result<String> {
    let resp = resp?;
    if resp.header("server") == Some("envoy") && resp.header("access-control-allow-origin").is_none() {
        return Ok(format!("answered {}", resp.text()));
    }
    assert_eq!(resp.status, 200, "{}", resp.text());
    Ok(match resp.echoed_header("Hello")?.as_deref() {
        Some("world") => "global".to_string(),
        None => "untouched".to_string(),
        Some(other) => format!("Hello: {other}"),
    })
}

#[test]
fn route_rule_changes_only_its_route() {
    let gw = Gateway::with_plugin_config(
        "mock",
        r#"{"mockEnable": false, "_rules_": [{"_match_route_": ["mock-answer"], "mockEnable": true, "body": "route rule"}]}"#,
    )
    .unwrap();
    assert_eq!(outcome(gw.get("/mock/x", &[])).unwrap(), "answered route rule");
    assert_eq!(outcome(gw.get("/get", &[])).unwrap(), "global");

    // Rules only: elsewhere mock leaves the request alone.
    let gw =
        Gateway::with_plugin_config("mock", r#"{"_rules_": [{"_match_route_": ["mock-answer"], "mockEnable": true}]}"#)
            .unwrap();
    assert_eq!(outcome(gw.get("/mock/x", &[])).unwrap(), "answered hello world");
    assert_eq!(outcome(gw.get("/get", &[])).unwrap(), "untouched");
}

#[test]
fn domain_rule_changes_only_its_domains() {
    let gw = Gateway::with_plugin_config(
        "mock",
        r#"{"_rules_": [
            {"_match_domain_": ["*.example.com"], "mockEnable": true, "body": "suffix"},
            {"_match_domain_": ["www.*"], "mockEnable": true, "body": "prefix"},
            {"_match_domain_": ["exact.org"], "mockEnable": true, "body": "exact"}]}"#,
    )
    .unwrap();
    let with_host = |host: &str| outcome(gw.get("/get", &[("host", host)])).unwrap();
    assert_eq!(with_host("api.example.com"), "answered suffix");
    assert_eq!(with_host("api.example.com:8080"), "answered suffix");
    assert_eq!(with_host("API.Example.COM"), "answered suffix");
    assert_eq!(with_host("www.abc.net"), "answered prefix");
    assert_eq!(with_host("exact.org"), "answered exact");
    assert_eq!(with_host("exact.org.evil"), "untouched");
    assert_eq!(with_host("example.org"), "untouched");
    assert_eq!(with_host("127.0.0.1"), "untouched");
}

#[test]
fn route_prefix_rule_changes_only_routes_with_that_prefix() {
    let mut config = EnvoyConfig::load().unwrap();
    config
        .plugin_configuration(
            "mock",
            r#"{"_rules_": [{"_match_route_prefix_": ["api-"], "mockEnable": true, "body": "api"}]}"#,
        )
        .unwrap();
    for (name, prefix) in [("api-users", "/users/"), ("api-orders", "/orders/"), ("web-api-x", "/web/")] {
        let mut r = route(name, prefix, "httpbin");
        r["route"]["prefix_rewrite"] = json!("/");
        config.add_route(r).unwrap();
    }
    let gw = Gateway::start_with(config).unwrap();
    assert_eq!(outcome(gw.get("/users/get", &[])).unwrap(), "answered api");
    assert_eq!(outcome(gw.get("/orders/get", &[])).unwrap(), "answered api");
    assert_eq!(outcome(gw.get("/web/get", &[])).unwrap(), "untouched");
    assert_eq!(outcome(gw.get("/get", &[])).unwrap(), "untouched");
}

#[test]
fn service_rule_matches_the_upstream_cluster_name() {
    let mut config = EnvoyConfig::load().unwrap();
    config
        .plugin_configuration(
            "mock",
            r#"{"_rules_": [
                {"_match_service_": ["httpbin.dns:81"], "mockEnable": true, "body": "wrong port"},
                {"_match_service_": ["httpbin.dns"], "mockEnable": true, "body": "service"}]}"#,
        )
        .unwrap();
    // A route to the Higress-named cluster `outbound|80||httpbin.dns`.
    let mut r = route("via-dns", "/via-dns/", "outbound|80||httpbin.dns");
    r["route"]["prefix_rewrite"] = json!("/");
    config.add_route(r).unwrap();
    let gw = Gateway::start_with(config).unwrap();
    assert_eq!(outcome(gw.get("/via-dns/get", &[])).unwrap(), "answered service");
    // The cluster `httpbin` is not a Higress name (`outbound|port|subset|name`): no service matches it.
    assert_eq!(outcome(gw.get("/get", &[])).unwrap(), "untouched");

    // `name:port` compares the port too.
    let mut config = EnvoyConfig::load().unwrap();
    config
        .plugin_configuration(
            "mock",
            r#"{"_rules_": [{"_match_service_": ["httpbin.dns:80"], "mockEnable": true, "body": "port 80"}]}"#,
        )
        .unwrap();
    let mut r = route("via-dns", "/via-dns/", "outbound|80||httpbin.dns");
    r["route"]["prefix_rewrite"] = json!("/");
    config.add_route(r).unwrap();
    let gw = Gateway::start_with(config).unwrap();
    assert_eq!(outcome(gw.get("/via-dns/get", &[])).unwrap(), "answered port 80");
}

#[test]
fn route_and_service_rule_needs_both() {
    let mut config = EnvoyConfig::load().unwrap();
    config
        .plugin_configuration(
            "mock",
            r#"{"_rules_": [{"_match_route_": ["via-dns", "httpbin"], "_match_service_": ["httpbin.dns"], "mockEnable": true, "body": "both"}]}"#,
        )
        .unwrap();
    let mut r = route("via-dns", "/via-dns/", "outbound|80||httpbin.dns");
    r["route"]["prefix_rewrite"] = json!("/");
    config.add_route(r).unwrap();
    let gw = Gateway::start_with(config).unwrap();
    assert_eq!(outcome(gw.get("/via-dns/get", &[])).unwrap(), "answered both");
    // Route `httpbin` matches by name, but its cluster is not httpbin.dns.
    assert_eq!(outcome(gw.get("/get", &[])).unwrap(), "untouched");
}
