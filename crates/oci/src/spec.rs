//! `spec.yaml`: the plugin's metadata in the format of Higress's Wasm image
//! spec (`apiVersion: 1.0.0`, `info`, `spec`), which the Higress console reads
//! to list the plugin and render its configuration form.

use crate::error::{Error, Result};
use crate::plugin::PluginInfo;
use serde::Serialize;

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
    description: &'a str,
    version: &'a str,
}

#[derive(Serialize)]
struct Body {
    phase: &'static str,
    priority: i32,
    #[serde(rename = "configSchema", skip_serializing_if = "Option::is_none")]
    config_schema: Option<ConfigSchema>,
}

#[derive(Serialize)]
struct ConfigSchema {
    #[serde(rename = "openAPIV3Schema")]
    open_api_v3_schema: serde_json::Value,
}

/// Renders `spec.yaml` for a plugin.
///
/// The JSON Schema of the configuration becomes `spec.configSchema.openAPIV3Schema`
/// without its top-level `$schema` and `$id`, which describe the schema document
/// and are not part of an OpenAPI 3.0 schema object. Keys come out sorted, so
/// the same plugin always gives the same bytes.
pub fn render(info: &PluginInfo) -> Result<String> {
    info.validate()?;
    let config_schema = info.config_schema.clone().map(|mut schema| {
        if let Some(object) = schema.as_object_mut() {
            object.remove("$schema");
            object.remove("$id");
        }
        ConfigSchema { open_api_v3_schema: schema }
    });
    let spec = Spec {
        api_version: "1.0.0",
        info: Info {
            category: &info.category,
            name: &info.name,
            title: &info.title,
            description: &info.description,
            version: &info.version,
        },
        spec: Body { phase: info.phase.as_str(), priority: info.priority, config_schema },
    };
    serde_yaml_ng::to_string(&spec).map_err(|err| Error::plugin(&info.name, format!("cannot render spec.yaml: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::Phase;

    #[test]
    fn renders_higress_layout() {
        let mut info = PluginInfo::new("mock", "0.1.0");
        info.description = "Adds a header: or answers.".into();
        info.phase = Phase::Authn;
        info.priority = 100;
        let yaml = render(&info).unwrap();
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(value["apiVersion"].as_str(), Some("1.0.0"));
        assert_eq!(value["info"]["name"].as_str(), Some("mock"));
        assert_eq!(value["info"]["title"].as_str(), Some("Mock"));
        assert_eq!(value["info"]["version"].as_str(), Some("0.1.0"));
        assert_eq!(value["info"]["category"].as_str(), Some("custom"));
        assert_eq!(value["info"]["description"].as_str(), Some("Adds a header: or answers."));
        assert_eq!(value["spec"]["phase"].as_str(), Some("AUTHN"));
        assert_eq!(value["spec"]["priority"].as_i64(), Some(100));
        assert!(value["spec"].get("configSchema").is_none());
    }

    #[test]
    fn schema_becomes_open_api_schema() {
        let mut info = PluginInfo::new("mock", "0.1.0");
        info.config_schema = Some(serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"mockEnable": {"type": "boolean", "default": false}},
        }));
        let yaml = render(&info).unwrap();
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        let schema = &value["spec"]["configSchema"]["openAPIV3Schema"];
        assert_eq!(schema["type"].as_str(), Some("object"));
        assert_eq!(schema["properties"]["mockEnable"]["type"].as_str(), Some("boolean"));
        assert!(schema.get("$schema").is_none());
        assert_eq!(render(&info).unwrap(), yaml, "rendering is deterministic");
    }
}
