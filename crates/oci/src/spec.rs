//! `spec.yaml`: the plugin's metadata in the format of Higress's Wasm plugin
//! image spec and of the specs of Higress's built-in plugins (`apiVersion:
//! 1.0.0`, `info`, `spec`).
//!
//! Who reads it: the file travels in the image for tools that read an image's
//! metadata (`cargo xtask pull` writes it next to the module). Higress's
//! gateway takes only `plugin.wasm` from the last layer; the Higress console
//! shows forms and READMEs only for the built-in plugins it bundles (their
//! `spec.yaml` are files of the console itself); a plugin deployed from an
//! image it shows as its `WasmPlugin` says, with an empty configuration schema
//! and no README, without reading the image's `spec.yaml`.
//!
//! * `info`: `category`, `name`, `title`, `x-title-i18n`, `description`,
//!   `x-description-i18n`, `iconUrl`, `readmeUrl`, `version`, `contact`;
//! * `spec`: `phase` and `priority` (the ones `deploy/higress/` uses: both come
//!   from `[package.metadata.gateway]`), `configSchema.openAPIV3Schema` (the
//!   global config, `defaultConfig`) and `routeConfigSchema.openAPIV3Schema`
//!   (the config of a route or domain, `matchRules[].config`), each with an
//!   `example`, its top-level fields with `title`, `x-title-i18n`,
//!   `description` and `x-description-i18n`.
//!
//! Both schemas are OpenAPI 3.0 Schema Objects converted from the plugin's
//! JSON Schema 2020-12 (`dist/<name>.schema.json`) by [`openapi`].
//! What they cannot check that the 2020-12 schema does: the keywords in
//! [`Schemas`]' `lost` lists (`propertyNames` of header maps), and the rules
//! of the whole document: that a global config may be left out when
//! `_rules_` has entries, and that each rule has a match key (Higress writes
//! `_rules_` and the match keys itself from `matchRules`).

use crate::error::{Error, Result};
use crate::openapi::{self, Converted};
use crate::plugin::{PluginInfo, Texts};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Keys the gateway adds to the global config, not set by hand.
const META_KEYS: [&str; 2] = ["_rules_", "_plugin_id_"];
/// Keys Higress writes into a rule from `matchRules`.
const MATCH_KEYS: [&str; 4] = ["_match_route_", "_match_domain_", "_match_service_", "_match_route_prefix_"];

#[derive(Serialize)]
struct Spec<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    info: Info<'a>,
    spec: Body,
}

#[derive(Serialize)]
struct Info<'a> {
    category: &'a str,
    name: &'a str,
    title: &'a str,
    #[serde(rename = "x-title-i18n", skip_serializing_if = "BTreeMap::is_empty")]
    title_i18n: BTreeMap<&'a str, &'a str>,
    description: &'a str,
    #[serde(rename = "x-description-i18n", skip_serializing_if = "BTreeMap::is_empty")]
    description_i18n: BTreeMap<&'a str, &'a str>,
    #[serde(rename = "iconUrl", skip_serializing_if = "Option::is_none")]
    icon_url: Option<&'a str>,
    #[serde(rename = "readmeUrl", skip_serializing_if = "Option::is_none")]
    readme_url: Option<&'a str>,
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact: Option<Contact<'a>>,
}

#[derive(Serialize)]
struct Contact<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
}

#[derive(Serialize)]
struct Body {
    phase: &'static str,
    priority: i32,
    #[serde(rename = "configSchema", skip_serializing_if = "Option::is_none")]
    config_schema: Option<ConfigSchema>,
    #[serde(rename = "routeConfigSchema", skip_serializing_if = "Option::is_none")]
    route_config_schema: Option<ConfigSchema>,
}

#[derive(Serialize)]
struct ConfigSchema {
    #[serde(rename = "openAPIV3Schema")]
    open_api_v3_schema: Value,
}

/// The OpenAPI 3.0 schemas of `spec.yaml`, each with what the conversion lost.
#[derive(Debug, Clone, PartialEq)]
pub struct Schemas {
    /// `configSchema`: the global config.
    pub config: Converted,
    /// `routeConfigSchema`: the config of one route or domain.
    pub route: Converted,
}

/// The schemas of `spec.yaml` for a plugin with a configuration schema.
///
/// With the SDK's layout (`$defs.Global`, `$defs.Rule`) the global config is
/// `Global` without the keys the gateway adds (`_rules_`, `_plugin_id_`), a
/// route's config is `Rule` without the match keys and the condition on them;
/// any other schema is used for both as it is.
pub fn schemas(info: &PluginInfo) -> Result<Option<Schemas>> {
    let Some(root) = &info.config_schema else { return Ok(None) };
    let global = root.pointer("/$defs/Global").unwrap_or(root);
    let rule = root.pointer("/$defs/Rule").unwrap_or(global);
    let mut config = openapi::convert(&without(global, &META_KEYS), root);
    let mut route = openapi::convert(&without(rule, &MATCH_KEYS), root);
    if let (Some(description), Value::Object(object)) = (root.get("description"), &mut config.schema) {
        object.entry("description").or_insert_with(|| description.clone());
    }
    describe_fields(info, &mut config.schema, true)?;
    describe_fields(info, &mut route.schema, false)?;
    let route_example = info.route_example.as_ref().or(info.example.as_ref());
    for (schema, example) in [(&mut config.schema, info.example.as_ref()), (&mut route.schema, route_example)] {
        if let (Some(example), Value::Object(object)) = (example, schema) {
            object.insert("example".to_string(), example.clone());
        }
    }
    Ok(Some(Schemas { config, route }))
}

