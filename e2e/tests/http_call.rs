//! http-call on a real Envoy: the token it fetches from httpbin, and each way the call can fail.

use e2e::{http, Gateway};
use serde_json::json;

/// A timeout no call to a local httpbin reaches, even on a loaded machine.
const GENEROUS_MS: u32 = 10_000;

/// http-call's configuration of `envoy.yaml`, with `requestPath`, `timeout`
/// and `serviceName` changed as given.
fn http_call_config(request_path: &str, timeout_ms: u32, service: &str) -> String {
    json!({
        "tokenHeader": "x-token",
        "requestPath": request_path,
        "serviceName": service,
        "servicePort": 80,
        "timeout": timeout_ms,
    })
    .to_string()
}

#[test]
fn token_from_the_service_replaces_the_clients() {
    let config = http_call_config("/response-headers?x-token=t0k3n-from-httpbin", GENEROUS_MS, "httpbin.dns");
    let gw = Gateway::with_plugin_config("http-call", &config).unwrap();

    let resp = gw.get("/http-call/headers", &[]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.echoed_header("X-Token").unwrap().as_deref(), Some("t0k3n-from-httpbin"));

    // A token the client sends is replaced, not kept beside the new one
    // (httpbin would echo two values as "a,b").
    let resp = gw.get("/http-call/headers", &[("x-token", "forged-by-client")]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.echoed_header("X-Token").unwrap().as_deref(), Some("t0k3n-from-httpbin"));
}

#[test]
fn token_service_error_answers_500() {
    let gw =
        Gateway::with_plugin_config("http-call", &http_call_config("/status/503", GENEROUS_MS, "httpbin.dns")).unwrap();
    let resp = gw.get("/http-call/headers", &[("x-request-id", "e2e-503")]).unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (500, "http call failed"));
    gw.envoy.wait_for_plugin_line("[http-call] [nil] [e2e-503] http call failed, status: 503").unwrap();
}

#[test]
fn token_service_past_the_timeout_answers_500() {
    // httpbin takes a second; the call may take 200 ms. Envoy calls back with a 504.
    let gw = Gateway::with_plugin_config("http-call", &http_call_config("/delay/1", 200, "httpbin.dns")).unwrap();
    let resp = gw.get("/http-call/headers", &[("x-request-id", "e2e-timeout")]).unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (500, "http call failed"));
    gw.envoy.wait_for_plugin_line("[http-call] [nil] [e2e-timeout] http call failed, status: 504").unwrap();
}

#[test]
fn unknown_cluster_lets_the_request_through_and_logs() {
    let config = http_call_config("/response-headers?x-token=never-fetched", GENEROUS_MS, "missing.dns");
    let gw = Gateway::with_plugin_config("http-call", &config).unwrap();
    let resp = gw.get("/http-call/headers", &[("x-request-id", "e2e-no-cluster")]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.echoed_header("X-Token").unwrap(), None);
    gw.envoy
        .wait_for_plugin_line(
            "[http-call] [nil] [e2e-no-cluster] http call to cluster `outbound|80||missing.dns` not dispatched: \
             the host refused it (BadArgument: unknown cluster or bad headers); letting the request through without a token",
        )
        .unwrap();
}

#[test]
fn the_token_never_reaches_envoys_log() {
    let token = "sEcReT-e2e-7f3a9c";
    let config = http_call_config(&format!("/response-headers?x-token={token}"), GENEROUS_MS, "httpbin.dns");
    let gw = Gateway::with_plugin_config("http-call", &config).unwrap();
    let resp = gw.get("/http-call/headers", &[("x-request-id", "e2e-secret")]).unwrap();
    assert_eq!(resp.echoed_header("X-Token").unwrap().as_deref(), Some(token));
    // The debug line about the token is there (so debug logging is on), with its length only.
    gw.envoy
        .wait_for_plugin_line(&format!(
            "[http-call] [nil] [e2e-secret] token received in x-token: <redacted, {} bytes>",
            token.len()
        ))
        .unwrap();
    let log = gw.envoy.log();
    assert!(!log.contains(token), "the token is in Envoy's log:\n{log}");
}

#[test]
fn a_request_body_waits_for_the_token_and_arrives_whole() {
    let config = http_call_config("/response-headers?x-token=body-token", GENEROUS_MS, "httpbin.dns");
    let gw = Gateway::with_plugin_config("http-call", &config).unwrap();
    let body = "x".repeat(100_000);
    let resp =
        http::post(&gw.url("/http-call/post"), body.clone()).header("content-type", "text/plain").send().unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echo = resp.json().unwrap();
    assert_eq!(echo["data"], body.as_str());
    assert_eq!(echo["headers"]["X-Token"], "body-token");
}

#[test]
fn a_200_without_the_token_header_lets_the_request_through() {
    let gw =
        Gateway::with_plugin_config("http-call", &http_call_config("/status/200", GENEROUS_MS, "httpbin.dns")).unwrap();
    let resp = gw.get("/http-call/headers", &[("x-request-id", "e2e-no-token")]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.echoed_header("X-Token").unwrap(), None);
    gw.envoy
        .wait_for_plugin_line("[http-call] [nil] [e2e-no-token] token service answered 200 without x-token")
        .unwrap();
}
