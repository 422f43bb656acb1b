//! The SDK's metrics, local answers with details, properties and user
//! attributes on a real Envoy 1.40, through the `sdk-features` fixture
//! (`e2e/fixtures/sdk-features`), with an access log to a file that shows
//! `%RESPONSE_CODE_DETAILS%` and the filter state the plugin writes.
//!
//! The module must be built first: `cargo xtask build`, or
//! `cargo build --release --target wasm32-wasip1 -p sdk-features`.

// Test code: a failed unwrap is a failed test (clippy.toml allows these in tests only).
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use e2e::envoy_config::{self, EnvoyConfig};
use e2e::http::{self, Response};
use e2e::process::wait_for;
use e2e::Gateway;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One listener, every path to httpbin on the route `everything`, an access
/// log line per request to `ACCESS_LOG`; the fixture is added by [`start`].
const BOOTSTRAP: &str = r#"
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
stats_config:
  stats_tags:
  - tag_name: client
    regex: "^wasmcustom\\.sdk_features_by_client(\\.client\\.([^.]+))"
static_resources:
  listeners:
  - name: listener_0
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: sdk
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: ACCESS_LOG
              log_format:
                text_format_source:
                  inline_string: "id=%REQ(X-REQUEST-ID)% code=%RESPONSE_CODE% details=%RESPONSE_CODE_DETAILS% custom_log=%FILTER_STATE(wasm.custom_log:PLAIN)% ai_log=%FILTER_STATE(wasm.ai_log:PLAIN)% tag_model=%FILTER_STATE(wasm.trace_span_tag.model:PLAIN)% clear_route_cache=%FILTER_STATE(wasm.clear_route_cache:PLAIN)%\n"
          route_config:
            name: sdk
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - name: everything
                match: { prefix: / }
                route: { cluster: httpbin }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: httpbin
    connect_timeout: 5s
    type: STRICT_DNS
    load_assignment:
      cluster_name: httpbin
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: httpbin, port_value: 80 } } } } ] } ]
"#;

fn module() -> PathBuf {
    e2e::paths::fixture_module("sdk-features").unwrap_or_else(|err| panic!("{err}"))
}

struct Rig {
    gw: Gateway,
    access_log: PathBuf,
    _dir: tempfile::TempDir,
}

fn start() -> Rig {
    start_with("sdk-features", &module(), "{}")
}

/// The rig with another fixture module (the `probe`, built beside `sdk-features`).
fn start_with(name: &str, module: &Path, configuration: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let access_log = dir.path().join("access.log");
    let yaml = BOOTSTRAP.replace("ACCESS_LOG", &access_log.to_string_lossy());
    let mut config = EnvoyConfig::from_yaml(&yaml, &e2e::paths::dist_dir()).unwrap();
    config.add_plugin(envoy_config::wasm_filter(name, module, configuration)).unwrap();
    Rig { gw: Gateway::start_with(config).unwrap(), access_log, _dir: dir }
}

impl Rig {
    fn get(&self, id: &str, headers: &[(&str, &str)]) -> Response {
        let mut all = vec![("x-request-id", id)];
        all.extend_from_slice(headers);
        self.gw.get("/get", &all).unwrap()
    }

    /// The access log line of request `id` (Envoy writes the file in the background).
    fn log_line(&self, id: &str) -> String {
        let needle = format!("id={id} ");
        let line = wait_for(Duration::from_secs(30), || {
            Ok(read(&self.access_log).lines().find(|l| l.starts_with(&needle)).map(str::to_string))
        })
        .unwrap();
        line.unwrap_or_else(|| panic!("no access log line for {id}:\n{}", read(&self.access_log)))
    }

    fn post(&self, id: &str, body: &str, headers: &[(&str, &str)]) -> Response {
        let request = http::post(&self.gw.url("/post"), body).header("x-request-id", id);
        headers.iter().fold(request, |req, (name, value)| req.header(name, value)).send().unwrap()
    }

    fn admin(&self, path: &str) -> String {
        http::get(&self.gw.envoy.admin_url(path)).send().unwrap().text()
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `name=value` of an access log line.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}=");
    line.split(' ').find_map(|part| part.strip_prefix(prefix.as_str())).unwrap_or_else(|| panic!("no {name} in {line}"))
}