/// `schema` without the properties `keys` and without the `allOf` conditions
/// that speak only of them.
fn without(schema: &Value, keys: &[&str]) -> Value {
    let mut schema = schema.clone();
    let Value::Object(object) = &mut schema else { return schema };
    if let Some(Value::Object(properties)) = object.get_mut("properties") {
        properties.retain(|name, _| !keys.contains(&name.as_str()));
    }
    if let Some(Value::Array(all_of)) = object.get_mut("allOf") {
        all_of.retain(|condition| !only_about(condition, keys));
        if all_of.is_empty() {
            object.remove("allOf");
        }
    }
    schema
}

/// `{"anyOf": [...]}` whose every branch requires only some of `keys`.
fn only_about(condition: &Value, keys: &[&str]) -> bool {
    let Some(object) = condition.as_object() else { return false };
    let Some(Value::Array(branches)) = object.get("anyOf") else { return false };
    object.len() == 1
        && !branches.is_empty()
        && branches.iter().all(|branch| {
            let required = branch.get("required").and_then(Value::as_array);
            required.is_some_and(|names| names.iter().all(|name| name.as_str().is_some_and(|n| keys.contains(&n))))
        })
}

/// Titles and translations of the top-level fields, from `[package.metadata.gateway.fields]`.
fn describe_fields(info: &PluginInfo, schema: &mut Value, every_field_present: bool) -> Result<()> {
    let Some(Value::Object(properties)) = schema.get_mut("properties") else {
        return match info.fields.keys().next() {
            Some(field) if every_field_present => {
                Err(Error::plugin(&info.name, format!("fields.{field}: the configuration has no fields")))
            }
            _ => Ok(()),
        };
    };
    for (field, texts) in &info.fields {
        let Some(Value::Object(property)) = properties.get_mut(field) else {
            if every_field_present {
                let names: Vec<&str> = properties.keys().map(String::as_str).collect();
                return Err(Error::plugin(
                    &info.name,
                    format!(
                        "fields.{field}: no such top-level field in the configuration (there are: {})",
                        names.join(", ")
                    ),
                ));
            }
            continue;
        };
        property.insert("title".to_string(), json!(texts.title));
        let (titles, descriptions) = i18n(&texts.translations);
        if !titles.is_empty() {
            property.insert("x-title-i18n".to_string(), Value::Object(titles));
            property.insert("x-description-i18n".to_string(), Value::Object(descriptions));
        }
    }
    Ok(())
}

fn i18n(translations: &BTreeMap<String, Texts>) -> (Map<String, Value>, Map<String, Value>) {
    let titles = translations.iter().map(|(lang, texts)| (lang.clone(), json!(texts.title))).collect();
    let descriptions = translations.iter().map(|(lang, texts)| (lang.clone(), json!(texts.description))).collect();
    (titles, descriptions)
}

