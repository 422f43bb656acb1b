//! What a `spec.yaml` must look like to be read as Higress's own are: the
//! structure of the specs of Higress's built-in plugins (higress-group/
//! higress-console, `backend/sdk/src/main/resources/plugins/*/spec.yaml`, e.g.
//! `key-auth`, `cors`, `custom-response`), as the "Wasm Plugin Image
//! Specification" describes it, and the Schema Object of OpenAPI 3.0.3, which
//! the console parses them with (swagger's `Schema` models).
//!
//! Each check returns the problems it found, as `<where>: <what>`, so that a
//! test can show all of them at once (and a test of the checks can see that
//! they find what they should).

#![allow(dead_code)]

use serde_json::{Map, Value};

/// Keys of `info` in the real specs; the first ones every real spec has.
const INFO_REQUIRED: [&str; 8] =
    ["category", "name", "title", "x-title-i18n", "description", "x-description-i18n", "iconUrl", "version"];
const INFO_OPTIONAL: [&str; 6] = ["gatewayMinVersion", "type", "image", "readmeUrl", "x-readmeUrl-i18n", "contact"];
const SPEC_KEYS: [&str; 4] = ["phase", "priority", "configSchema", "routeConfigSchema"];
const PHASES: [&str; 4] = ["UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"];

/// The keywords of an OpenAPI 3.0.3 Schema Object (besides `x-` extensions).
const SCHEMA_KEYWORDS: [&str; 36] = [
    "title",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "required",
    "enum",
    "type",
    "allOf",
    "oneOf",
    "anyOf",
    "not",
    "items",
    "properties",
    "additionalProperties",
    "description",
    "format",
    "default",
    "nullable",
    "discriminator",
    "readOnly",
    "writeOnly",
    "xml",
    "externalDocs",
    "example",
    "deprecated",
    "$ref",
];
const TYPES: [&str; 6] = ["string", "number", "integer", "boolean", "array", "object"];

/// Problems of `spec` (the parsed `spec.yaml`) against the real specs' structure.
pub fn structure_problems(spec: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(top) = spec.as_object() else { return vec!["/: not a mapping".into()] };
    keys_within(top, &["apiVersion", "info", "spec"], "/", &mut problems);
    if spec["apiVersion"] != "1.0.0" {
        problems.push(format!("/apiVersion: {} instead of 1.0.0", spec["apiVersion"]));
    }

    match spec["info"].as_object() {
        None => problems.push("/info: not a mapping".into()),
        Some(info) => {
            let known: Vec<&str> = INFO_REQUIRED.iter().chain(INFO_OPTIONAL.iter()).copied().collect();
            keys_within(info, &known, "/info", &mut problems);
            for key in INFO_REQUIRED {
                if !info.contains_key(key) {
                    problems.push(format!("/info: no {key}"));
                }
            }
            for key in ["category", "name", "title", "description", "version", "iconUrl", "readmeUrl"] {
                if info.get(key).is_some_and(|value| !non_empty_string(value)) {
                    problems.push(format!("/info/{key}: not a non-empty string"));
                }
            }
            for key in ["iconUrl", "readmeUrl"] {
                if info.get(key).and_then(Value::as_str).is_some_and(|url| !url.starts_with("https://")) {
                    problems.push(format!("/info/{key}: not an https URL"));
                }
            }
            i18n_problems(&spec["info"], "/info", &mut problems);
            if let Some(contact) = info.get("contact") {
                match contact.as_object() {
                    None => problems.push("/info/contact: not a mapping".into()),
                    Some(map) => {
                        keys_within(map, &["name", "url", "email"], "/info/contact", &mut problems);
                        if !map.get("name").is_some_and(non_empty_string) {
                            problems.push("/info/contact: no name".into());
                        }
                    }
                }
            }
        }
    }

    match spec["spec"].as_object() {
        None => problems.push("/spec: not a mapping".into()),
        Some(body) => {
            keys_within(body, &SPEC_KEYS, "/spec", &mut problems);
            if !body.get("phase").and_then(Value::as_str).is_some_and(|phase| PHASES.contains(&phase)) {
                problems.push(format!("/spec/phase: {:?} is not one of {PHASES:?}", body.get("phase")));
            }
            if !body.get("priority").is_some_and(Value::is_i64) {
                problems.push("/spec/priority: not an integer".into());
            }
            for key in ["configSchema", "routeConfigSchema"] {
                let place = format!("/spec/{key}");
                let Some(wrapper) = body.get(key).and_then(Value::as_object) else {
                    problems.push(format!("{place}: missing or not a mapping"));
                    continue;
                };
                keys_within(wrapper, &["openAPIV3Schema"], &place, &mut problems);
                let place = format!("{place}/openAPIV3Schema");
                let Some(schema) = wrapper.get("openAPIV3Schema") else {
                    problems.push(format!("{place}: missing"));
                    continue;
                };
                config_schema_problems(schema, &place, &mut problems);
            }
        }
    }
    problems
}

/// A form's schema: an object with an `example` and titled, translated fields.
fn config_schema_problems(schema: &Value, place: &str, problems: &mut Vec<String>) {
    if schema["type"] != "object" {
        problems.push(format!("{place}: type is not object"));
    }
    if !schema["example"].is_object() {
        problems.push(format!("{place}: no example object"));
    }
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        let here = format!("{place}/properties/{name}");
        for key in ["title", "description"] {
            if !property.get(key).is_some_and(non_empty_string) {
                problems.push(format!("{here}: no {key}"));
            }
        }
        i18n_problems(property, &here, problems);
    }
    problems.extend(open_api_problems(schema, place));
}

