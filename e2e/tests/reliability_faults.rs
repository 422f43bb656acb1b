//! Reliability, faults on real processes: http-call's token service stopped,
//! slow, failing, tokenless and huge, then back, all under one Envoy that is
//! never restarted; and plugin configurations replaced (and refused) through
//! a file-based LDS while a client keeps sending.
//!
//! Both run on the build `E2E_BUILD` names (the LDS listener loads
//! `dist/mock.so` through the dynamic module filter on the native run).
//!
//! Each case writes its row of `RELIABILITY.md` (see `e2e::reliability`).

// Test code: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use e2e::envoy_config::EnvoyConfig;
use e2e::reliability::{self, Case, TokenMode, TokenService};
use e2e::{Envoy, Gateway, Httpbin, Upstreams};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Requests sent per fault.
const PER_FAULT: u64 = 20;

/// The gateway of `envoy.yaml` with http-call fetching `/token` from `token`
/// (cluster `outbound|80||token.dns`) with a 500 ms timeout.
fn gateway_with_token_service(token: &TokenService) -> Gateway {
    let mut config = EnvoyConfig::load().unwrap();
    config.add_cluster(token.cluster("outbound|80||token.dns"));
    config
        .plugin_configuration(
            "http-call",
            &json!({
                "tokenHeader": "x-token",
                "requestPath": "/token",
                "serviceName": "token.dns",
                "servicePort": 80,
                "timeout": 500,
            })
            .to_string(),
        )
        .unwrap();
    Gateway::start_with(config).unwrap()
}

/// What `n` requests to `/http-call/headers` got: (status, echoed X-Token or the body).
fn outcomes(gw: &Gateway, n: u64, request_id: &str) -> Vec<(u16, String)> {
    (0..n)
        .map(|i| {
            let resp = gw.get("/http-call/headers", &[("x-request-id", &format!("{request_id}-{i}"))]).unwrap();
            let what = if resp.status == 200 {
                resp.echoed_header("X-Token").unwrap().map(|t| format!("token {t}")).unwrap_or("no token".into())
            } else {
                resp.text()
            };
            (resp.status, what)
        })
        .collect()
}

/// `20 x 500 http call failed`.
fn tally(outcomes: &[(u16, String)]) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for (status, what) in outcomes {
        *counts.entry(format!("{status} {what}")).or_default() += 1;
    }
    counts.iter().map(|(what, n)| format!("{n} x {}", what.trim())).collect::<Vec<_>>().join(", ")
}

fn all_are(outcomes: &[(u16, String)], status: u16, what: &str) -> bool {
    outcomes.iter().all(|(s, w)| *s == status && w == what)
}