#[test]
fn metrics_show_in_the_admin_stats_with_tags() {
    let rig = start();
    for (i, (client, size)) in [("a", "10"), ("a", "30"), ("b.c", "20")].iter().enumerate() {
        let resp = rig.get(&format!("m{i}"), &[("x-client", client), ("x-size", size)]);
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    let stats = rig.admin("/stats?filter=sdk_features");
    assert!(stats.lines().any(|l| l == "wasmcustom.sdk_features_requests: 3"), "{stats}");
    assert!(stats.lines().any(|l| l == "wasmcustom.sdk_features_by_client.client.a: 2"), "{stats}");
    assert!(stats.lines().any(|l| l == "wasmcustom.sdk_features_by_client.client.b_c: 1"), "{stats}");
    assert!(stats.lines().any(|l| l == "wasmcustom.sdk_features_last_size: 20"), "{stats}");
    // The tag extraction rule turns the tag into a Prometheus label.
    let prometheus = rig.admin("/stats/prometheus");
    let ours: Vec<&str> = prometheus.lines().filter(|l| l.contains("sdk_features")).collect();
    assert!(ours.contains(&"sdk_features_by_client{client=\"a\"} 2"), "{ours:?}");
    // A histogram shows once Envoy has flushed its samples (every 5 s by default).
    let histogram = wait_for(Duration::from_secs(30), || {
        let stats = rig.admin("/stats?filter=sdk_features_sizes");
        Ok(stats.lines().find(|l| l.contains("P0(") && !l.contains("No recorded values")).map(str::to_string))
    })
    .unwrap();
    assert!(histogram.is_some(), "no samples: {}", rig.admin("/stats?filter=sdk_features_sizes"));
    // The plugin reads the counter back.
    let resp = rig.get("m3", &[]);
    assert_eq!(resp.header("x-requests"), Some("4"));
}

#[test]
fn local_answers_show_their_details_in_the_access_log() {
    let rig = start();
    let resp = rig.get("d1", &[("x-respond", "403 sdk-features.denied by rule")]);
    assert_eq!((resp.status, resp.text().as_str()), (403, "answer with details"));
    let line = rig.log_line("d1");
    assert_eq!(field(&line, "code"), "403");
    assert_eq!(field(&line, "details"), "sdk-features.denied_by_rule");

    // `respond` sends no details: Envoy records them empty.
    let resp = rig.get("d2", &[("x-respond", "401")]);
    assert_eq!(resp.status, 401);
    let plain = rig.log_line("d2");
    assert_eq!((field(&plain, "code"), field(&plain, "details")), ("401", ""));

    let resp = rig.get("d3", &[]);
    assert_eq!(resp.status, 200);
    assert_eq!(field(&rig.log_line("d3"), "details"), "via_upstream");
}

#[test]
fn properties_on_upstream_envoy() {
    let rig = start();
    let resp = rig.get("p1", &[("x-set-property", "my_plugin_verdict=allowed"), ("x-higress", "on")]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    // Envoy accepts any property name, keeps it as filter state `wasm.<name>`
    // and reads it back through the same path.
    assert_eq!(resp.header("x-set-property"), Some("ok"));
    assert_eq!(resp.header("x-get-property"), Some("allowed"));
    // Typed reads of Envoy's own attributes, in their serialised forms.
    assert_eq!(resp.header("x-response-code"), Some("200"));
    assert_eq!(resp.header("x-mtls"), Some("false"));
    assert_eq!(resp.header("x-route"), Some("everything"));
    // The request's pseudo-headers, read after the request went on (Envoy's `request.*` attributes).
    let line = resp.header("x-request-line").unwrap_or_default();
    assert!(line.starts_with("GET http://127.0.0.1:") && line.ends_with("/get"), "{line}");
    assert_eq!(resp.header("x-phase"), Some("response headers"));
    // Envoy 1.40 serialises the header map attributes as empty maps: headers
    // are read with the header calls, not through `request.headers`.
    assert_eq!(resp.header("x-request-header-count"), Some("0"));
    // Higress-only properties: accepted, kept as filter state, no effect;
    // Envoy reports no VM memory.
    assert_eq!(resp.header("x-vm-memory"), Some("none"));
    let line = rig.log_line("p1");
    assert_eq!(field(&line, "clear_route_cache"), "off");
    assert_eq!(field(&line, "code"), "200", "the request went on to its route");
}

#[test]
fn attributes_show_in_the_access_log_as_filter_state() {
    let rig = start();
    let resp = rig.get("a1", &[("x-attributes", "model=qwen,tokens=42")]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let line = rig.log_line("a1");
    // The JSON object, escaped to sit inside a JSON string of a log line.
    assert_eq!(field(&line, "custom_log"), r#"{\"model\":\"qwen\",\"tokens\":42}"#);
    assert_eq!(field(&line, "tag_model"), "qwen");
    assert_eq!(field(&line, "ai_log"), "-");

    let resp = rig.get("a2", &[("x-attributes", "tokens=7"), ("x-log-key", "ai_log")]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let line = rig.log_line("a2");
    assert_eq!(field(&line, "ai_log"), r#"{\"tokens\":7}"#);
    assert_eq!(field(&line, "custom_log"), "-");
}

#[test]
fn a_request_chooses_what_happens_to_its_bodies() {
    let rig = start();
    let resp = rig.get("b1", &[]);
    assert_eq!(resp.header("x-has-request-body"), Some("false"));
    assert_eq!(resp.header("x-has-response-body"), Some("true"));

    let text = [("content-type", "text/plain")];
    let resp = rig.post("b2", "hello body", &[text[0], ("x-request-body", "buffer"), ("x-response-body", "stream")]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-has-request-body"), Some("true"));
    assert_eq!(resp.header("x-request-body"), Some("1:10"), "the whole body in one call");
    assert!(resp.text().contains("hello body") && resp.text().ends_with("]"), "{}", resp.text());
    assert!(resp.text().contains("[response body calls: "), "{}", resp.text());

    let resp = rig.post("b3", "hello body", &[text[0], ("x-request-body", "skip"), ("x-response-body", "skip")]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-request-body"), Some("0:0"), "the hook never ran");
    assert!(!resp.text().contains("[response body calls"), "{}", resp.text());
    assert!(resp.text().contains("hello body"), "the body went on untouched: {}", resp.text());
}

#[test]
fn binary_request_bodies_skip_the_body_hook_by_default() {
    let probe = e2e::paths::fixture_module("probe").unwrap_or_else(|err| panic!("{err}"));
    let rig = start_with("probe", &probe, "{}");
    let resp = rig.post("s1", "hello", &[("content-type", "text/plain")]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.header("x-probe-phases").unwrap_or_default().contains("request_body("), "{resp:?}");
    let resp = rig.post("s2", "hello", &[("content-type", "application/octet-stream")]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let phases = resp.header("x-probe-phases").unwrap_or_default();
    assert!(!phases.contains("request_body"), "{phases}");
    assert!(resp.text().contains("hello"), "the body reached the upstream: {}", resp.text());
}

#[test]
fn a_bad_rule_is_left_out_and_envoy_starts_with_the_others() {
    // The fixture runs with rule-level isolation: without it, this configuration
    // would make Envoy refuse to start (see bad_config.rs).
    let configuration = r#"{"tag": "global", "_rules_": [
        {"_match_domain_": ["good.test"], "tag": "good"},
        {"_match_domain_": ["bad.test"], "tag": "bad"}]}"#;
    let rig = start_with("sdk-features", &module(), configuration);
    let tag = |host: &str| rig.get("i1", &[("host", host)]).header("x-config-tag").map(str::to_string);
    assert_eq!(tag("good.test").as_deref(), Some("good"));
    assert_eq!(tag("bad.test").as_deref(), Some("global"), "the bad rule is left out: the global config answers");
    let line = rig.gw.envoy.wait_for_log("invalid rule:").unwrap();
    assert!(
        line.contains("_rules_[1]: tag: `bad` is refused; the rule is left out (no earlier good configuration)"),
        "{line}"
    );
}