/// Renders `spec.yaml` for a plugin. Keys of the schemas come out sorted, so
/// the same plugin always gives the same bytes.
pub fn render(info: &PluginInfo) -> Result<String> {
    info.validate()?;
    let schemas = schemas(info)?;
    let open_api = |converted: Converted| ConfigSchema { open_api_v3_schema: converted.schema };
    let (config_schema, route_config_schema) = match schemas {
        Some(Schemas { config, route }) => (Some(open_api(config)), Some(open_api(route))),
        None => (None, None),
    };
    let spec = Spec {
        api_version: "1.0.0",
        info: Info {
            category: &info.category,
            name: &info.name,
            title: &info.title,
            title_i18n: info.translations.iter().map(|(lang, texts)| (lang.as_str(), texts.title.as_str())).collect(),
            description: &info.description,
            description_i18n: info
                .translations
                .iter()
                .map(|(lang, texts)| (lang.as_str(), texts.description.as_str()))
                .collect(),
            icon_url: info.icon_url.as_deref(),
            readme_url: info.readme_url.as_deref(),
            version: &info.version,
            contact: info.contact.as_ref().map(|contact| Contact {
                name: &contact.name,
                url: contact.url.as_deref(),
                email: contact.email.as_deref(),
            }),
        },
        spec: Body { phase: info.phase.as_str(), priority: info.priority, config_schema, route_config_schema },
    };
    serde_yaml_ng::to_string(&spec).map_err(|err| Error::plugin(&info.name, format!("cannot render spec.yaml: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{FieldTexts, Phase};

    #[test]
    fn renders_higress_layout() {
        let mut info = PluginInfo::new("mock", "0.1.0");
        info.description = "Adds a header: or answers.".into();
        info.phase = Phase::Authn;
        info.priority = 100;
        info.translations.insert("zh-CN".into(), Texts { title: "模拟".into(), description: "添加请求头".into() });
        info.icon_url = Some("https://example.com/icon.svg".into());
        let yaml = render(&info).unwrap();
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(value["apiVersion"].as_str(), Some("1.0.0"));
        assert_eq!(value["info"]["name"].as_str(), Some("mock"));
        assert_eq!(value["info"]["title"].as_str(), Some("Mock"));
        assert_eq!(value["info"]["x-title-i18n"]["zh-CN"].as_str(), Some("模拟"));
        assert_eq!(value["info"]["x-description-i18n"]["zh-CN"].as_str(), Some("添加请求头"));
        assert_eq!(value["info"]["iconUrl"].as_str(), Some("https://example.com/icon.svg"));
        assert_eq!(value["info"]["version"].as_str(), Some("0.1.0"));
        assert_eq!(value["info"]["category"].as_str(), Some("custom"));
        assert_eq!(value["info"]["description"].as_str(), Some("Adds a header: or answers."));
        assert_eq!(value["spec"]["phase"].as_str(), Some("AUTHN"));
        assert_eq!(value["spec"]["priority"].as_i64(), Some(100));
        assert!(value["spec"].get("configSchema").is_none());
        assert!(value["spec"].get("routeConfigSchema").is_none());
    }

    /// The SDK's layout: the document with `_rules_`, `$defs.Global` and `$defs.Rule`.
    fn sdk_schema() -> Value {
        let config =
            json!({"mockEnable": {"type": "boolean", "default": false}, "status": {"type": ["integer", "null"]}});
        let mut global = config.clone();
        global["_rules_"] = json!(true);
        global["_plugin_id_"] = json!(true);
        let mut rule = config;
        rule["_match_route_"] = json!({"type": "array", "items": {"type": "string"}});
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "What mock accepts.",
            "type": "object",
            "properties": {"_rules_": {"type": "array", "items": {"$ref": "#/$defs/Rule"}}},
            "if": {"required": ["_rules_"]},
            "then": true,
            "$defs": {
                "Global": {"type": "object", "additionalProperties": false, "properties": global},
                "Rule": {
                    "type": "object",
                    "properties": rule,
                    "allOf": [{"anyOf": [{"required": ["_match_route_"], "properties": {"_match_route_": {"contains": {}}}}]}],
                },
            },
        })
    }

    #[test]
    fn global_and_route_schemas_from_the_sdk_layout() {
        let mut info = PluginInfo::new("mock", "0.1.0");
        info.config_schema = Some(sdk_schema());
        info.example = Some(json!({"mockEnable": true}));
        let mut texts = FieldTexts { title: "Answer with the mock".into(), ..FieldTexts::default() };
        texts
            .translations
            .insert("zh-CN".into(), Texts { title: "模拟应答".into(), description: "以模拟响应应答".into() });
        info.fields.insert("mockEnable".into(), texts);
        let Schemas { config, route } = schemas(&info).unwrap().unwrap();
        assert!(config.lost.is_empty() && route.lost.is_empty(), "{config:?} {route:?}");
        let names = |schema: &Value| schema["properties"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(&config.schema), ["mockEnable", "status"]);
        assert_eq!(names(&route.schema), ["mockEnable", "status"]);
        assert_eq!(config.schema["additionalProperties"], json!(false));
        assert_eq!(config.schema["description"], json!("What mock accepts."));
        assert_eq!(config.schema["properties"]["status"], json!({"type": "integer", "nullable": true}));
        assert_eq!(route.schema.get("allOf"), None, "the match condition is Higress's");
        let mock_enable = &config.schema["properties"]["mockEnable"];
        assert_eq!(mock_enable["title"], json!("Answer with the mock"));
        assert_eq!(mock_enable["x-title-i18n"], json!({"zh-CN": "模拟应答"}));
        assert_eq!(mock_enable["x-description-i18n"], json!({"zh-CN": "以模拟响应应答"}));
        assert_eq!(config.schema["example"], json!({"mockEnable": true}));
        assert_eq!(
            route.schema["example"],
            json!({"mockEnable": true}),
            "the route example defaults to the global one"
        );

        let yaml = render(&info).unwrap();
        assert_eq!(render(&info).unwrap(), yaml, "rendering is deterministic");
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(value["spec"]["configSchema"]["openAPIV3Schema"]["type"].as_str(), Some("object"));
        assert_eq!(value["spec"]["routeConfigSchema"]["openAPIV3Schema"]["type"].as_str(), Some("object"));
    }

    #[test]
    fn a_field_text_for_no_field_is_refused() {
        let mut info = PluginInfo::new("mock", "0.1.0");
        info.config_schema = Some(sdk_schema());
        info.fields.insert("mockEnabled".into(), FieldTexts { title: "Typo".into(), ..FieldTexts::default() });
        let err = render(&info).unwrap_err().to_string();
        assert!(err.contains("fields.mockEnabled: no such top-level field"), "{err}");
        assert!(err.contains("mockEnable, status"), "{err}");
    }
}