#[test]
fn http_call_survives_every_token_service_fault_and_recovers_without_restart() {
    let mut token = TokenService::start(TokenMode::Token("tok-before".into())).unwrap();
    let gw = gateway_with_token_service(&token);
    let pid = gw.envoy.pid();
    let before = reliability::wasm_stats(&gw.envoy).unwrap();

    let baseline = outcomes(&gw, PER_FAULT, "base");
    assert!(all_are(&baseline, 200, "token tok-before"), "{}", tally(&baseline));

    // Stopped: nothing listens on the service's port.
    token.stop();
    let case = Case::start(
        "fault",
        "http-call: token service stopped (port closed)",
        "500 `http call failed` (README: any non-200 answer); error logged",
    );
    let seen = outcomes(&gw, PER_FAULT, "stopped");
    let logged = gw.envoy.wait_for_log("[http-call] [nil] [stopped-0] http call failed, status:").unwrap_or_default();
    let status = logged.rsplit("status: ").next().unwrap_or("?").trim().to_string();
    let text = format!("{}; logged `http call failed, status: {status}`", tally(&seen));
    assert!(case.finish(PER_FAULT, &text, all_are(&seen, 500, "http call failed")), "{text}");

    // Slow: each answer held 2 s, past the 500 ms timeout.
    token.switch(TokenMode::Slow(Duration::from_secs(2))).unwrap();
    let case = Case::start(
        "fault",
        "http-call: token service slower (2 s) than the timeout (500 ms)",
        "500 `http call failed` after ~500 ms (Envoy calls back with 504)",
    );
    let started = std::time::Instant::now();
    let seen = outcomes(&gw, 5, "slow");
    let per_request = started.elapsed() / 5;
    let logged = gw.envoy.wait_for_plugin_line("[http-call] [nil] [slow-0] http call failed, status: 504").is_ok();
    let text = format!("{}; {per_request:.2?} per request; 504 logged: {logged}", tally(&seen));
    let ok = all_are(&seen, 500, "http call failed") && logged && per_request < Duration::from_millis(1900);
    assert!(case.finish(5, &text, ok), "{text}");

    for status in [503u16, 500] {
        token.switch(TokenMode::Status(status)).unwrap();
        let case = Case::start(
            "fault",
            &format!("http-call: token service answers {status}"),
            &format!("500 `http call failed`; `status: {status}` logged"),
        );
        let id = format!("s{status}");
        let seen = outcomes(&gw, PER_FAULT, &id);
        let line = format!("[http-call] [nil] [{id}-0] http call failed, status: {status}");
        let logged = gw.envoy.wait_for_plugin_line(&line).is_ok();
        let text = format!("{}; logged: {logged}", tally(&seen));
        assert!(case.finish(PER_FAULT, &text, all_are(&seen, 500, "http call failed") && logged), "{text}");
    }

    token.switch(TokenMode::NoHeader).unwrap();
    let case = Case::start(
        "fault",
        "http-call: token service answers 200 without the token header",
        "the upstream's 200 without a token; warning logged",
    );
    let seen = outcomes(&gw, PER_FAULT, "nohdr");
    let logged =
        gw.envoy.wait_for_plugin_line("[http-call] [nil] [nohdr-0] token service answered 200 without x-token").is_ok();
    let text = format!("{}; warning logged: {logged}", tally(&seen));
    assert!(case.finish(PER_FAULT, &text, all_are(&seen, 200, "no token") && logged), "{text}");

    token.switch(TokenMode::Huge("tok-huge".into(), 8 << 20)).unwrap();
    let case = Case::start(
        "fault",
        "http-call: token service answers 200 with the token and an 8 MiB body",
        "the token is used, the body ignored (never read into the VM)",
    );
    let seen = outcomes(&gw, 5, "huge");
    let text = tally(&seen);
    assert!(case.finish(5, &text, all_are(&seen, 200, "token tok-huge")), "{text}");

    token.switch(TokenMode::Token("tok-after".into())).unwrap();
    let case = Case::start(
        "fault",
        "http-call: token service back after the faults above",
        "tokens flow again; same Envoy process; no VM failure",
    );
    let seen = outcomes(&gw, PER_FAULT, "back");
    let trouble = reliability::vm_trouble(&gw.envoy, &before).unwrap();
    let text = format!("{}; Envoy pid unchanged: {}; VM trouble: {trouble:?}", tally(&seen), gw.envoy.pid() == pid);
    let ok = all_are(&seen, 200, "token tok-after") && gw.envoy.pid() == pid && trouble.is_empty();
    assert!(case.finish(PER_FAULT, &text, ok), "{text}");
}

// ----- configuration changes under traffic (file-based LDS) -----

const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const HCM_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// mock's filter with `mock_config`, in the build `E2E_BUILD` names: the
/// Wasm filter, or the dynamic module filter loading `dist/mock.so`.
fn mock_filter(mock_config: &str) -> serde_json::Value {
    let module = e2e::paths::module("mock").unwrap();
    match e2e::Build::from_env() {
        e2e::Build::Wasm => json!({"name": "mock", "typed_config": {"@type": WASM_TYPE, "config": {
            "name": "mock",
            "vm_config": {"vm_id": "mock", "runtime": "envoy.wasm.runtime.v8",
                          "code": {"local": {"filename": module.to_string_lossy()}}},
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": mock_config},
        }}}),
        e2e::Build::Native => {
            e2e::envoy_config::dynamic_module_filter("mock", &module.with_extension("so"), mock_config)
        }
    }
}

/// The LDS file's content: one listener on `port` with mock configured by `mock_config`.
fn lds(version: u32, port: u16, mock_config: &str) -> String {
    json!({
        "version_info": version.to_string(),
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
            "name": "listener_0",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": HCM_TYPE,
                    "stat_prefix": "lds",
                    "route_config": {"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"],
                        "routes": [{"name": "httpbin", "match": {"prefix": "/"}, "route": {"cluster": "httpbin"}}]}]},
                    "http_filters": [
                        mock_filter(mock_config),
                        {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
                    ],
                },
            }]}],
        }],
    })
    .to_string()
}

