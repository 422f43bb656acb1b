//! What the shipping tests share (`compose.rs`, `deploy.rs`, `schema.rs`,
//! `dist_manifest.rs`, `new_plugin.rs`): the plugins of the workspace, the
//! files of `dist/`, the config examples of the repository, and each plugin's
//! own verdict on a config.
#![allow(dead_code)]

use e2e::paths;
use gateway_sdk::schema::config_schema;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The plugins of the workspace (directories of `plugins/` with a
/// `Cargo.toml`; each directory is named as its package), sorted.
pub fn plugins() -> Vec<String> {
    let dir = paths::repo_root().join("plugins");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .flatten()
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in &names {
        let manifest = std::fs::read_to_string(dir.join(name).join("Cargo.toml")).unwrap();
        assert!(manifest.contains(&format!("name = \"{name}\"")), "plugins/{name} is not the package {name}");
    }
    names
}

/// `dist/<file>`, which `cargo xtask build` makes: a missing one fails the
/// test with the command to run.
pub fn dist_file(file: &str) -> PathBuf {
    let path = paths::dist_dir().join(file);
    assert!(path.is_file(), "{} is missing: run `cargo xtask build` first", path.display());
    path
}

/// `dist/manifest.json`.
pub fn dist_manifest() -> Value {
    read_json(&dist_file("manifest.json"))
}

/// The hosts `dist/manifest.json` gives plugin `name`.
pub fn hosts_of(name: &str) -> Vec<String> {
    let manifest = dist_manifest();
    let entry = manifest["plugins"]
        .as_array()
        .and_then(|list| list.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("{name} is not in dist/manifest.json: run `cargo xtask build`"));
    serde_json::from_value(entry["hosts"].clone()).unwrap()
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{} is not JSON: {err}", path.display()))
}

pub fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|err| panic!("{} is not YAML: {err}", path.display()))
}

/// The repository's `envoy.yaml`, as written (for `docker compose`).
pub fn envoy_yaml() -> Value {
    read_yaml(&paths::envoy_yaml())
}

/// A Wasm filter of `envoy.yaml`.
#[derive(Debug)]
pub struct WasmFilter {
    /// The HTTP filter's name.
    pub name: String,
    /// `vm_config.code.local.filename`.
    pub file: String,
    /// `configuration.value`, the plugin's JSON.
    pub configuration: String,
    /// `disabled: true`: on only where a route enables it.
    pub disabled: bool,
}

/// The HTTP filters of every listener's HTTP connection managers.
pub fn http_filters(envoy: &Value) -> Vec<Value> {
    let mut found = Vec::new();
    for listener in envoy["static_resources"]["listeners"].as_array().into_iter().flatten() {
        for chain in listener["filter_chains"].as_array().into_iter().flatten() {
            for filter in chain["filters"].as_array().into_iter().flatten() {
                found.extend(filter["typed_config"]["http_filters"].as_array().into_iter().flatten().cloned());
            }
        }
    }
    found
}

/// The routes of every virtual host of every listener.
pub fn routes(envoy: &Value) -> Vec<Value> {
    let mut found = Vec::new();
    for listener in envoy["static_resources"]["listeners"].as_array().into_iter().flatten() {
        for chain in listener["filter_chains"].as_array().into_iter().flatten() {
            for filter in chain["filters"].as_array().into_iter().flatten() {
                let hosts = &filter["typed_config"]["route_config"]["virtual_hosts"];
                for host in hosts.as_array().into_iter().flatten() {
                    found.extend(host["routes"].as_array().into_iter().flatten().cloned());
                }
            }
        }
    }
    found
}

/// The Wasm filters of `envoy.yaml`.
pub fn wasm_filters(envoy: &Value) -> Vec<WasmFilter> {
    http_filters(envoy)
        .iter()
        .filter(|f| f["typed_config"]["@type"] == "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm")
        .map(|f| {
            let config = &f["typed_config"]["config"];
            WasmFilter {
                name: f["name"].as_str().unwrap_or_default().to_string(),
                file: config["vm_config"]["code"]["local"]["filename"].as_str().unwrap_or_default().to_string(),
                configuration: config["configuration"]["value"].as_str().unwrap_or_default().to_string(),
                disabled: f["disabled"] == true,
            }
        })
        .collect()
}

/// The ```json blocks of a Markdown text.
pub fn json_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim() == "```json" => current = Some(String::new()),
            Some(block) if line.trim() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// What Higress gives the plugin for a `WasmPlugin` spec: `defaultConfig`
