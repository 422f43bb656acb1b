//! The native builds (`dist/<name>.so`, Envoy dynamic modules) on Envoy 1.40:
//! they load with the ABI they were built for, answer as the `.wasm` builds
//! do in one run, and a plugin that panics in a hook costs its request a 500,
//! never Envoy.
//!
//! The other suites (`seed`, the Higress Go plugin guide's examples; rules,
//! bad configs, log format, HTTP calls, actions, parity) run on the native
//! builds with `E2E_BUILD=native`, which `cargo xtask test` does after the
//! Wasm run.

use e2e::envoy_config::wasm_filter;
use e2e::{http, Build, EnvoyConfig, Gateway};
use serde_json::json;

/// What one request got, for comparing builds: status, body, and the response
/// headers but `date` (sorted), plus the headers httpbin echoes when it answered.
type Outcome = (u16, String, Vec<(String, String)>);

fn outcome(gw: &Gateway, path: &str) -> e2e::Result<Outcome> {
    let resp = gw.get(path, &[])?;
    let mut headers: Vec<(String, String)> = resp
        .headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "date" | "content-length" | "x-envoy-upstream-service-time"))
        .cloned()
        .collect();
    headers.sort();
    let body = match resp.json() {
        // httpbin's echo: only what the plugins put in, not the ports or ids of this run.
        Ok(echo) => {
            let echoed = |name: &str| echo.pointer(&format!("/headers/{name}")).cloned().unwrap_or_default();
            json!({"Hello": echoed("Hello"), "X-Token": echoed("X-Token")}).to_string()
        }
        Err(_) => resp.text(),
    };
    Ok((resp.status, body, headers))
}

fn gateway(build: Build) -> e2e::Result<Gateway> {
    let mut config = EnvoyConfig::load()?;
    config.set_build(build);
    config.patch_plugin_configuration("http-call", json!({"timeout": 10_000}))?;
    Gateway::start_with(config)
}

#[test]
fn native_modules_load_with_the_abi_they_were_built_for() {
    let gw = gateway(Build::Native).unwrap();
    gw.envoy.wait_for_log("Dynamic module ABI version v0.2.0 matched").unwrap();
    for plugin in ["mock", "hello-world", "http-call"] {
        gw.envoy.wait_for_plugin_line(&format!("[{plugin}] [nil] [nil] configured")).unwrap();
    }
    assert!(gw.envoy.log_lines("][wasm]").is_empty(), "no Wasm VM in a native run:\n{}", gw.envoy.log());
}

#[test]
fn both_builds_answer_every_route_of_envoy_yaml_alike() {
    let paths = ["/get", "/mock/answer", "/hello-world", "/http-call/headers", "/redis-rate-limit/get", "/status/418"];
    let mut outcomes = Vec::new();
    for build in Build::ALL {
        let gw = gateway(build).unwrap();
        outcomes.push(paths.map(|path| outcome(&gw, path).unwrap()));
    }
    let [wasm, native] = outcomes.as_slice() else { panic!("two builds") };
    for ((path, wasm), native) in paths.iter().zip(wasm).zip(native) {
        assert_eq!(wasm, native, "{path}: the .wasm and the .so builds differ");
    }
    assert_eq!(wasm[1].0, 200, "the mock answer: {:?}", wasm[1]);
    assert!(wasm[3].1.contains("demo-token"), "the token reached httpbin: {:?}", wasm[3]);
}

#[test]
fn a_plugin_that_panics_in_a_hook_answers_500_and_envoy_keeps_serving() {
    let probe = e2e::paths::repo_root().join("target/native/libprobe.so");
    assert!(probe.is_file(), "{} is missing: run `cargo xtask build`", probe.display());
    let mut config = EnvoyConfig::load().unwrap();
    config.set_build(Build::Native);
    let panicking = json!({"requestHeaders": {"panic": true}}).to_string();
    config.add_plugin(wasm_filter("probe", &probe, &panicking)).unwrap();
    let route = json!({"name": "no-probe", "match": {"prefix": "/no-probe/"},
                       "route": {"cluster": "httpbin", "prefix_rewrite": "/"}});
    config.add_route(route).unwrap();
    config.disable_on_route("no-probe", "probe").unwrap();
    let gw = Gateway::start_with(config).unwrap();

    for _ in 0..20 {
        let resp = gw.get("/get", &[]).unwrap();
        assert_eq!((resp.status, resp.text().as_str()), (500, "internal plugin error"));
    }
    let panic = gw.envoy.wait_for_log("[probe] panic:").unwrap();
    assert!(panic.contains("[critical][dynamic_modules]"), "{panic}");
    // The same Envoy still serves: a route without the probe, and its admin.
    let resp = gw.get("/no-probe/get", &[]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.echoed_header("Hello").unwrap().as_deref(), Some("world"));
    let ready = http::get(&gw.envoy.admin_url("/ready")).send().unwrap();
    assert_eq!((ready.status, ready.text().trim()), (200, "LIVE"));
}
