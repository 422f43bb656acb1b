//! The Kubernetes manifests of `deploy/`: a Higress `WasmPlugin` for every
//! plugin, an Istio `WasmPlugin` for every plugin that loads on Istio, each
//! well-formed and with configs that the plugin's schema and the plugin
//! itself accept (as the gateway passes them on: Higress turns `matchRules`
//! into `_rules_`). Needs `cargo xtask build` (schemas and manifest).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod ship;

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

const PHASES: [&str; 4] = ["UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"];

/// `(plugin name, manifest)` of every `deploy/<dir>/*.yaml`.
fn manifests(dir: &str) -> Vec<(String, Value)> {
    let path = e2e::paths::repo_root().join("deploy").join(dir);
    let mut found: Vec<(String, Value)> = std::fs::read_dir(&path)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", path.display()))
        .flatten()
        .map(|entry| entry.path())
        .filter(|file| file.extension().is_some_and(|ext| ext == "yaml"))
        .map(|file| (stem(&file), ship::read_yaml(&file)))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

fn stem(file: &Path) -> String {
    file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `oci://<registry>/gateway-plugins/<name>:<version>`: what `cargo xtask push
/// --all <registry>/gateway-plugins` pushes.
fn expected_url(name: &str) -> String {
    let manifest = ship::dist_manifest();
    let entry = manifest["plugins"].as_array().and_then(|l| l.iter().find(|p| p["name"] == name)).cloned();
    let version =
        entry.and_then(|e| e["version"].as_str().map(str::to_string)).expect("plugin not in dist/manifest.json");
    format!("oci://<registry>/gateway-plugins/{name}:{version}")
}

/// The schema and the plugin both accept `config` (the JSON the plugin gets).
fn check_config(place: &str, plugin: &str, config: &Value) {
    let validator = jsonschema::validator_for(&ship::schema(plugin)).unwrap();
    let errors: Vec<String> = validator.iter_errors(config).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{place}: not valid for dist/{plugin}.schema.json: {errors:?}\n{config}");
    if let Err(err) = ship::plugin_verdict(plugin, &config.to_string()) {
        panic!("{place}: {plugin} refuses its config: {err}\n{config}");
    }
}

#[test]
fn a_higress_wasm_plugin_for_every_plugin() {
    let manifests = manifests("higress");
    let names: Vec<String> = manifests.iter().map(|(name, _)| name.clone()).collect();
    assert_eq!(names, ship::plugins(), "deploy/higress/ must have one <name>.yaml per plugin of plugins/");
    for (name, doc) in manifests {
        let place = format!("deploy/higress/{name}.yaml");
        assert_eq!(doc["apiVersion"], "extensions.higress.io/v1alpha1", "{place}");
        assert_eq!(doc["kind"], "WasmPlugin", "{place}");
        assert_eq!(doc["metadata"]["name"], name.as_str(), "{place}");
        let spec = &doc["spec"];
        assert_eq!(spec["url"], expected_url(&name).as_str(), "{place}");
        assert!(PHASES.contains(&spec["phase"].as_str().unwrap_or_default()), "{place}: phase {}", spec["phase"]);
        assert!(spec["priority"].is_i64(), "{place}: priority {}", spec["priority"]);
        assert!(spec["defaultConfig"].is_object(), "{place}: defaultConfig must be an object");
        let rules = spec["matchRules"].as_array().unwrap_or_else(|| panic!("{place}: no matchRules"));
        for kind in ["ingress", "domain"] {
            let per_kind = rules
                .iter()
                .any(|r| r[kind].as_array().is_some_and(|l| !l.is_empty() && l.iter().all(Value::is_string)));
            assert!(per_kind, "{place}: no matchRules entry per {kind}");
        }
        for rule in rules {
            assert!(rule["config"].is_object(), "{place}: a matchRules entry without a config object: {rule}");
        }
        // What Higress gives the plugin, and the default config alone.
        check_config(&place, &name, &ship::higress_plugin_json(spec));
        check_config(&format!("{place} defaultConfig"), &name, &spec["defaultConfig"]);
    }
}

#[test]
fn an_istio_wasm_plugin_for_every_plugin_that_loads_on_istio() {
    let manifests = manifests("istio");
    let names: BTreeSet<String> = manifests.iter().map(|(name, _)| name.clone()).collect();
    let on_istio: BTreeSet<String> =
        ship::plugins().into_iter().filter(|p| ship::hosts_of(p).iter().any(|h| h == "istio")).collect();
    assert_eq!(names, on_istio, "deploy/istio/ must have one <name>.yaml per plugin that loads on Istio");
    assert!(!names.contains("redis-rate-limit"), "redis-rate-limit needs Higress");
    for (name, doc) in manifests {
        let place = format!("deploy/istio/{name}.yaml");
        assert_eq!(doc["apiVersion"], "extensions.istio.io/v1alpha1", "{place}");
        assert_eq!(doc["kind"], "WasmPlugin", "{place}");
        assert_eq!(doc["metadata"]["name"], name.as_str(), "{place}");
        let spec = &doc["spec"];
        let labels = spec["selector"]["matchLabels"].as_object();
        assert!(labels.is_some_and(|l| !l.is_empty()), "{place}: no selector.matchLabels");
        assert_eq!(spec["url"], expected_url(&name).as_str(), "{place}");
        assert!(spec["pluginConfig"].is_object(), "{place}: pluginConfig must be an object");
        check_config(&place, &name, &spec["pluginConfig"]);
    }
}
