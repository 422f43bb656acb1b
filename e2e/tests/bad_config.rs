//! A configuration a plugin refuses stops Envoy at start, and the log says
//! which field is wrong: `[<plugin>] [nil] [nil] invalid configuration: <path>: <what>`.

use e2e::process::free_port;
use e2e::{Build, Envoy, EnvoyConfig, FailedStart, Upstreams};

/// Runs `envoy.yaml` with `plugin`'s configuration replaced, expecting Envoy to refuse it.
/// (With `E2E_BUILD=native`, the `.so` builds: they must refuse the same configs alike.)
fn refused(plugin: &str, configuration: &str) -> e2e::Result<FailedStart> {
    let mut config = EnvoyConfig::load()?;
    config.plugin_configuration(plugin, configuration)?;
    // Envoy stops before any upstream is reached: nothing needs to listen there.
    let failed = Envoy::start_expecting_failure(&config, &Upstreams::httpbin(free_port()?))?;
    assert!(!failed.status.success(), "Envoy exited with {} on a bad config:\n{}", failed.status, failed.log);
    Ok(failed)
}

/// Asserts that the plugin logged exactly `line`, and that Envoy says which plugin stopped it.
fn assert_logged(failed: &FailedStart, line: &str) {
    let lines = failed.plugin_lines();
    assert!(lines.iter().any(|l| l == line), "no plugin line {line:?} in:\n{}", failed.log);
    let plugin = line.split(']').next().unwrap_or_default().trim_start_matches('[');
    // Envoy's own line names the plugin for a Wasm filter only.
    let envoy_says = match Build::from_env() {
        Build::Wasm => format!("error `Unable to create Wasm plugin {plugin}` initializing config"),
        Build::Native => "error `Failed to create filter config: Failed to initialize dynamic module`".to_string(),
    };
    assert!(failed.log.contains(&envoy_says), "no {envoy_says:?} in:\n{}", failed.log);
}

#[test]
fn http_call_without_token_header() {
    let failed = refused(
        "http-call",
        r#"{"requestPath": "/response-headers?x-token=t", "serviceName": "httpbin.dns", "servicePort": 80}"#,
    )
    .unwrap();
    assert_logged(&failed, "[http-call] [nil] [nil] invalid configuration: missing field `tokenHeader`");
}

#[test]
fn http_call_timeout_of_the_wrong_type() {
    let failed = refused(
        "http-call",
        r#"{"tokenHeader": "x-token", "requestPath": "/p", "serviceName": "httpbin.dns", "servicePort": 80, "timeout": "1s"}"#,
    )
    .unwrap();
    assert_logged(
        &failed,
        r#"[http-call] [nil] [nil] invalid configuration: timeout: invalid type: string "1s", expected u32"#,
    );
}

#[test]
fn malformed_json() {
    let failed = refused("mock", r#"{"mockEnable": tru}"#).unwrap();
    assert_logged(
        &failed,
        "[mock] [nil] [nil] invalid configuration: malformed JSON: expected a value at line 1 column 16",
    );
}

#[test]
fn rule_without_match_key() {
    let failed = refused("mock", r#"{"_rules_": [{"mockEnable": true}]}"#).unwrap();
    assert_logged(
        &failed,
        "[mock] [nil] [nil] invalid configuration: _rules_[0]: a rule needs a non-empty \
         _match_route_, _match_domain_, _match_service_ or _match_route_prefix_",
    );
}

#[test]
fn unknown_field_in_mock() {
    let failed = refused("mock", r#"{"mockenable": true}"#).unwrap();
    assert_logged(
        &failed,
        "[mock] [nil] [nil] invalid configuration: mockenable: unknown field `mockenable`, \
         expected one of `mockEnable`, `status`, `headers`, `body`",
    );
}
