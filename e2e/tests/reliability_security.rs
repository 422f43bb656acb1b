//! Reliability, secrets: http-call's token never reaches Envoy's log from
//! the plugin, with every Envoy component (the plugins included) at `trace`,
//! on the token's happy path and on each failure path. What Envoy itself
//! prints at that level (its own header dumps) is counted and reported too.
//! Every case runs on the build `E2E_BUILD` names (`.wasm` or `.so`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use e2e::envoy_config::EnvoyConfig;
use e2e::reliability::{self, Case, TokenMode, TokenService};
use e2e::{Envoy, Httpbin, Upstreams};
use serde_json::json;

#[test]
fn the_token_never_reaches_envoys_log_at_trace() {
    let token = "tOkEn-5ecret-8c1d0f";
    let mut service = TokenService::start(TokenMode::Token(token.into())).unwrap();
    let httpbin = Httpbin::start().unwrap();
    let mut config = EnvoyConfig::load().unwrap();
    config.add_cluster(service.cluster("outbound|80||token.dns"));
    let plugin = json!({"tokenHeader": "x-token", "requestPath": "/token", "serviceName": "token.dns",
                        "servicePort": 80, "timeout": 500});
    config.plugin_configuration("http-call", &plugin.to_string()).unwrap();
    let envoy = Envoy::start_with_log_level(&config, &Upstreams::httpbin(httpbin.port()), "trace").unwrap();
    let case = Case::start(
        "security",
        "http-call's token in Envoy's log, every component at trace (token received, token service 503, 200 \
         without token, service stopped)",
        "no plugin line holds the token (its length only, at debug); Envoy's own lines reported",
    );
    let get = |id: &str| e2e::http::get(&envoy.url("/http-call/headers")).header("x-request-id", id).send().unwrap();
    let mut statuses = Vec::new();
    for i in 0..5 {
        let resp = get(&format!("sec-{i}"));
        assert_eq!(resp.echoed_header("X-Token").unwrap().as_deref(), Some(token));
        statuses.push(resp.status);
    }
    for (mode, id) in [(TokenMode::Status(503), "sec-503"), (TokenMode::NoHeader, "sec-nohdr")] {
        service.switch(mode).unwrap();
        statuses.push(get(id).status);
    }
    service.stop();
    statuses.push(get("sec-stopped").status);
    let redacted = format!("[http-call] [nil] [sec-0] token received in x-token: <redacted, {} bytes>", token.len());
    let redacted_logged = envoy.wait_for_plugin_line(&redacted).is_ok();
    let log = envoy.log();
    let plugin_lines = e2e::envoy::plugin_lines(&log);
    let plugin_leaks = plugin_lines.iter().filter(|l| l.contains(token)).count();
    // Envoy's own lines with the token, by component (`[..][debug][router] ...`).
    let mut envoy_leaks: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    // A header dump spans lines: a continuation line belongs to the last line with a prefix.
    // The plugins' own lines (counted above) are left out; the rest is Envoy's.
    let mut component = String::from("?");
    let mut from_plugin = false;
    for line in log.lines() {
        if line.starts_with('[') {
            component = line.split("][").nth(3).map(|c| c.split(']').next().unwrap_or(c)).unwrap_or("?").to_string();
            from_plugin = !e2e::envoy::plugin_lines(line).is_empty();
        }
        if line.contains(token) && !from_plugin {
            *envoy_leaks.entry(component.clone()).or_default() += 1;
        }
    }
    let text = format!(
        "statuses {statuses:?}; {} plugin lines, {plugin_leaks} with the token; redacted debug line present: \
         {redacted_logged}; Envoy's own lines with it, by component: {envoy_leaks:?} (Envoy dumps header maps at \
         debug/trace: keep production at info or above)",
        plugin_lines.len()
    );
    let ok = plugin_leaks == 0 && redacted_logged && !plugin_lines.is_empty();
    assert!(case.finish(statuses.len() as u64, &text, ok), "{text}");
    let trouble = reliability::trap_lines(&log);
    assert!(trouble.is_empty(), "{trouble:?}");
}