/// `x-title-i18n` and `x-description-i18n`: language tags to texts, the same tags.
fn i18n_problems(owner: &Value, place: &str, problems: &mut Vec<String>) {
    let mut tags = Vec::new();
    for key in ["x-title-i18n", "x-description-i18n"] {
        let Some(map) = owner.get(key).and_then(Value::as_object) else {
            problems.push(format!("{place}: no {key} mapping"));
            continue;
        };
        if map.is_empty() {
            problems.push(format!("{place}/{key}: empty"));
        }
        for (tag, text) in map {
            if !is_language_tag(tag) {
                problems.push(format!("{place}/{key}: {tag:?} is not a language tag like zh-CN"));
            }
            if !non_empty_string(text) {
                problems.push(format!("{place}/{key}/{tag}: not a non-empty string"));
            }
        }
        tags.push(map.keys().cloned().collect::<Vec<_>>());
    }
    if let [titles, descriptions] = tags.as_slice() {
        if titles != descriptions {
            problems.push(format!("{place}: titles in {titles:?} but descriptions in {descriptions:?}"));
        }
    }
}

/// Problems of `schema` as an OpenAPI 3.0.3 Schema Object (standalone: a
/// `$ref` has nothing to point to).
pub fn open_api_problems(schema: &Value, place: &str) -> Vec<String> {
    let mut problems = Vec::new();
    check_schema(schema, place, &mut problems);
    problems
}

fn check_schema(schema: &Value, place: &str, problems: &mut Vec<String>) {
    let Some(object) = schema.as_object() else {
        problems.push(format!("{place}: a schema must be an object, not {schema}"));
        return;
    };
    for (key, value) in object {
        let here = format!("{place}/{key}");
        if key.starts_with("x-") {
            continue;
        }
        if !SCHEMA_KEYWORDS.contains(&key.as_str()) {
            problems.push(format!("{place}: {key} is not an OpenAPI 3.0 keyword"));
            continue;
        }
        if let Some(expected) = value_problem(key, value, object) {
            problems.push(format!("{here}: {value} is {expected}"));
        }
        match key.as_str() {
            "allOf" | "anyOf" | "oneOf" => {
                for (index, branch) in value.as_array().into_iter().flatten().enumerate() {
                    check_schema(branch, &format!("{here}/{index}"), problems);
                }
            }
            "not" | "items" => check_schema(value, &here, problems),
            "properties" => {
                for (name, property) in value.as_object().into_iter().flatten() {
                    check_schema(property, &format!("{here}/{name}"), problems);
                }
            }
            "additionalProperties" if !value.is_boolean() => check_schema(value, &here, problems),
            _ => {}
        }
    }
    if object.get("nullable") == Some(&Value::Bool(true)) && !object.contains_key("type") {
        problems.push(format!("{place}: nullable without a type"));
    }
    if object.get("type") == Some(&Value::String("array".into())) && !object.contains_key("items") {
        problems.push(format!("{place}: an array type without items"));
    }
}

/// What is wrong with the value of keyword `key`, if anything (the schemas
/// inside it are checked by the caller).
fn value_problem(key: &str, value: &Value, object: &Map<String, Value>) -> Option<&'static str> {
    let list = value.as_array();
    let ok = match key {
        "$ref" => return Some("a reference to nothing in a standalone schema"),
        "type" => value.as_str().is_some_and(|name| TYPES.contains(&name)),
        "exclusiveMaximum" | "exclusiveMinimum" | "uniqueItems" | "nullable" | "readOnly" | "writeOnly"
        | "deprecated" => value.is_boolean(),
        "maximum" | "minimum" => value.is_number(),
        "multipleOf" => value.as_f64().is_some_and(|n| n > 0.0),
        "maxLength" | "minLength" | "maxItems" | "minItems" | "maxProperties" | "minProperties" => value.is_u64(),
        "pattern" | "format" | "title" | "description" => value.is_string(),
        "required" => list.is_some_and(|names| {
            !names.is_empty()
                && names.iter().all(Value::is_string)
                && names.iter().enumerate().all(|(i, name)| !names.iter().skip(i + 1).any(|n| n == name))
        }),
        "enum" if list.is_some_and(|values| values.contains(&Value::Null)) => {
            if object.get("nullable") != Some(&Value::Bool(true)) {
                return Some("a list with null, without nullable: true");
            }
            true
        }
        "enum" | "allOf" | "anyOf" | "oneOf" => list.is_some_and(|values| !values.is_empty()),
        "properties" => value.is_object(),
        _ => true,
    };
    if ok {
        return None;
    }
    Some(match key {
        "type" => "not one of string, number, integer, boolean, array, object",
        "maximum" | "minimum" => "not a number",
        "multipleOf" => "not a positive number",
        "pattern" | "format" | "title" | "description" => "not a string",
        "required" => "not a non-empty list of distinct strings",
        "enum" | "allOf" | "anyOf" | "oneOf" => "not a non-empty list",
        "properties" => "not a mapping",
        key if key.starts_with("max") || key.starts_with("min") => "not a non-negative integer",
        _ => "not a boolean",
    })
}

fn keys_within(map: &Map<String, Value>, known: &[&str], place: &str, problems: &mut Vec<String>) {
    for key in map.keys() {
        if !known.contains(&key.as_str()) {
            problems.push(format!("{place}: unknown key {key}"));
        }
    }
}

fn non_empty_string(value: &Value) -> bool {
    value.as_str().is_some_and(|text| !text.trim().is_empty())
}

/// `zh-CN`, `en-US`: what the real specs use.
fn is_language_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    bytes.len() == 5
        && bytes.iter().take(2).all(u8::is_ascii_lowercase)
        && bytes.get(2) == Some(&b'-')
        && bytes.iter().skip(3).all(u8::is_ascii_uppercase)
}
