//! The Higress Go plugin guide's examples and their results, on `envoy.yaml` as `docker compose` users run it.

use e2e::{EnvoyConfig, Gateway};
use serde_json::json;

/// A response's headers but `date`, sorted.
fn without_date(headers: &[(String, String)]) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = headers.iter().filter(|(name, _)| name != "date").cloned().collect();
    headers.sort();
    headers
}

/// `list` as owned pairs, sorted.
fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    pairs.sort();
    pairs
}

#[test]
fn every_route_of_envoy_yaml() {
    // envoy.yaml as it is, but for http-call's timeout: 500 ms is plenty for
    // httpbin, but not a promise on a loaded machine.
    let mut config = EnvoyConfig::load().unwrap();
    config.patch_plugin_configuration("http-call", json!({"timeout": 10_000})).unwrap();
    let gw = Gateway::start_with(config).unwrap();

    // Default route: mock (mockEnable false) adds `hello: world`, httpbin echoes it.
    let resp = gw.get("/get", &[]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.echoed_header("Hello").unwrap().as_deref(), Some("world"));

    // `/mock/`: the `_rules_` entry for route `mock-answer` turns mockEnable on.
    let resp = gw.get("/mock/answer", &[]).unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "hello world"));
    assert_eq!(
        without_date(&resp.headers),
        pairs(&[("content-length", "11"), ("content-type", "text/plain"), ("server", "envoy")])
    );

    // `/hello-world`: hello-world is enabled on this route only (it would be a 404 otherwise).
    let resp = gw.get("/hello-world", &[]).unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "hello world"));

    // `/http-call/`: http-call injects the token; mock is disabled on this route.
    let resp = gw.get("/http-call/headers", &[]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echoed = resp.echoed_headers().unwrap();
    assert_eq!(echoed.get("X-Token").and_then(|v| v.as_str()), Some("demo-token"));
    assert_eq!(echoed.get("Hello"), None, "mock must be off on the http-call route: {echoed:?}");

    // `/redis-rate-limit/`: the filter only loads on Higress, so here the route is plain httpbin.
    let resp = gw.get("/redis-rate-limit/get", &[]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.echoed_header("Hello").unwrap(), None);

    // hello-world stays off where it is not enabled: httpbin answers.
    let resp = gw.get("/anything/hello-world", &[]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json().unwrap()["method"], "GET");
}

#[test]
fn upstream_envoy_drops_only_the_higress_plugin() {
    let config = EnvoyConfig::load().unwrap();
    let removed: Vec<&str> = config.removed().iter().map(|r| r.filter.as_str()).collect();
    assert_eq!(removed, ["redis-rate-limit"]);
}

#[test]
fn mock_answers_with_configured_status_headers_and_body() {
    let gw = Gateway::with_plugin_config(
        "mock",
        r#"{"mockEnable": true, "status": 503,
            "headers": {"content-type": "application/json", "retry-after": "120"},
            "body": "{\"error\": \"down for maintenance\"}"}"#,
    )
    .unwrap();
    let resp = gw.get("/get", &[]).unwrap();
    assert_eq!(resp.status, 503);
    assert_eq!(resp.text(), r#"{"error": "down for maintenance"}"#);
    assert_eq!(
        without_date(&resp.headers),
        pairs(&[
            ("content-length", "33"),
            ("content-type", "application/json"),
            ("retry-after", "120"),
            ("server", "envoy")
        ])
    );
}
