//! Every plugin's `spec.yaml` in Higress's format, with OpenAPI 3.0 schemas;
//! its examples valid configs; `deploy/higress/` in agreement with the
//! `[package.metadata.gateway]` table that `spec.yaml` is made from. Needs
//! `cargo xtask build` (the schemas of `dist/`).

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod higress_spec;
mod support;

use gateway_oci::workspace::{self, PluginSource};
use gateway_oci::{spec, Phase};
use serde_json::{json, Value};

/// The plugins, each with its `dist/<name>.schema.json`.
fn plugins() -> Vec<PluginSource> {
    let plugins = workspace::plugins(&support::root()).unwrap();
    assert!(!plugins.is_empty(), "no plugins under plugins/");
    for plugin in &plugins {
        assert!(
            plugin.info.config_schema.is_some(),
            "dist/{}.schema.json is missing: run `cargo xtask build` first",
            plugin.info.name
        );
    }
    plugins
}

fn rendered(plugin: &PluginSource) -> Value {
    serde_yaml_ng::from_str(&spec::render(&plugin.info).unwrap()).unwrap()
}

#[test]
fn every_spec_has_the_structure_of_higress_specs() {
    for plugin in plugins() {
        let name = &plugin.info.name;
        let spec = rendered(&plugin);
        let problems = higress_spec::structure_problems(&spec);
        assert!(problems.is_empty(), "{name}: spec.yaml\n{}", problems.join("\n"));
        assert_eq!(spec["info"]["name"], json!(name));
        assert_eq!(spec["info"]["version"], json!(plugin.info.version));
        // Every option is at the top of the form, none hidden in $defs.
        let options = |schema: &Value| {
            let mut names: Vec<String> =
                schema["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
            names.sort();
            names
        };
        let source = plugin.info.config_schema.as_ref().unwrap();
        let mut expected: Vec<String> = source["$defs"]["Global"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|key| !key.starts_with('_'))
            .cloned()
            .collect();
        expected.sort();
        for key in ["configSchema", "routeConfigSchema"] {
            assert_eq!(options(&spec["spec"][key]["openAPIV3Schema"]), expected, "{name}: {key}");
        }
    }
}

#[test]
fn the_checks_find_json_schema_2020_12() {
    let problems = higress_spec::open_api_problems(
        &json!({
            "type": ["integer", "null"],
            "const": 1,
            "$defs": {},
            "if": {}, "then": {},
            "properties": {"any": true, "list": {"type": "array"}, "headers": {"propertyNames": {"pattern": "x"}}},
            "enum": [null],
            "required": [],
            "exclusiveMinimum": 0,
        }),
        "",
    );
    for expected in [
        "/type: [\"integer\",\"null\"] is not one of",
        ": const is not an OpenAPI 3.0 keyword",
        ": $defs is not an OpenAPI 3.0 keyword",
        ": if is not an OpenAPI 3.0 keyword",
        "/properties/any: a schema must be an object",
        "/properties/list: an array type without items",
        "/properties/headers: propertyNames is not an OpenAPI 3.0 keyword",
        "/enum: [null] is a list with null, without nullable: true",
        "/required: [] is not a non-empty list",
        "/exclusiveMinimum: 0 is not a boolean",
    ] {
        assert!(problems.iter().any(|problem| problem.contains(expected)), "{expected:?} not in {problems:#?}");
    }
    // The SDK's own schema is not a Higress spec: its options sit in $defs.
    let plugin = plugins().into_iter().next().unwrap();
    let raw = json!({
        "apiVersion": "1.0.0",
        "info": {"name": plugin.info.name},
        "spec": {"phase": "AUTHN", "priority": 1, "configSchema": {"openAPIV3Schema": plugin.info.config_schema}},
    });
    let problems = higress_spec::structure_problems(&raw);
    for expected in
        ["/info: no x-title-i18n", "/spec/routeConfigSchema: missing", "$defs is not an OpenAPI 3.0 keyword"]
    {
        assert!(problems.iter().any(|problem| problem.contains(expected)), "{expected:?} not in {problems:#?}");
    }
}

#[test]
fn the_examples_are_configs_the_json_schema_accepts() {
    for plugin in plugins() {
        let name = &plugin.info.name;
        let spec = rendered(&plugin);
        let validator = jsonschema::validator_for(plugin.info.config_schema.as_ref().unwrap()).unwrap();
        let global = spec["spec"]["configSchema"]["openAPIV3Schema"]["example"].clone();
        let mut rule = spec["spec"]["routeConfigSchema"]["openAPIV3Schema"]["example"].clone();
        rule["_match_route_"] = json!(["default/example"]);
        // As Higress passes them on: defaultConfig with matchRules as _rules_.
        let mut document = global.clone();
        document["_rules_"] = json!([rule]);
        for (what, config) in [("example", &global), ("example with the route example as a rule", &document)] {
            let errors: Vec<String> =
                validator.iter_errors(config).map(|e| format!("{e} at {}", e.instance_path())).collect();
            assert!(
                errors.is_empty(),
                "{name}: the {what} is refused by dist/{name}.schema.json: {errors:?}\n{config}"
            );
        }
    }
}

#[test]
fn deploy_higress_agrees_with_the_metadata() {
    for plugin in plugins() {
        let name = &plugin.info.name;
        let file = support::root().join("deploy/higress").join(format!("{name}.yaml"));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        let manifest: Value = serde_yaml_ng::from_str(&text).unwrap();
        let phase: Phase = manifest["spec"]["phase"].as_str().unwrap_or("UNSPECIFIED_PHASE").parse().unwrap();
        let where_ = format!("{} against plugins/{name}/Cargo.toml [package.metadata.gateway]", file.display());
        assert_eq!(phase, plugin.info.phase, "{where_}: phase");
        assert_eq!(manifest["spec"]["priority"].as_i64(), Some(i64::from(plugin.info.priority)), "{where_}: priority");
        let spec = rendered(&plugin);
        assert_eq!(spec["spec"]["phase"], manifest["spec"]["phase"], "{name}: spec.yaml and {}", file.display());
        assert_eq!(
            spec["spec"]["priority"],
            json!(manifest["spec"]["priority"]),
            "{name}: spec.yaml and {}",
            file.display()
        );
    }
}

/// What the OpenAPI schemas cannot check is said in the plugin's README, in
/// its paragraph about `spec.yaml`, naming each field concerned.
#[test]
fn what_openapi_cannot_check_is_in_the_readme() {
    for plugin in plugins() {
        let name = &plugin.info.name;
        let schemas = spec::schemas(&plugin.info).unwrap().unwrap();
        let paragraph = plugin
            .info
            .readme
            .split("\n\n")
            .find(|paragraph| paragraph.contains("spec.yaml") && paragraph.contains("OpenAPI"))
            .unwrap_or_else(|| panic!("plugins/{name}/README.md has no paragraph on spec.yaml's OpenAPI schemas"));
        for lost in schemas.config.lost.iter().chain(&schemas.route.lost) {
            let field =
                lost.strip_prefix("/properties/").and_then(|rest| rest.split(['/', ':']).next()).unwrap_or(lost);
            assert!(
                paragraph.contains(&format!("`{field}`")),
                "{name}: the OpenAPI schema cannot check {lost}; say so in the README's spec.yaml paragraph:\n{paragraph}"
            );
        }
    }
}
