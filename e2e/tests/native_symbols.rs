//! The native build's ABI, checked against the pinned Envoy binary: every
//! callback the SDK's bindings declare is exported by Envoy 1.40, and every
//! plugin's `.so` exports each hook Envoy requires of an HTTP filter module
//! (Envoy refuses a module that lacks one) and needs nothing from Envoy that
//! the bindings do not declare; and every `.so` needs no newer glibc than
//! the Envoy binary does, as `dist/manifest.json` states.

use e2e::elf::{dynamic_symbols, glibc_version, needed_versions, newest_glibc, NeededVersion};
use e2e::paths;

/// The hooks Envoy 1.40 looks up in an HTTP filter module, all mandatory.
const REQUIRED_HOOKS: &[&str] = &[
    "envoy_dynamic_module_on_program_init",
    "envoy_dynamic_module_on_http_filter_config_new",
    "envoy_dynamic_module_on_http_filter_config_destroy",
    "envoy_dynamic_module_on_http_filter_new",
    "envoy_dynamic_module_on_http_filter_request_headers",
    "envoy_dynamic_module_on_http_filter_request_body",
    "envoy_dynamic_module_on_http_filter_request_trailers",
    "envoy_dynamic_module_on_http_filter_response_headers",
    "envoy_dynamic_module_on_http_filter_response_body",
    "envoy_dynamic_module_on_http_filter_response_trailers",
    "envoy_dynamic_module_on_http_filter_stream_complete",
    "envoy_dynamic_module_on_http_filter_destroy",
    "envoy_dynamic_module_on_http_filter_http_callout_done",
    "envoy_dynamic_module_on_http_filter_http_stream_headers",
    "envoy_dynamic_module_on_http_filter_http_stream_data",
    "envoy_dynamic_module_on_http_filter_http_stream_trailers",
    "envoy_dynamic_module_on_http_filter_http_stream_complete",
    "envoy_dynamic_module_on_http_filter_http_stream_reset",
    "envoy_dynamic_module_on_http_filter_scheduled",
    "envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark",
    "envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark",
];

/// Plugins with a native build (redis-rate-limit needs Higress's Redis calls).
const NATIVE_PLUGINS: &[&str] = &["hello-world", "mock", "http-call"];

/// The callbacks declared in the bindings' `extern "C"` block.
fn declared_callbacks() -> Vec<String> {
    let abi = paths::repo_root().join("crates/sdk/src/native/abi.rs");
    // Unreadable: no callbacks, which the tests report.
    let text = std::fs::read_to_string(&abi).unwrap_or_default();
    text.split("fn ")
        .skip(1)
        .filter_map(|rest| rest.split('(').next())
        .filter(|name| name.starts_with("envoy_dynamic_module_callback_"))
        .map(str::to_string)
        .collect()
}

fn defined(symbols: &[e2e::elf::Symbol]) -> Vec<&str> {
    symbols.iter().filter(|s| s.defined).map(|s| s.name.as_str()).collect()
}

#[test]
fn every_declared_callback_is_exported_by_envoy() {
    let declared = declared_callbacks();
    assert!(declared.len() >= 15, "the bindings declare the callbacks the SDK uses: {declared:?}");
    let envoy = dynamic_symbols(&paths::envoy_binary().unwrap()).unwrap();
    let exported = defined(&envoy);
    let missing: Vec<&String> = declared.iter().filter(|name| !exported.contains(&name.as_str())).collect();
    assert!(missing.is_empty(), "not in Envoy 1.40's dynamic symbols: {missing:?}");
    // Envoy really does export hooks' counterparts; the parser found its table.
    assert!(exported.iter().filter(|n| n.starts_with("envoy_dynamic_module_callback_")).count() > 100);
}

#[test]
fn every_native_plugin_exports_the_required_hooks_and_needs_only_declared_callbacks() {
    let declared = declared_callbacks();
    for plugin in NATIVE_PLUGINS {
        let module = paths::dist_dir().join(format!("{plugin}.so"));
        assert!(module.is_file(), "{} is missing: run `cargo xtask build`", module.display());
        let symbols = dynamic_symbols(&module).unwrap();
        let exported = defined(&symbols);
        let missing: Vec<&&str> = REQUIRED_HOOKS.iter().filter(|hook| !exported.contains(hook)).collect();
        assert!(missing.is_empty(), "{plugin}.so lacks hooks Envoy requires: {missing:?}");
        let needed: Vec<&str> = symbols.iter().filter(|s| !s.defined).map(|s| s.name.as_str()).collect();
        let unknown: Vec<&&str> =
            needed.iter().filter(|name| name.starts_with("envoy_") && !declared.iter().any(|d| d == *name)).collect();
        assert!(unknown.is_empty(), "{plugin}.so needs callbacks the bindings do not declare: {unknown:?}");
        // No Proxy-Wasm symbol leaks into a native module.
        let wasm: Vec<&&str> = needed.iter().chain(exported.iter()).filter(|n| n.starts_with("proxy_")).collect();
        assert!(wasm.is_empty(), "{plugin}.so has Proxy-Wasm symbols: {wasm:?}");
    }
}

#[test]
fn every_native_plugin_needs_no_newer_glibc_than_the_envoy_binary() {
    let envoy = needed_versions(&paths::envoy_binary().unwrap()).unwrap();
    let envoy_glibc = newest_glibc(&envoy, true).expect("Envoy's binary names glibc versions");
    let manifest_path = paths::dist_dir().join("manifest.json");
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    for plugin in NATIVE_PLUGINS {
        let module = paths::dist_dir().join(format!("{plugin}.so"));
        let needed = needed_versions(&module).unwrap();
        // Weak references count too: the baseline is every glibc version the module names.
        let glibc = newest_glibc(&needed, true).expect("a module linked against glibc names its versions");
        let too_new: Vec<&NeededVersion> = needed
            .iter()
            .filter(|n| {
                glibc_version(&n.version).is_some_and(|v| Some(v) > glibc_version(&format!("GLIBC_{envoy_glibc}")))
            })
            .collect();
        assert!(
            too_new.is_empty(),
            "{plugin}.so needs a newer glibc than Envoy's binary ({envoy_glibc}): {too_new:?} \
             (see crates/sdk/src/native/glibc.rs)"
        );
        let entry = manifest["plugins"].as_array().into_iter().flatten().find(|p| p["name"] == *plugin);
        let stated = entry.map(|p| p["native"]["glibc"].clone()).unwrap_or_default();
        assert_eq!(stated, glibc.as_str(), "{plugin}: dist/manifest.json states the glibc baseline the .so has");
    }
}
