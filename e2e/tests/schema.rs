//! The JSON Schemas of `dist/<name>.schema.json` (made by `cargo xtask build`
//! from each plugin's Rust config type) against what the plugins accept.
//!
//! * Each schema is a valid JSON Schema (2020-12) and is the one the plugin's
//!   code makes now (`gateway_sdk::schema::config_schema` through the rlib):
//!   `dist/` is not stale.
//! * Every config example of the repository (the ```json blocks of the
//!   plugins' READMEs, the `deploy/` manifests, the filters of `envoy.yaml`)
//!   is valid for the schema and accepted by the plugin.
//! * The schema and the plugin agree on a few thousand configs per plugin: the
//!   examples, the bad configs of the plugins' tests, and mutations of the
//!   examples (each field removed, or set to values of every JSON type and at
//!   the edges of what fields accept: wrong types, unknown fields, missing
//!   required fields, out-of-range numbers, bad header names, blank strings,
//!   broken `_rules_` and match keys). `schema.is_valid(config)` must equal
//!   `Rules::<Config>::parse(config, RULE_MODE).is_ok()`, run natively through
//!   the plugin's rlib (or, for a plugin this crate does not link, such as one
//!   made by `cargo xtask new`, by its module on the test host).
//! * What a JSON Schema cannot say is listed in `known_limits_of_the_schema`,
//!   and checked to still be the only gaps.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod ship;

use serde_json::{json, Value};
use ship::{plugin_verdict, plugins};
use std::collections::BTreeSet;

fn validator(plugin: &str) -> jsonschema::Validator {
    jsonschema::validator_for(&ship::schema(plugin))
        .unwrap_or_else(|err| panic!("dist/{plugin}.schema.json is not a usable schema: {err}"))
}

#[test]
fn schemas_are_valid_and_current() {
    for plugin in plugins() {
        let schema = ship::schema(&plugin);
        assert!(jsonschema::meta::is_valid(&schema), "dist/{plugin}.schema.json is not a valid JSON Schema");
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(schema["title"], format!("{plugin} configuration"));
        if let Some(current) = ship::current_schema(&plugin) {
            assert_eq!(schema, current, "dist/{plugin}.schema.json is stale: run `cargo xtask build`");
        }
    }
}

