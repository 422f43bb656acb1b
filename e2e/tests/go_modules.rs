//! Go-built modules no one here wrote, run on the test host and on a real
//! Envoy 1.40 side by side: the 13 Go 1.24 (`GOOS=wasip1`, Higress Go SDK
//! `wasm-go` v1.0.x) modules of the `gpustack-higress-plugins` wheel
//! (Apache-2.0, pinned in `e2e/requirements.txt`, installed into `.venv` by
//! `cargo xtask setup`; the modules are never copied into this repository).
//! Two of them are Higress's own plugins (`transformer`, `ai-statistics`).
//!
//! The modules export Higress's ABI marker `proxy_abi_version_0_2_100`, which
//! upstream Envoy refuses ("Missing or unknown Proxy-Wasm ABI version"). For
//! the Envoy side, each module is rewritten in a temporary directory with one
//! change: that export is renamed `proxy_abi_version_0_2_1` (same function
//! index, every other byte of every other section unchanged). 0.2.100 is
//! 0.2.1 plus Higress's extra imports, so a module importing none of them
//! runs unchanged on Envoy's 0.2.1 ABI. The two modules importing Higress's
//! Redis calls cannot load on upstream Envoy at all and run on the test
//! host's Higress mode only.
//!
//! Compared between the two: the status, the request headers the upstream
//! (httpbin on Envoy) received apart from those the client and Envoy add,
//! the response header a transformer rule adds, and the JSON body
//! transformer's body rules forward. Each module's start time on the test
//! host is printed (`--nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use e2e::envoy_config::wasm_filter;
use e2e::{http, Envoy, EnvoyConfig, Httpbin, Upstreams};
use gateway_testhost::{Exchange, Reply, TestHost};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The Go-built modules of the package, each with a configuration it
/// accepts (from the plugins' docs, or the field its refusal names), and
/// whether it imports Higress's Redis calls.
const GO_MODULES: &[(&str, &str, bool)] = &[
    ("ai-statistics", "{}", false),
    ("gpustack-ai-proxy", "{}", false),
    ("gpustack-ext-auth", "{}", false),
    ("gpustack-generic-proxy-router", "{}", false),
    ("gpustack-ip-acl", "{}", false),
    ("gpustack-lb", "{}", true),
    ("gpustack-lb-decision-service", "{}", false),
    ("gpustack-lb-least-load", "{}", false),
    ("gpustack-lb-session-affinity", r#"{"sessionKeys": [{"header": "x-session"}]}"#, false),
    ("gpustack-rate-limit", "{}", true),
    ("gpustack-set-header-pre-route", SET_HEADER_CONFIG, false),
    ("gpustack-token-usage", "{}", false),
    ("transformer", TRANSFORMER_CONFIG, false),
];

/// The package's one module not built by Go (Rust, the proxy-wasm crate).
const NOT_GO: &str = "ai-data-masking";

/// Higress transformer rules: each request-header operation once, and one
/// response header added.
const TRANSFORMER_CONFIG: &str = r#"{
  "reqRules": [
    {"operate": "remove", "headers": [{"key": "x-remove"}]},
    {"operate": "rename", "headers": [{"oldKey": "x-old", "newKey": "x-new"}]},
    {"operate": "replace", "headers": [{"key": "x-replace", "newValue": "replaced"}]},
    {"operate": "add", "headers": [{"key": "x-added", "value": "added"}]}
  ],
  "respRules": [
    {"operate": "add", "headers": [{"key": "x-resp-added", "value": "resp"}]}
  ]
}"#;

/// gpustack-set-header-pre-route: the route's name in a request header, on every path.
const SET_HEADER_CONFIG: &str = r#"{"routeNameHeader": "x-route-name", "enableOnPathPrefix": ["/"]}"#;

/// The request every module takes, on both sides.
const REQUEST_HEADERS: &[(&str, &str)] =
    &[("x-remove", "gone"), ("x-old", "moved"), ("x-replace", "original"), ("x-keep", "kept"), ("x-session", "s1")];

/// The route name both sides give (Envoy: the route's `name`; the test host: `route_name`).
const ROUTE: &str = "go-modules";