/// (unless `defaultConfigDisable`) as the global keys, and each `matchRules`
/// entry as a `_rules_` entry (`ingress` -> `_match_route_`, `domain` ->
/// `_match_domain_`, `service` -> `_match_service_`) with its `config`.
pub fn higress_plugin_json(spec: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if spec["defaultConfigDisable"] != true {
        if let Some(global) = spec["defaultConfig"].as_object() {
            out.extend(global.clone());
        }
    }
    let mut rules = Vec::new();
    for rule in spec["matchRules"].as_array().into_iter().flatten() {
        if rule["configDisable"] == true {
            continue;
        }
        let mut entry = rule["config"].as_object().cloned().unwrap_or_default();
        for (key, match_key) in
            [("ingress", "_match_route_"), ("domain", "_match_domain_"), ("service", "_match_service_")]
        {
            if let Some(list) = rule.get(key) {
                entry.insert(match_key.to_string(), list.clone());
            }
        }
        rules.push(Value::Object(entry));
    }
    if !rules.is_empty() {
        out.insert("_rules_".to_string(), Value::Array(rules));
    }
    Value::Object(out)
}

/// Every config example of the repository for `plugin`, with where it is:
/// the ```json blocks of its README, its `deploy/` manifests (as the gateway
/// passes them on) and its filters in `envoy.yaml`.
pub fn examples(plugin: &str) -> Vec<(String, String)> {
    let root = paths::repo_root();
    let mut found = Vec::new();
    let readme = root.join("plugins").join(plugin).join("README.md");
    let text = std::fs::read_to_string(&readme).unwrap_or_default();
    for (index, block) in json_blocks(&text).into_iter().enumerate() {
        found.push((format!("plugins/{plugin}/README.md json block {}", index + 1), block));
    }
    let higress = root.join("deploy/higress").join(format!("{plugin}.yaml"));
    if higress.is_file() {
        let doc = read_yaml(&higress);
        found.push((format!("deploy/higress/{plugin}.yaml"), higress_plugin_json(&doc["spec"]).to_string()));
    }
    let istio = root.join("deploy/istio").join(format!("{plugin}.yaml"));
    if istio.is_file() {
        let doc = read_yaml(&istio);
        found.push((format!("deploy/istio/{plugin}.yaml"), doc["spec"]["pluginConfig"].to_string()));
    }
    for filter in wasm_filters(&envoy_yaml()) {
        if filter.file.ends_with(&format!("/{plugin}.wasm")) {
            found.push((format!("envoy.yaml filter {}", filter.name), filter.configuration));
        }
    }
    found
}

/// The JSON Schema shipped for `plugin`: `dist/<plugin>.schema.json`.
pub fn schema(plugin: &str) -> Value {
    read_json(&dist_file(&format!("{plugin}.schema.json")))
}

/// The schema generated now from the plugin's Rust type (the plugins this
/// crate links; `None` for others).
pub fn current_schema(plugin: &str) -> Option<Value> {
    match plugin {
        "hello-world" => Some(config_schema::<hello_world::HelloWorld>()),
        "http-call" => Some(config_schema::<http_call::HttpCall>()),
        "mock" => Some(config_schema::<mock::Mock>()),
        "redis-rate-limit" => Some(config_schema::<redis_rate_limit::RedisRateLimit>()),
        _ => None,
    }
}

fn parse<P: gateway_sdk::Plugin>(json: &str) -> Result<(), String> {
    gateway_sdk::config::Rules::<P::Config>::parse(json.as_bytes(), P::RULE_MODE).map(|_| ()).map_err(|e| e.to_string())
}

thread_local! {
    static HOSTS: RefCell<HashMap<String, gateway_testhost::TestHost>> = RefCell::new(HashMap::new());
}

/// Whether `plugin` accepts `json` as its configuration, and why not: parsed
/// by the SDK natively through the plugin's rlib (`Rules::<Config>::parse`
/// with its rule mode) for the plugins this crate links, and for any other
/// plugin of `plugins/` (e.g. one made by `cargo xtask new`) by its module
/// `dist/<plugin>.wasm` on the test host.
pub fn plugin_verdict(plugin: &str, json: &str) -> Result<(), String> {
    match plugin {
        "hello-world" => parse::<hello_world::HelloWorld>(json),
        "http-call" => parse::<http_call::HttpCall>(json),
        "mock" => parse::<mock::Mock>(json),
        "redis-rate-limit" => parse::<redis_rate_limit::RedisRateLimit>(json),
        other => HOSTS.with(|hosts| {
            let mut hosts = hosts.borrow_mut();
            if !hosts.contains_key(other) {
                let module = dist_file(&format!("{other}.wasm"));
                let host = gateway_testhost::TestHost::load(&module)
                    .unwrap_or_else(|err| panic!("{}: {err}", module.display()));
                hosts.insert(other.to_string(), host);
            }
            let host = &hosts[other];
            match host.configure(json) {
                Ok(()) => Ok(()),
                Err(err @ gateway_testhost::Error::ConfigRejected { .. }) => Err(err.to_string()),
                Err(err) => panic!("{other} on the test host with {json}: {err}"),
            }
        }),
    }
}

/// `{}` with the keys of `pairs`.
pub fn object(pairs: &[(&str, Value)]) -> Value {
    let mut map = serde_json::Map::new();
    for (key, value) in pairs {
        map.insert((*key).to_string(), value.clone());
    }
    Value::Object(map)
}

/// A JSON value that is not an object: what a config must never be.
pub fn not_objects() -> Vec<Value> {
    vec![json!(null), json!([]), json!("x"), json!(1)]
}
