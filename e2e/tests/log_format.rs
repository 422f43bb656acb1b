//! Plugin log lines on Envoy: `[<plugin>] [<_plugin_id_ or nil>] [<x-request-id or nil>] message`,
//! under Envoy's `wasm` component.

use e2e::process::wait_for;
use e2e::Gateway;
use std::time::Duration;

const ERROR: &str = "http call to cluster `outbound|80||missing.dns` not dispatched: the host refused it \
                     (BadArgument: unknown cluster or bad headers); letting the request through without a token";

#[test]
fn lines_carry_plugin_id_and_request_id() {
    let gw = Gateway::with_plugin_config(
        "http-call",
        r#"{"_plugin_id_": "token-injector", "tokenHeader": "x-token", "requestPath": "/p",
            "serviceName": "missing.dns", "servicePort": 80}"#,
    )
    .unwrap();

    // The request id the client sent.
    let resp = gw.get("/http-call/get", &[("x-request-id", "e2e-log-1")]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    gw.envoy.wait_for_plugin_line(&format!("[http-call] [token-injector] [e2e-log-1] {ERROR}")).unwrap();

    // Without one, the id Envoy makes up: a UUID.
    let resp = gw.get("/http-call/get", &[]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let prefix = "[http-call] [token-injector] [";
    let line = wait_for(Duration::from_secs(30), || {
        let lines = gw.envoy.plugin_lines();
        Ok(lines.into_iter().find(|l| l.starts_with(prefix) && l.ends_with(ERROR) && !l.contains("e2e-log-1")))
    })
    .unwrap()
    .unwrap_or_else(|| panic!("no line for the request without an id:\n{}", gw.envoy.log()));
    let id = line.trim_start_matches(prefix).split(']').next().unwrap();
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "not a UUID: {line}");
    assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "not a UUID: {line}");

    // Lines outside a request have no request id; a plugin without `_plugin_id_` says nil.
    let lines = gw.envoy.plugin_lines();
    assert!(lines.contains(&"[http-call] [token-injector] [nil] configured".to_string()), "{lines:?}");
    assert!(lines.contains(&"[mock] [nil] [nil] configured".to_string()), "{lines:?}");
}

#[test]
fn lines_without_plugin_id_say_nil() {
    let gw = Gateway::with_plugin_config(
        "http-call",
        r#"{"tokenHeader": "x-token", "requestPath": "/p", "serviceName": "missing.dns", "servicePort": 80}"#,
    )
    .unwrap();
    let resp = gw.get("/http-call/get", &[("x-request-id", "e2e-log-2")]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    gw.envoy.wait_for_plugin_line(&format!("[http-call] [nil] [e2e-log-2] {ERROR}")).unwrap();
}
