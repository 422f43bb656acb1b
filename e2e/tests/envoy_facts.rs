//! What Envoy 1.40 does with the pieces of `envoy.yaml`, so that a change of
//! Envoy that breaks one of them shows up here first.

use e2e::envoy_config::wasm_filter;
use e2e::process::free_port;
use e2e::{paths, Envoy, EnvoyConfig, Gateway, Upstreams};
use serde_json::json;

/// Runs `config` expecting Envoy to refuse it; returns its log.
fn refused(config: &EnvoyConfig) -> e2e::Result<String> {
    let failed = Envoy::start_expecting_failure(config, &Upstreams::httpbin(free_port()?))?;
    assert!(!failed.status.success(), "{}", failed.log);
    Ok(failed.log)
}

#[test]
fn a_disabled_filter_needs_a_config_to_be_enabled_on_a_route() {
    // `envoy.yaml` enables hello-world on its route with `FilterConfig{config: {}}`;
    // without `config`, Envoy 1.40 refuses the whole file.
    let mut config = EnvoyConfig::load().unwrap();
    let bare = json!({"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig"});
    let route = json!({
        "name": "hello-world",
        "match": {"prefix": "/hello-world"},
        "direct_response": {"status": 404},
        "typed_per_filter_config": {"hello-world": bare},
    });
    config.replace_route("hello-world", route).unwrap();
    let log = refused(&config).unwrap();
    assert!(log.contains("Empty route/virtual host per filter configuration for hello-world filter"), "{log}");
}

#[test]
fn a_module_with_redis_imports_does_not_load() {
    // Why the harness removes redis-rate-limit on upstream Envoy.
    let mut config = EnvoyConfig::load().unwrap();
    let module = paths::module("redis-rate-limit").unwrap();
    config
        .add_plugin(wasm_filter(
            "redis-rate-limit",
            &module,
            r#"{"serviceName": "redis.dns", "servicePort": 6379, "qpm": 10}"#,
        ))
        .unwrap();
    let log = refused(&config).unwrap();
    assert!(log.contains("Failed to load Wasm module due to a missing import: env.proxy_redis_"), "{log}");
}

#[test]
fn allow_on_headers_stop_iteration_is_a_plugin_config_field() {
    let mut config = EnvoyConfig::load().unwrap();
    config.allow_on_headers_stop_iteration("http-call", true).unwrap();
    config.patch_plugin_configuration("http-call", json!({"timeout": 10_000})).unwrap();
    let gw = Gateway::start_with(config).unwrap();
    // http-call pauses the headers and resumes them when the token arrives, as without the flag.
    let resp = gw.get("/http-call/headers", &[]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.echoed_header("X-Token").unwrap().as_deref(), Some("demo-token"));
}