#[test]
fn every_example_is_valid_and_accepted() {
    let mut checked = 0;
    for plugin in plugins() {
        let validator = validator(&plugin);
        let examples = ship::examples(&plugin);
        assert!(!examples.is_empty(), "{plugin} has no config example (README, deploy/ or envoy.yaml)");
        for (place, text) in examples {
            let value: Value = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{place}: not JSON: {err}"));
            let errors: Vec<String> =
                validator.iter_errors(&value).map(|e| format!("{e} at {}", e.instance_path())).collect();
            assert!(errors.is_empty(), "{place} is not valid for dist/{plugin}.schema.json: {errors:?}\n{text}");
            if let Err(err) = plugin_verdict(&plugin, &text) {
                panic!("{place}: {plugin} refuses it: {err}\n{text}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} examples found");
}

/// Configs the plugins' own tests refuse (plugins/*/tests, e2e/tests/bad_config.rs, unit tests).
fn bad_configs(plugin: &str) -> Vec<&'static str> {
    match plugin {
        "hello-world" => vec![r#"{"greeting": "hi"}"#, r#"{"_rules_": []}"#, r#"{"_rules_": [{}]}"#],
        "mock" => vec![
            r#"{"mockEnable": "yes"}"#,
            r#"{"status": 700}"#,
            r#"{"status": "200"}"#,
            r#"{"headers": {"bad name": "x"}}"#,
            r#"{"headers": {"x": "a\r\nb"}}"#,
            r#"{"body": 3}"#,
            r#"{"mockEnabled": true}"#,
            r#"{"mockenable": true}"#,
            r#"{"_rules_": [{"_match_route_": ["r"], "status": 99}]}"#,
            r#"{"_rules_": [{"mockEnable": true}]}"#,
        ],
        "http-call" => vec![
            r#"{"requestPath": "/t", "serviceName": "s.dns", "servicePort": 80}"#,
            r#"{"tokenHeader": "bad header", "requestPath": "/t", "serviceName": "s.dns", "servicePort": 80}"#,
            r#"{"tokenHeader": "x", "serviceName": "s.dns", "servicePort": 80}"#,
            r#"{"tokenHeader": "x", "requestPath": "", "serviceName": "s.dns", "servicePort": 80}"#,
            r#"{"tokenHeader": "x", "requestPath": "/t", "servicePort": 80}"#,
            r#"{"tokenHeader": "x", "requestPath": "/t", "serviceName": "s.dns"}"#,
            r#"{"tokenHeader": "x", "requestPath": "/t", "serviceName": "s.dns", "servicePort": 80, "timeout": 0}"#,
            r#"{"tokenHeader": "x", "requestPath": "/t", "serviceName": "s.dns", "servicePort": 80, "timeout": "fast"}"#,
            r#"{"tokenHeader": "x", "requestPath": "/t", "serviceName": "s.dns", "servicePort": 70000}"#,
            r#"{"tokenHeader": "x", "requestPath": "/t", "serviceName": "s.dns", "servicePort": 80, "extra": 1}"#,
            r#"{"tokenHeader": "x", "requestPath": "/t", "serviceName": "s.dns", "servicePort": 0}"#,
            r#"{"tokenHeader": "x", "requestPath": "/t", "serviceName": "a|b.dns", "servicePort": 80}"#,
            r#"{"tokenHeader": "x", "requestPath": "/t", "serviceName": " s.dns", "servicePort": 80}"#,
        ],
        "redis-rate-limit" => vec![
            r#"{"qpm": 1}"#,
            r#"{"serviceName": "r.dns"}"#,
            r#"{"serviceName": "r.dns", "qpm": 1, "limit": 2}"#,
            r#"{"serviceName": "r.dns", "qpm": 1, "window": "hour"}"#,
            r#"{"serviceName": "r.dns", "qpm": 0}"#,
            r#"{"serviceName": "r.dns", "qpm": "10"}"#,
            r#"{"serviceName": "r.dns", "limit": 1, "window": "week"}"#,
            r#"{"serviceName": "r.dns", "qpm": 1, "limitBy": "ip"}"#,
            r#"{"serviceName": "r.dns", "qpm": 1, "timeout": 0}"#,
            r#"{"serviceName": "", "qpm": 1}"#,
            r#"{"serviceName": "r.dns", "qpm": 1, "servicePort": 0}"#,
        ],
        _ => Vec::new(),
    }
}

/// Values tried in every field: every JSON type, and the edges of what the
/// fields of the plugins accept.
fn values() -> Vec<Value> {
    vec![
        json!(null),
        json!(true),
        json!(false),
        json!(0),
        json!(1),
        json!(-1),
        json!(199),
        json!(200),
        json!(599),
        json!(600),
        json!(65535),
        json!(65536),
        json!(4_294_967_295u64),
        json!(4_294_967_296u64),
        json!(1.5),
        json!(""),
        json!(" "),
        json!("x"),
        json!("x-token"),
        json!("X-Api-Key"),
        json!("bad name"),
        json!("a:b"),
        json!("a\r\nb"),
        json!("/path?x=1"),
        json!("redis.dns"),
        json!("10.0.0.7.static"),
        json!("a|b.dns"),
        json!(" padded.dns"),
        json!("second"),
        json!("week"),
        json!("global"),
        json!("clientIp"),
        json!("route"),
        json!("header"),
        json!("closed"),
        json!("open"),
        json!([]),
        json!(["x"]),
        json!({}),
        json!({"header": "x-api-key"}),
        json!({"header": "bad name"}),
        json!({"query": "key"}),
        json!({"query": " "}),
        json!({"header": "x", "query": "y"}),
        json!({"content-type": "text/plain"}),
        json!({"x": "a\nb"}),
        json!({"x": 1}),
    ]
}

const META: [&str; 2] = ["_rules_", "_plugin_id_"];
const MATCH_KEYS: [&str; 4] = ["_match_route_", "_match_domain_", "_match_service_", "_match_route_prefix_"];

/// Mutations of one config object (the global keys, or a rule): each key
/// removed, each field set to each value, an unknown key added.
fn mutate_object(
    object: &serde_json::Map<String, Value>,
    fields: &[String],
    out: &mut Vec<serde_json::Map<String, Value>>,
) {
    for key in object.keys() {
        let mut changed = object.clone();
        changed.remove(key);
        out.push(changed);
    }
    for field in fields {
        for value in values() {
            let mut changed = object.clone();
            changed.insert(field.clone(), value);
            out.push(changed);
        }
    }
    let mut changed = object.clone();
    changed.insert("unknownField".to_string(), json!(1));
    out.push(changed);
}

/// Every config tried for `plugin`: its examples and bad configs, and their mutations.
fn cases(plugin: &str, fields: &[String]) -> BTreeSet<String> {
    let mut bases: Vec<Value> =
        ship::examples(plugin).into_iter().filter_map(|(_, text)| serde_json::from_str(&text).ok()).collect();
    let mut cases: BTreeSet<String> = bad_configs(plugin).iter().map(|s| s.to_string()).collect();
    bases.extend(cases.iter().filter_map(|text| serde_json::from_str::<Value>(text).ok()));
    bases.push(json!({}));
    for base in &bases {
        cases.insert(base.to_string());
        let Some(doc) = base.as_object() else { continue };
        // The global keys.
        let global: serde_json::Map<String, Value> =
            doc.iter().filter(|(k, _)| !META.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut mutated = Vec::new();
        mutate_object(&global, fields, &mut mutated);
        for changed in mutated {
            let mut next = changed;
            for key in META {
                if let Some(value) = doc.get(key) {
                    next.insert(key.to_string(), value.clone());
                }
            }
            cases.insert(Value::Object(next).to_string());
        }
        // The document's own keys.
        for (key, value) in [
            ("_rules_", json!([])),
            ("_rules_", json!({})),
            ("_rules_", json!(null)),
            ("_rules_", json!([1])),
            ("_rules_", json!([{}])),
            ("_rules_", json!([{"_match_route_": ["r"]}])),
            ("_plugin_id_", json!("id-1")),
            ("_plugin_id_", json!(1)),
        ] {
            let mut next = doc.clone();
            next.insert(key.to_string(), value);
            cases.insert(Value::Object(next).to_string());
        }
        // Rules only, without global keys.
        if let Some(rules) = doc.get("_rules_") {
            cases.insert(json!({"_rules_": rules}).to_string());
            cases.insert(json!({"_rules_": rules, "_plugin_id_": "p"}).to_string());
        }
        // Each rule.
        let rules = doc.get("_rules_").and_then(Value::as_array).cloned().unwrap_or_default();
        for (index, rule) in rules.iter().enumerate() {
            let Some(rule) = rule.as_object() else { continue };
            let mut mutated = Vec::new();
            mutate_object(rule, fields, &mut mutated);
            for (key, value) in [
                ("_match_route_", json!([])),
                ("_match_route_", json!([""])),
                ("_match_route_", json!(["", "r2"])),
                ("_match_route_", json!("r")),
                ("_match_route_", json!([1])),
                ("_match_domain_", json!(["*.example.com"])),
                ("_match_service_", json!(null)),
                ("_match_route_prefix_", json!(["api-"])),
                ("_plugin_id_", json!("p")),
            ] {
                let mut changed = rule.clone();
                changed.insert(key.to_string(), value);
                mutated.push(changed);
            }
            let mut without_match = rule.clone();
            without_match.retain(|k, _| !MATCH_KEYS.contains(&k.as_str()));
            mutated.push(without_match);
            for changed in mutated {
                let mut next_rules = rules.clone();
                next_rules[index] = Value::Object(changed);
                let mut next = doc.clone();
                next.insert("_rules_".to_string(), Value::Array(next_rules));
                cases.insert(Value::Object(next).to_string());
            }
        }
    }
    for value in ship::not_objects() {
        cases.insert(value.to_string());
    }
    cases
}

/// The config fields the schema lists (its global config's properties).
fn fields_of(schema: &Value) -> Vec<String> {
    schema["$defs"]["Global"]["properties"]
        .as_object()
        .map(|p| p.keys().filter(|k| !META.contains(&k.as_str())).cloned().collect())
        .unwrap_or_default()
}

#[test]
fn schema_and_plugin_agree() {
    for plugin in plugins() {
        let schema = ship::schema(&plugin);
        let validator = validator(&plugin);
        let cases = cases(&plugin, &fields_of(&schema));
        let (mut accepted, mut mismatches) = (0, Vec::new());
        for text in &cases {
            let value: Value = serde_json::from_str(text).unwrap();
            let by_schema = validator.is_valid(&value);
            let by_plugin = plugin_verdict(&plugin, text);
            accepted += usize::from(by_plugin.is_ok());
            if by_schema != by_plugin.is_ok() {
                let why = match &by_plugin {
                    Ok(()) => "the plugin accepts it, the schema refuses it".to_string(),
                    Err(err) => format!("the schema accepts it, the plugin refuses it: {err}"),
                };
                mismatches.push(format!("{text}\n    {why}"));
            }
        }
        assert!(
            mismatches.is_empty(),
            "{plugin}: schema and plugin disagree on {} of {} configs, e.g.:\n{}",
            mismatches.len(),
            cases.len(),
            mismatches.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
        );
        // Both verdicts occur, many times.
        assert!(accepted >= 5 && cases.len() - accepted >= 20, "{plugin}: {accepted} of {} accepted", cases.len());
        eprintln!("{plugin}: schema and plugin agree on {} configs ({accepted} accepted)", cases.len());
    }
}

/// What the schemas do not express, because JSON Schema cannot (or not
/// without rewriting the plugin's types): the plugin's verdict differs. Each
/// plugin README says so under its config table.
#[test]
fn known_limits_of_the_schema() {
    // (plugin, config text, what the plugin does)
    let limits = [
        // JSON Schema calls 200.0 and 1e2 integers; serde's integer fields refuse them.
        ("mock", r#"{"status": 200.0}"#, false),
        ("redis-rate-limit", r#"{"serviceName": "r.dns", "qpm": 1e2}"#, false),
        // Duplicate keys: a JSON value has none; the SDK refuses them.
        ("mock", r#"{"mockEnable": true, "mockEnable": false}"#, false),
        // A unit variant written as `{"variant": null}`: serde accepts it, the
        // schema lists only the string form.
        ("redis-rate-limit", r#"{"serviceName": "r.dns", "qpm": 1, "limitBy": {"global": null}}"#, true),
    ];
    for (plugin, text, plugin_accepts) in limits {
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(plugin_verdict(plugin, text).is_ok(), plugin_accepts, "{plugin}: {text}");
        assert_eq!(validator(plugin).is_valid(&value), !plugin_accepts, "{plugin}: {text} is no longer a gap");
    }
    // An empty configuration is `{}` for the plugin, and no JSON at all for a schema.
    assert!(plugin_verdict("mock", "").is_ok());
}