/// Writes the LDS file atomically (a rename in the watched directory).
fn publish(dir: &std::path::Path, content: &str) {
    let tmp = dir.join("lds.json.tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, dir.join("lds.json")).unwrap();
}

/// httpbin's echo (mock let the request through) or mock's own answer.
fn mock_or_upstream(resp: &reliability::RawResponse) -> String {
    if resp.status == 200 && resp.text().contains("\"Hello\": \"world\"") {
        "200 upstream (mock added hello: world)".to_string()
    } else {
        reliability::status_and_body(resp)
    }
}

fn counter(envoy: &Envoy, name: &str) -> i64 {
    reliability::stats(envoy, name).unwrap().get(name).copied().unwrap_or(0)
}

/// Waits until `name` reaches `at_least`.
fn wait_counter(envoy: &Envoy, name: &str, at_least: i64) -> i64 {
    let found = e2e::process::wait_for(Duration::from_secs(30), || {
        let value = counter(envoy, name);
        Ok((value >= at_least).then_some(value))
    })
    .unwrap();
    found.unwrap_or_else(|| counter(envoy, name))
}

#[test]
fn plugin_configuration_replaced_and_refused_under_traffic() {
    let httpbin = Httpbin::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::process::free_port().unwrap();
    publish(dir.path(), &lds(1, port, r#"{"mockEnable": false}"#));
    let bootstrap = json!({
        "node": {"id": "reliability", "cluster": "reliability"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": {"lds_config": {
            "resource_api_version": "V3",
            "path_config_source": {
                "path": dir.path().join("lds.json").to_string_lossy(),
                "watched_directory": {"path": dir.path().to_string_lossy()},
            },
        }},
        "static_resources": {"clusters": [e2e::envoy_config::cluster("httpbin", "httpbin", 80)]},
    });
    let config = EnvoyConfig::from_yaml(&bootstrap.to_string(), &e2e::paths::dist_dir()).unwrap();
    let envoy = Envoy::start(&config, &Upstreams::httpbin(httpbin.port())).unwrap();
    assert_eq!(envoy.listener_port("listener_0"), Some(port));
    let request = reliability::get_request("/get", &[]);
    let stop = AtomicBool::new(false);

    // A new configuration, published while two clients send without pause.
    let case = Case::start(
        "fault",
        "config change under traffic: mock's config replaced through LDS (mockEnable false -> true)",
        "the new config serves; zero errors and zero 5xx across the switch",
    );
    let accepted_before = counter(&envoy, "listener_manager.lds.update_success");
    let report = std::thread::scope(|scope| {
        let client = scope.spawn(|| {
            reliability::load(port, &request, 2, u64::MAX, Duration::from_secs(120), mock_or_upstream, Some(&stop))
        });
        std::thread::sleep(Duration::from_secs(2));
        publish(dir.path(), &lds(2, port, r#"{"mockEnable": true, "body": "switched"}"#));
        wait_counter(&envoy, "listener_manager.lds.update_success", accepted_before + 1);
        // Keep sending until the old listener has drained and the new config answers alone.
        let switched = e2e::process::wait_for(Duration::from_secs(60), || {
            let resp = reliability::raw_requests(port, &request, 1)?;
            Ok((resp.first().map(reliability::status_and_body).as_deref() == Some("200 switched")).then_some(()))
        });
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        let report = client.join().unwrap();
        (report, switched.ok().flatten().is_some())
    });
    let (report, switched) = report;
    let after = reliability::load(port, &request, 1, 200, Duration::from_secs(60), mock_or_upstream, None);
    let text = format!("during: {}; after: {}; new config answered: {switched}", report.summary(), after.summary());
    let ok = switched
        && report.errors == 0
        && report.count("5") == 0
        && report.count("200 upstream") > 0
        && report.count("200 switched") > 0
        && after.classes.get("200 switched") == Some(&200);
    assert!(case.finish(report.responses + after.responses, &text, ok), "{text}");

    // An invalid configuration: the plugin refuses it, Envoy NACKs, the old one keeps serving.
    let case = Case::start(
        "fault",
        "config change under traffic: an invalid mock config published through LDS",
        "Envoy rejects the update (lds.update_rejected +1, plugin logs why); the previous config keeps serving",
    );
    let rejected_before = counter(&envoy, "listener_manager.lds.update_rejected");
    stop.store(false, Ordering::Relaxed);
    let (report, rejected, logged) = std::thread::scope(|scope| {
        let client = scope.spawn(|| {
            reliability::load(port, &request, 2, u64::MAX, Duration::from_secs(120), mock_or_upstream, Some(&stop))
        });
        std::thread::sleep(Duration::from_secs(1));
        publish(dir.path(), &lds(3, port, r#"{"mockEnable": "yes"}"#));
        let rejected = wait_counter(&envoy, "listener_manager.lds.update_rejected", rejected_before + 1);
        let logged = envoy.wait_for_log("[mock] [nil] [nil] invalid configuration: mockEnable: invalid type").is_ok();
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        (client.join().unwrap(), rejected, logged)
    });
    let dump = e2e::http::get(&envoy.admin_url("/config_dump?resource=dynamic_listeners")).send().unwrap();
    let dump = dump.json().unwrap();
    let listener = dump["configs"].as_array().into_iter().flatten().find(|l| l["name"] == "listener_0").unwrap();
    let active = listener["active_state"].to_string();
    let still_v2 = active.contains("switched") && !active.contains("yes") && listener["error_state"].is_object();
    let text = format!(
        "during: {}; lds.update_rejected {rejected_before} -> {rejected}; refusal logged: {logged}; \
         /config_dump: active_state is the previous config and error_state holds the refused one: {still_v2}",
        report.summary()
    );
    let ok = rejected > rejected_before
        && logged
        && still_v2
        && report.errors == 0
        && report.classes.keys().all(|class| class == "200 switched");
    assert!(case.finish(report.responses, &text, ok), "{text}");
    drop(envoy);
}