#[test]
fn a_client_chosen_request_id_in_plugin_log_lines() {
    let mut service = TokenService::start(TokenMode::Status(503)).unwrap();
    let mut config = EnvoyConfig::load().unwrap();
    config.add_cluster(service.cluster("outbound|80||token.dns"));
    let plugin = json!({"tokenHeader": "x-token", "requestPath": "/token", "serviceName": "token.dns",
                        "servicePort": 80, "timeout": 500});
    config.plugin_configuration("http-call", &plugin.to_string()).unwrap();
    let envoy = Envoy::start(&config, &Upstreams::httpbin(service.port())).unwrap();
    let case = Case::start(
        "security",
        "a client's own x-request-id (8 KB, with a fake log prefix) on a request whose token call fails (the \
         plugin logs an error line with the request id); Envoy refuses control bytes (an ANSI escape: 400)",
        "one log line per event (no line can be split: Envoy refuses CR/LF); its length is reported",
    );
    let escape = reliability::get_request("/http-call/headers", &[("x-request-id", b"\x1b[31mred")]);
    let escape_status = reliability::raw_requests(envoy.port(), &escape, 1).unwrap().remove(0).status;
    let id = format!("[http-call] [nil] [forged] all good {}", "r".repeat(8 * 1024));
    let request = reliability::get_request("/http-call/headers", &[("x-request-id", id.as_bytes())]);
    let resp = reliability::raw_requests(envoy.port(), &request, 1).unwrap().remove(0);
    let line = envoy.wait_for_log("http call failed, status: 503").unwrap_or_default();
    let lines = envoy.log_lines("http call failed, status: 503");
    let forged_alone = envoy.log().lines().any(|l| l.starts_with("[http-call] [nil] [forged]"));
    let text = format!(
        "ANSI escape in the id: {escape_status}; 8 KB id: status {}, {} error line(s), {} bytes long; a line of \
         its own starting with the forged prefix: {forged_alone} (the SDK puts the client's id in its lines \
         verbatim and unbounded, up to Envoy's header limit)",
        resp.status,
        lines.len(),
        line.len(),
    );
    let ok = escape_status == 400 && resp.status == 500 && lines.len() == 1 && !forged_alone;
    assert!(case.finish(1, &text, ok), "{text}");
    service.stop();
}

#[test]
fn mocked_framing_headers_cannot_desync_the_response() {
    let config = r#"{"mockEnable": true, "body": "hello world",
                     "headers": {"content-length": "5", "transfer-encoding": "chunked", "connection": "close", "x-a": "b"}}"#;
    let gw = e2e::Gateway::with_plugin_config("mock", config).unwrap();
    let case = Case::start(
        "security",
        "mock configured to answer with framing headers of its own (content-length: 5, transfer-encoding: \
         chunked, connection: close) on a keep-alive connection, 2 requests pipelined",
        "both answers well framed (Envoy's own content-length), the connection stays usable",
    );
    let wire = [reliability::get_request("/get", &[]), reliability::get_request("/get", &[])].concat();
    let answers = reliability::raw_requests(gw.envoy.port(), &wire, 2).unwrap();
    let seen: Vec<String> = answers
        .iter()
        .map(|a| {
            format!(
                "{} {:?} content-length {:?} transfer-encoding {:?} x-a {:?}",
                a.status,
                a.text(),
                a.header("content-length"),
                a.header("transfer-encoding"),
                a.header("x-a")
            )
        })
        .collect();
    let ok = answers.iter().all(|a| {
        a.status == 200
            && a.text() == "hello world"
            && a.header("content-length").as_deref() == Some("11")
            && a.header("transfer-encoding").is_none()
            && a.header("x-a").as_deref() == Some("b")
    });
    let text = seen.join("; ");
    assert!(case.finish(2, &text, ok), "{text}");
}