/// Headers that reach httpbin from the client or Envoy, not from a plugin.
const NOT_FROM_PLUGINS: &[&str] =
    &["host", "accept", "accept-encoding", "user-agent", "content-length", "x-request-id", "x-forwarded-proto"];

/// `.venv/lib/python3*/site-packages/gpustack_higress_plugins/plugins`.
fn plugins_dir() -> PathBuf {
    let lib = e2e::paths::venv_dir().join("lib");
    let python = std::fs::read_dir(&lib)
        .ok()
        .and_then(|entries| entries.flatten().find(|e| e.file_name().to_string_lossy().starts_with("python3")));
    let dir = python.map(|p| p.path().join("site-packages/gpustack_higress_plugins/plugins"));
    match dir {
        Some(dir) if dir.is_dir() => dir,
        _ => panic!("gpustack-higress-plugins is not in .venv: run `cargo xtask setup`"),
    }
}

/// `plugins/<name>/<version>/plugin.wasm` (one version per plugin in the package).
fn module(name: &str) -> PathBuf {
    let dir = plugins_dir().join(name);
    let version = std::fs::read_dir(&dir).unwrap().flatten().next().unwrap_or_else(|| panic!("{dir:?} is empty"));
    version.path().join("plugin.wasm")
}

/// The test host running `name` (Higress mode, the package's bytes) with
/// `config`, on route [`ROUTE`] as Higress names it; prints how long the start took.
fn test_host(name: &str, config: &str) -> TestHost {
    let started = Instant::now();
    let host = TestHost::load(module(name)).unwrap().property("route_name", ROUTE);
    let host = host.config(config).unwrap_or_else(|err| panic!("{name} refused {config}: {err}"));
    println!("{name}: loaded, started and configured on the test host in {:?}", started.elapsed());
    host
}

/// The request of [`REQUEST_HEADERS`] through the test host, answered by an upstream echoing nothing.
fn send(host: &TestHost) -> Exchange {
    let request = REQUEST_HEADERS.iter().fold(host.request().path("/headers"), |r, (k, v)| r.header(k, v));
    request.upstream(Reply::new(200).header("content-type", "application/json").body("{}")).send().unwrap()
}

/// What a plugin could have changed of the request: the headers that reached
/// the upstream, without pseudo-headers and the ones the client or Envoy add.
fn plugin_visible(headers: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .filter(|(k, _)| !k.starts_with(':') && !k.starts_with("x-envoy-") && !NOT_FROM_PLUGINS.contains(&k.as_str()))
        .collect()
}

