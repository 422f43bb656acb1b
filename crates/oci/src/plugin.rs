//! What an image says about its plugin: [`PluginInfo`].

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Where in the filter chain the gateway runs the plugin (Istio's and
/// Higress's `WasmPlugin.phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// `UNSPECIFIED_PHASE`: at the end of the chain, before the router.
    #[default]
    Unspecified,
    /// `AUTHN`: before Istio's authentication filters.
    Authn,
    /// `AUTHZ`: before Istio's authorization filters.
    Authz,
    /// `STATS`: before Istio's stats filters.
    Stats,
}

impl Phase {
    /// The name `WasmPlugin` and `spec.yaml` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Unspecified => "UNSPECIFIED_PHASE",
            Phase::Authn => "AUTHN",
            Phase::Authz => "AUTHZ",
            Phase::Stats => "STATS",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text {
            "UNSPECIFIED_PHASE" => Ok(Phase::Unspecified),
            "AUTHN" => Ok(Phase::Authn),
            "AUTHZ" => Ok(Phase::Authz),
            "STATS" => Ok(Phase::Stats),
            other => Err(format!("unknown phase {other:?} (UNSPECIFIED_PHASE, AUTHN, AUTHZ or STATS)")),
        }
    }
}

/// Plugin categories of Higress's Wasm plugin image spec (`info.category` of `spec.yaml`).
pub const CATEGORIES: &[&str] = &["auth", "security", "protocol", "flow-control", "flow-monitor", "custom"];

/// A title and a description in one language (`spec.yaml`'s
/// `x-title-i18n` and `x-description-i18n`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Texts {
    /// The title.
    pub title: String,
    /// The description.
    pub description: String,
}

/// What `spec.yaml` shows for one top-level configuration field, besides the
/// description of its schema (from the Rust doc comment of the field).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldTexts {
    /// Its title in English.
    pub title: String,
    /// Title and description by language tag (`zh-CN`).
    pub translations: BTreeMap<String, Texts>,
}

/// Who answers for the plugin (`spec.yaml`'s `info.contact`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Contact {
    /// A person or a team.
    pub name: String,
    /// A web page.
    pub url: Option<String>,
    /// An email address.
    pub email: Option<String>,
}

/// The plugin an image carries: what goes into `spec.yaml`, the README layer
/// and the manifest's annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginInfo {
    /// Unique name, e.g. `redis-rate-limit` (lower case, digits and `-`).
    pub name: String,
    /// Version, e.g. `0.1.0`; also the default tag.
    pub version: String,
    /// Display name, e.g. `Redis Rate Limit`.
    pub title: String,
    /// One-paragraph description.
    pub description: String,
    /// Title and description by language tag (`zh-CN`).
    pub translations: BTreeMap<String, Texts>,
    /// Titles and translations of the top-level configuration fields, by field name.
    pub fields: BTreeMap<String, FieldTexts>,
    /// URL of the plugin's icon.
    pub icon_url: Option<String>,
    /// URL of the plugin's README on the web.
    pub readme_url: Option<String>,
    /// Who answers for it.
    pub contact: Option<Contact>,
    /// An example of the global configuration (`defaultConfig`).
    pub example: Option<serde_json::Value>,
    /// An example of a per-route or per-domain configuration (`matchRules[].config`);
    /// [`example`](Self::example) when not given.
    pub route_example: Option<serde_json::Value>,
    /// One of [`CATEGORIES`].
    pub category: String,
    /// Default phase.
    pub phase: Phase,
    /// Default priority within the phase (higher runs first).
    pub priority: i32,
    /// The plugin's README (Markdown).
    pub readme: String,
    /// JSON Schema of the plugin's configuration, if there is one; it becomes
    /// `spec.configSchema.openAPIV3Schema`.
    pub config_schema: Option<serde_json::Value>,
    /// SPDX license expression.
    pub license: Option<String>,
    /// URL of the source repository.
    pub source: Option<String>,
}

impl PluginInfo {
    /// A plugin with the defaults: title from the name, category `custom`,
    /// phase `UNSPECIFIED_PHASE`, priority 0, no README or schema.
    pub fn new(name: &str, version: &str) -> PluginInfo {
        PluginInfo {
            name: name.to_string(),
            version: version.to_string(),
            title: title_of(name),
            description: String::new(),
            translations: BTreeMap::new(),
            fields: BTreeMap::new(),
            icon_url: None,
            readme_url: None,
            contact: None,
            example: None,
            route_example: None,
            category: "custom".to_string(),
            phase: Phase::Unspecified,
            priority: 0,
            readme: String::new(),
            config_schema: None,
            license: None,
            source: None,
        }
    }

    /// Checks what registries and gateways require of the fields.
    pub fn validate(&self) -> Result<()> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 63
            && self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !self.name.starts_with('-')
            && !self.name.ends_with('-');
        if !name_ok {
            return Err(Error::plugin(
                &self.name,
                "the name must be 1-63 of a-z, 0-9 and '-', not starting or ending with '-'",
            ));
        }
        if !is_tag(&self.version) {
            return Err(Error::plugin(&self.name, format!("version {:?} is not a valid image tag", self.version)));
        }
        if !CATEGORIES.contains(&self.category.as_str()) {
            return Err(Error::plugin(
                &self.name,
                format!("category {:?} is not one of {}", self.category, CATEGORIES.join(", ")),
            ));
        }
        if let Some(schema) = &self.config_schema {
            if !schema.is_object() {
                return Err(Error::plugin(&self.name, "the configuration schema must be a JSON object"));
            }
        }
        for (which, example) in [("example", &self.example), ("route example", &self.route_example)] {
            if example.as_ref().is_some_and(|example| !example.is_object()) {
                return Err(Error::plugin(&self.name, format!("the {which} must be a JSON object")));
            }
        }
        for (field, texts) in &self.fields {
            if texts.title.trim().is_empty() {
                return Err(Error::plugin(&self.name, format!("field {field:?} has an empty title")));
            }
        }
        Ok(())
    }
}

/// `redis-rate-limit` -> `Redis Rate Limit`.
fn title_of(name: &str) -> String {
    name.split('-')
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map(|first| first.to_uppercase().chain(chars).collect::<String>()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A tag as the distribution spec allows it: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn is_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    first_ok && tag.len() <= 128 && bytes.all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_titled() {
        let info = PluginInfo::new("redis-rate-limit", "0.1.0");
        assert_eq!(info.title, "Redis Rate Limit");
        assert_eq!(info.phase, Phase::Unspecified);
        info.validate().unwrap();
    }

    #[test]
    fn bad_fields_are_refused() {
        let mut info = PluginInfo::new("Mock", "0.1.0");
        assert!(info.validate().is_err());
        info.name = "mock".into();
        info.version = "0.1.0+build".into();
        assert!(info.validate().unwrap_err().to_string().contains("not a valid image tag"));
        info.version = "0.1.0".into();
        info.category = "misc".into();
        assert!(info.validate().is_err());
    }

    #[test]
    fn phases_round_trip() {
        for phase in [Phase::Unspecified, Phase::Authn, Phase::Authz, Phase::Stats] {
            assert_eq!(phase.as_str().parse::<Phase>(), Ok(phase));
        }
        assert!("authn".parse::<Phase>().is_err());
    }
}