#[test]
fn the_package_holds_these_go_modules_and_one_rust_module() {
    let mut found: Vec<String> = std::fs::read_dir(plugins_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut expected: Vec<String> = GO_MODULES.iter().map(|(name, _, _)| name.to_string()).collect();
    expected.push(NOT_GO.to_string());
    expected.sort();
    assert_eq!(found, expected);
    for (name, _, _) in GO_MODULES {
        let bytes = std::fs::read(module(name)).unwrap();
        // Go's build information names the toolchain.
        assert!(bytes.windows(7).any(|w| w == b"go1.24."), "{name} is not built by Go 1.24");
    }
}

#[test]
fn every_go_module_starts_and_takes_a_request_on_the_test_host() {
    for (name, config, _) in GO_MODULES {
        let host = test_host(name, config);
        let out = send(&host);
        assert_eq!(out.status(), Some(200), "{name}: {:?}", out.logs());
        let upstream = out.upstream_request().unwrap_or_else(|| panic!("{name} did not forward the request"));
        assert_eq!(upstream.header(":path").as_deref(), Some("/headers"), "{name}");
        // Start and the request went through Go's runtime without a trap: a
        // second request on the same VM works as well.
        assert_eq!(send(&host).status(), Some(200), "{name}");
    }
}

#[test]
fn transformer_edits_headers_as_configured_on_the_test_host() {
    let host = test_host("transformer", TRANSFORMER_CONFIG);
    let out = send(&host);
    let upstream = out.upstream_request().unwrap();
    assert_eq!(upstream.header("x-remove"), None);
    assert_eq!(upstream.header("x-old"), None);
    assert_eq!(upstream.header("x-new").as_deref(), Some("moved"));
    assert_eq!(upstream.header("x-replace").as_deref(), Some("replaced"));
    assert_eq!(upstream.header("x-added").as_deref(), Some("added"));
    assert_eq!(upstream.header("x-keep").as_deref(), Some("kept"));
    assert_eq!(out.response().unwrap().headers.get("x-resp-added").as_deref(), Some("resp"));
}

#[test]
fn set_header_pre_route_writes_the_route_name_on_the_test_host() {
    let host = test_host("gpustack-set-header-pre-route", SET_HEADER_CONFIG);
    let out = send(&host);
    assert_eq!(out.upstream_request().unwrap().header("x-route-name").as_deref(), Some(ROUTE), "{:?}", out.logs());
}

#[test]
fn modules_importing_redis_need_higress() {
    for (name, config, redis) in GO_MODULES.iter().filter(|m| m.2) {
        assert!(redis);
        let host = TestHost::load(module(name)).unwrap().envoy();
        let err = host.configure(config).unwrap_err().to_string();
        assert!(err.contains("missing import: env.proxy_redis_"), "{name}: {err}");
    }
}

/// `bytes` with the export `proxy_abi_version_0_2_100` renamed
/// `proxy_abi_version_0_2_1`; every other section copied as it is.
fn with_abi_0_2_1(bytes: &[u8]) -> Vec<u8> {
    use wasm_encoder::{ExportKind, ExportSection, Section};
    use wasmparser::{BinaryReader, ExportSectionReader, ExternalKind};
    let mut reader = BinaryReader::new(bytes, 0);
    let mut out = reader.read_bytes(8).unwrap().to_vec(); // magic and version
    let mut renamed = false;
    while !reader.eof() {
        let start = reader.original_position() as usize;
        let id = reader.read_u8().unwrap();
        let size = reader.read_var_u32().unwrap() as usize;
        let content_at = reader.original_position() as usize;
        let content = reader.read_bytes(size).unwrap();
        if id != 7 {
            out.extend_from_slice(&bytes[start..content_at + size]);
            continue;
        }
        let mut section = ExportSection::new();
        for export in ExportSectionReader::new(BinaryReader::new(content, content_at as u64)).unwrap() {
            let export = export.unwrap();
            let name = if export.name == "proxy_abi_version_0_2_100" {
                renamed = true;
                "proxy_abi_version_0_2_1"
            } else {
                export.name
            };
            let kind = match export.kind {
                ExternalKind::Func => ExportKind::Func,
                ExternalKind::Table => ExportKind::Table,
                ExternalKind::Memory => ExportKind::Memory,
                ExternalKind::Global => ExportKind::Global,
                other => panic!("unexpected export kind {other:?}"),
            };
            section.export(name, kind, export.index);
        }
        section.append_to(&mut out);
    }
    assert!(renamed, "no proxy_abi_version_0_2_100 export");
    out
}

/// A bootstrap with one listener: route [`ROUTE`] to httpbin, the module's filter, the router.
fn envoy_config(name: &str, module: &Path, config: &str) -> EnvoyConfig {
    let yaml = format!(
        r#"
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}}}
static_resources:
  listeners:
  - name: listener_0
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          route_config:
            virtual_hosts:
            - name: local_service
              domains: ["*"]
              routes:
              - name: {ROUTE}
                match: {{prefix: /}}
                route: {{cluster: httpbin}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: httpbin
    connect_timeout: 5s
    type: STRICT_DNS
    load_assignment:
      cluster_name: httpbin
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: httpbin, port_value: 80}}}}}}
"#
    );
    let mut envoy = EnvoyConfig::from_yaml(&yaml, module.parent().unwrap()).unwrap();
    envoy.add_plugin(wasm_filter(name, module, config)).unwrap();
    envoy
}

#[test]
fn upstream_envoy_refuses_the_higress_abi_marker() {
    let httpbin = Httpbin::start().unwrap();
    let config = envoy_config("transformer", &module("transformer"), TRANSFORMER_CONFIG);
    let failed = Envoy::start_expecting_failure(&config, &Upstreams::httpbin(httpbin.port())).unwrap();
    assert!(failed.log.contains("Missing or unknown Proxy-Wasm ABI version"), "{}", failed.log);
}

#[test]
fn go_modules_agree_with_envoy() {
    let httpbin = Httpbin::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, config, redis) in GO_MODULES {
        if *redis {
            continue;
        }
        let rewritten = dir.path().join(format!("{name}.wasm"));
        let bytes = with_abi_0_2_1(&std::fs::read(module(name)).unwrap());
        std::fs::write(&rewritten, &bytes).unwrap();

        let envoy = Envoy::start(&envoy_config(name, &rewritten, config), &Upstreams::httpbin(httpbin.port()))
            .unwrap_or_else(|err| panic!("{name} on Envoy: {err}"));
        let request = REQUEST_HEADERS.iter().fold(http::get(&envoy.url("/headers")), |r, (k, v)| r.header(k, v));
        let on_envoy = request.send().unwrap();
        let envoy_upstream = plugin_visible(
            on_envoy
                .echoed_headers()
                .unwrap()
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string())),
        );

        // The same rewritten bytes on the test host's Envoy mode (no
        // `get_log_level` foreign function, no Redis). Upstream Envoy 1.40
        // answers the property `route_name` with an empty value here (seen
        // with gpustack-set-header-pre-route: its header arrives empty), where
        // Higress gives the route's name; the test host is given what Envoy gives.
        let host = TestHost::from_bytes(&bytes).unwrap().envoy().property("route_name", "");
        let host = host.config(config).unwrap_or_else(|err| panic!("{name} (0.2.1 marker) refused {config}: {err}"));
        let on_host = send(&host);
        let host_upstream = plugin_visible(on_host.upstream_request().unwrap().headers.pairs());

        assert_eq!(on_host.status(), Some(on_envoy.status), "{name}: status");
        assert_eq!(host_upstream, envoy_upstream, "{name}: headers the upstream received");
        // The one response header a rule adds (transformer); absent on both for the others.
        let added = on_host.response().unwrap().headers.get("x-resp-added");
        assert_eq!(added.as_deref(), on_envoy.header("x-resp-added"), "{name}: response header x-resp-added");
        println!("{name}: agrees with Envoy: status {}, upstream headers {envoy_upstream:?}", on_envoy.status);
    }
}

/// transformer with request-body rules: a JSON body is buffered, edited and forwarded.
const TRANSFORMER_BODY_CONFIG: &str = r#"{
  "reqRules": [
    {"operate": "remove", "body": [{"key": "drop"}]},
    {"operate": "rename", "body": [{"oldKey": "old", "newKey": "new"}]},
    {"operate": "add", "body": [{"key": "added", "value": "yes", "value_type": "string"}]}
  ]
}"#;

#[test]
fn transformer_rewrites_a_json_body_as_envoy_does() {
    let body = r#"{"drop": 1, "old": "moved", "keep": true}"#;
    let expected = serde_json::json!({"new": "moved", "keep": true, "added": "yes"});

    let host = test_host("transformer", TRANSFORMER_BODY_CONFIG);
    let out = host
        .request()
        .method("POST")
        .path("/anything")
        .header("content-type", "application/json")
        .body(body)
        .upstream(Reply::new(200))
        .send()
        .unwrap();
    let on_host: serde_json::Value = serde_json::from_slice(&out.upstream_request().unwrap().body).unwrap();
    assert_eq!(on_host, expected, "{:?}", out.logs());

    let httpbin = Httpbin::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rewritten = dir.path().join("transformer.wasm");
    std::fs::write(&rewritten, with_abi_0_2_1(&std::fs::read(module("transformer")).unwrap())).unwrap();
    let config = envoy_config("transformer", &rewritten, TRANSFORMER_BODY_CONFIG);
    let envoy = Envoy::start(&config, &Upstreams::httpbin(httpbin.port())).unwrap();
    let on_envoy = http::post(&envoy.url("/anything"), body).header("content-type", "application/json").send().unwrap();
    assert_eq!(on_envoy.status, 200, "{}", on_envoy.text());
    // httpbin's `json` is the body it received, parsed.
    assert_eq!(on_envoy.json().unwrap()["json"], on_host, "{}", envoy.plugin_lines().join("\n"));
}
